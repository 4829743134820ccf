"""Identity test wiring: cheap argon2, a fresh key set per test, the loopback email API."""
from __future__ import annotations

import pytest

from infra.local import email_sim
from shared.identity.sessions.keys import KeySet, generate_key
from tests.identity.helpers import PASSWORD, fresh_ip
from tests.support.identity import deliver_outbound, fast_identity_settings


@pytest.fixture(scope="session")
def email_server():
    server, _ = email_sim.start()
    yield server
    server.stop()


@pytest.fixture
def identity_settings(deps, email_server):
    """Injected identity settings (tests may replace them via ``configure``)."""
    from shared.notify.settings import NotifySettings
    settings = fast_identity_settings(email_api_url=email_server.base_url, email_api_key="test-key")
    deps.extras["identity.settings"] = settings
    deps.extras["notify.settings"] = NotifySettings(email_api_url=email_server.base_url,
                                                    email_api_key="test-key")
    return settings


@pytest.fixture
def keyset(deps):
    ks = KeySet((generate_key("EdDSA"),))
    deps.extras["identity.keyset"] = ks
    return ks


@pytest.fixture(autouse=True)
def _identity_wiring(deps, identity_settings, keyset):
    yield


@pytest.fixture
def configure(deps, identity_settings):
    """``configure(**overrides)`` replaces the injected identity settings."""
    def apply(**overrides):
        settings = identity_settings.model_copy(update=overrides)
        deps.extras["identity.settings"] = settings
        return settings
    return apply


@pytest.fixture
def auth(function_client):
    import shared.identity.sessions.authn  # noqa: F401
    return function_client("auth")


@pytest.fixture
def me(function_client):
    return function_client("accounts")


@pytest.fixture
def inbox(deps, email_server):
    """The simulator's inbox for ``to``, after delivering what is queued (notify's job)."""
    def read(to: str) -> list[dict]:
        deliver_outbound(deps)
        return email_server.inbox(to)
    return read


@pytest.fixture
def signup(auth):
    """Register and log in over HTTP; returns a namespace with user, tokens and headers."""
    import secrets
    from types import SimpleNamespace

    def make(username: str | None = None, email: str | None = None, password: str = PASSWORD):
        username = username or f"u_{secrets.token_hex(5)}"
        email = email or f"{username.lower()}@example.com"
        r = auth.post("/v1/auth/register", json={"email": email, "password": password,
                                                 "username": username},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code == 201, r.get_json()
        user = r.get_json()
        r = auth.post("/v1/auth/login", json={"username": username, "password": password},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code == 200, r.get_json()
        tokens = r.get_json()
        return SimpleNamespace(user=user, id=user["id"], username=username, email=email,
                               password=password, tokens=tokens, token=tokens["access_token"],
                               refresh=tokens["refresh_token"], session_id=tokens["session"]["id"],
                               headers={"Authorization": f"Bearer {tokens['access_token']}"})
    return make
