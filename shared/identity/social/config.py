"""Social login settings (env prefix ``PAYLOOM_OAUTH_``).

A provider is enabled when its client id is set. ``<provider>_base_url`` replaces the scheme and
host of every one of that provider's endpoints (paths are kept); only tests and the local wiring
set it, to point at ``infra/local/oidc_sim.py``. Secrets (client secrets, Apple's private key)
come from Secret Manager in production.

Services read these through ``oauth_settings(deps)`` so tests inject their own instance:
``deps.extras["identity.oauth_settings"] = OAuthSettings(...)``.
"""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "identity.oauth_settings"


class OAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_OAUTH_", extra="ignore")

    # Where providers send the browser back: {redirect_base_url}/v1/auth/oauth/{provider}/callback.
    # Empty = the platform's public_base_url.
    redirect_base_url: str = ""
    # Further redirect URIs a client may ask for (mobile deep links, the web app's own page);
    # the app then relays code + state to POST .../callback.
    allowed_redirect_uris: list[str] = Field(default_factory=list)
    state_ttl_seconds: int = Field(600, ge=60, le=3600)
    http_timeout_seconds: float = 10.0
    jwks_cache_seconds: int = 3600
    clock_skew_seconds: int = Field(60, ge=0, le=300)

    google_client_id: str = ""
    google_client_secret: str = Field("", repr=False)
    google_base_url: str = ""

    github_client_id: str = ""
    github_client_secret: str = Field("", repr=False)
    github_base_url: str = ""

    linkedin_client_id: str = ""
    linkedin_client_secret: str = Field("", repr=False)
    linkedin_base_url: str = ""

    # Apple: the Services ID is the client id; the client secret is an ES256 JWT we sign with
    # the key (.p8 PEM) downloaded from Apple, identified by team id and key id.
    apple_client_id: str = ""
    apple_team_id: str = ""
    apple_key_id: str = ""
    apple_private_key: str = Field("", repr=False)
    apple_base_url: str = ""
    apple_client_secret_ttl_seconds: int = Field(3600, ge=60, le=15_777_000)

    def client_id(self, provider: str) -> str:
        return getattr(self, f"{provider}_client_id", "")

    def client_secret(self, provider: str) -> str:
        return getattr(self, f"{provider}_client_secret", "")

    def base_url(self, provider: str) -> str:
        return getattr(self, f"{provider}_base_url", "")

    def enabled(self, provider: str) -> bool:
        if provider == "apple":
            return bool(self.apple_client_id and self.apple_team_id and self.apple_key_id
                        and self.apple_private_key)
        return bool(self.client_id(provider) and self.client_secret(provider))


def oauth_settings(deps) -> OAuthSettings:
    return deps.get(SETTINGS_KEY, OAuthSettings)
