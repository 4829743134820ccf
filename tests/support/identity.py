"""Test helpers for anything that needs a signed-in user (any capability's tests may use them).

``create_user_with_token`` goes through the real identity services (register, then password
login) against the emulator behind ``deps``; nothing is faked. So that this stays fast it
installs cheap argon2 parameters on ``deps`` (``use_fast_password_hashing``) unless the test
already injected identity settings; production defaults are asserted in tests/identity.
"""
from __future__ import annotations

import secrets

from shared.identity.config import IdentitySettings
from shared.platform.uow import run_unit

DEFAULT_PASSWORD = "correct horse battery staple"
FAST_ARGON2 = dict(argon2_time_cost=1, argon2_memory_cost_kib=1024, argon2_parallelism=1)


def fast_identity_settings(**overrides) -> IdentitySettings:
    """IdentitySettings for tests: cheap argon2, no session cache, plus ``overrides``."""
    return IdentitySettings(**{**FAST_ARGON2, "session_cache_seconds": 0, **overrides})


def use_fast_password_hashing(deps) -> IdentitySettings:
    """Inject test identity settings into ``deps`` unless a test already did; returns them."""
    if "identity.settings" not in deps.extras:
        deps.extras["identity.settings"] = fast_identity_settings()
    return deps.extras["identity.settings"]


def create_user_with_token(deps, username: str | None = None, password: str = DEFAULT_PASSWORD,
                           *, email: str | None = None) -> tuple[str, str]:
    """Register a user and sign in with the password; returns ``(user_id, access_token)``."""
    from shared.identity.users import accounts

    use_fast_password_hashing(deps)
    username = username or f"user_{secrets.token_hex(6)}"
    email = email or f"{username.lower()}@example.com"
    user = run_unit(deps, lambda uow: accounts.register_user(uow, email=email, password=password,
                                                             username=username))
    pair = run_unit(deps, lambda uow: accounts.login(uow, username=username, password=password,
                                                     ip="127.0.0.1", user_agent="pytest"))
    if not hasattr(pair, "access_token"):  # pragma: no cover - new users have no MFA
        raise RuntimeError("a fresh user got an MFA challenge")
    return user.id, pair.access_token


def auth_headers(token: str, **extra: str) -> dict[str, str]:
    """``Authorization: Bearer <token>`` (a JWT or an API key secret) plus any extra headers."""
    return {"Authorization": f"Bearer {token}", **extra}


def deliver_outbound(deps) -> list[str]:
    """Deliver every queued email/SMS now, oldest first: what the notify consumer does right
    after the commit that queued them (tests call it instead of running Pub/Sub)."""
    from shared.notify import delivery
    from shared.notify.outbound import COLLECTION
    from shared.notify.settings import notify_settings

    deps.tasks.ensure_queue(notify_settings(deps).queue)
    snaps = [s for s in deps.db.collection(COLLECTION).stream() if s.get("status") == "queued"]
    snaps.sort(key=lambda s: s.create_time)  # commit order, even under a frozen clock
    return [delivery.attempt(deps, s.id, 1) for s in snaps]
