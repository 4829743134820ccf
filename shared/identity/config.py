"""Identity settings (env prefix ``PAYLOOM_IDENTITY_``), separate from the platform's Settings.

Services read them through ``identity_settings(deps)`` so a test can inject its own instance:
``deps.extras["identity.settings"] = IdentitySettings(argon2_time_cost=1, ...)``.

The JWT key set is a secret: in production it is the Secret Manager secret ``jwt-signing-keys``
mounted as an env var. Terraform names that variable ``JWT_SIGNING_KEYS`` (the secret name
upper-cased), so ``jwt_keys`` accepts both ``PAYLOOM_IDENTITY_JWT_KEYS`` and ``JWT_SIGNING_KEYS``.
"""
from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The production argon2id parameters (ADR 0010): OWASP Password Storage Cheat Sheet's first
# recommended configuration, m=19 MiB, t=2, p=1. A test asserts these defaults.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST_KIB = 19456
ARGON2_PARALLELISM = 1


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_IDENTITY_", extra="ignore",
                                      populate_by_name=True)

    # --- JWT ---------------------------------------------------------------------------
    jwt_keys: str = Field("", repr=False, validation_alias=AliasChoices(
        "PAYLOOM_IDENTITY_JWT_KEYS", "JWT_SIGNING_KEYS"))
    # Local/test only, relative to the repository root; never used in staging/prod.
    jwt_keys_file: str = ".local/secrets/jwt-keys.json"
    jwt_alg: str = "EdDSA"  # or "ES256"
    issuer: str = "https://api.payloom.dev"
    audience: str = "payloom-api"
    # RFC 9068 ``client_id`` of access tokens issued to our own apps (sessions record their own).
    default_client_id: str = "payloom-app"
    access_token_ttl_seconds: int = 3600
    # Accepted clock skew when checking exp/nbf/iat of an access token.
    clock_skew_seconds: int = 5
    # How long a session's status may be served from the per-instance cache on verify (0 = off).
    session_cache_seconds: float = 5.0

    # --- refresh tokens and sessions ---------------------------------------------------
    refresh_token_ttl_seconds: int = 30 * 86400     # idle timeout: each token lives 30 days
    session_max_age_seconds: int = 90 * 86400       # absolute session lifetime
    refresh_reuse_grace_seconds: int = 10

    # --- passwords ------------------------------------------------------------------------
    argon2_time_cost: int = ARGON2_TIME_COST
    argon2_memory_cost_kib: int = ARGON2_MEMORY_COST_KIB
    argon2_parallelism: int = ARGON2_PARALLELISM
    password_min_length: int = 10
    password_max_length: int = 128
    # Consecutive password failures per account (NIST SP 800-63B 5.2.2): from ``lockout_after``
    # failures on, each new failure locks password sign-in for a back-off that doubles (from
    # ``lockout_base_seconds`` up to ``lockout_max_seconds``); at ``hard_lock_after`` failures
    # password sign-in stays locked until a password reset. Attempts per account per minute are
    # capped by ``login_attempts_per_minute`` (email and username share one budget).
    login_attempts_per_minute: int = 10
    login_failures_per_ip_per_minute: int = 10
    lockout_after: int = 10
    lockout_base_seconds: int = 60
    lockout_max_seconds: int = 3600
    hard_lock_after: int = 100
    # Password-reset emails per address per hour (ADR 0010).
    forgot_per_email_per_hour: int = 5

    # --- email tokens -------------------------------------------------------------------
    email_verification_ttl_seconds: int = 24 * 3600
    password_reset_ttl_seconds: int = 3600

    # --- MFA --------------------------------------------------------------------------------
    mfa_challenge_ttl_seconds: int = 300
    mfa_challenge_max_attempts: int = 5
    totp_issuer: str = "Payloom"

    # --- API keys -------------------------------------------------------------------------
    api_key_last_used_resolution_seconds: int = 60
    api_key_max_roll_grace_seconds: int = 7 * 86400

    # --- email delivery ---------------------------------------------------------------------
    # A SendGrid-v3-shaped HTTP API (``POST {email_api_url}/v3/mail/send``). Locally the loopback
    # simulator infra/local/email_sim.py speaks the same protocol.
    email_api_url: str = ""
    email_api_key: str = Field("", repr=False)
    email_from: str = "no-reply@payloom.dev"
    email_from_name: str = "Payloom"
    # Where links in emails point (the app handles /verify-email and /reset-password).
    app_base_url: str = "https://app.payloom.dev"


def identity_settings(deps) -> IdentitySettings:
    """The identity settings for these deps (injected in tests, else from the environment)."""
    return deps.get("identity.settings", IdentitySettings)
