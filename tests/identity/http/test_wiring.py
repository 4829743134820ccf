"""Entry points, route discovery, the gateway's /.well-known routing, and the test helper."""
from __future__ import annotations

from shared.identity.http import routes
from shared.identity.http.api import accounts_api, auth_api
from tests.support.identity import auth_headers, create_user_with_token


def test_routes_module_imports_every_http_module():
    import pkgutil

    import shared.identity.http as pkg
    expected = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)
                      if m.name not in ("api", "routes"))
    assert routes.MODULES == expected
    assert {"password", "mfa", "sessions", "api_keys", "profile", "phone", "social", "wallets",
            "dids", "user_phone"} <= set(expected)
    paths = {(r.method, r.path) for r in auth_api.routes + accounts_api.routes}
    assert {("POST", "/register"), ("POST", "/login"), ("POST", "/refresh"), ("POST", "/logout"),
            ("GET", "/.well-known/jwks.json"), ("POST", "/mfa/verify"), ("GET", "/"),
            ("PATCH", "/"), ("GET", "/sessions"), ("POST", "/api_keys")} <= paths


MINE = {"shared.identity.http.password", "shared.identity.http.mfa", "shared.identity.http.sessions",
        "shared.identity.http.api_keys", "shared.identity.http.profile"}


def test_every_auth_route_is_rate_limited():
    for route in auth_api.routes + accounts_api.routes:
        if route.handler.__module__ not in MINE or route.path == "/.well-known/jwks.json":
            continue
        assert route.rate_limits, route.path
        if route.auth == "public":
            assert any(k == "ip" for _, k in route.rate_limits), route.path


def test_support_helper_goes_through_register_and_login(deps, me):
    user_id, token = create_user_with_token(deps, username="helper_user")
    r = me.get("/v1/me", headers=auth_headers(token))
    assert r.status_code == 200 and r.get_json()["id"] == user_id
    assert r.get_json()["username"] == "helper_user"
    other_id, other = create_user_with_token(deps)
    assert other_id != user_id


def test_gateway_serves_jwks_at_well_known(deps, keyset):
    from werkzeug.test import Client

    from infra.local.gateway import Gateway
    client = Client(Gateway())
    r = client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.json["keys"][0]["kid"] == keyset.keys[0].kid
    assert client.get("/v1/auth/.well-known/jwks.json").status_code == 200


def test_ports_build_lazily_without_deadlocking(deps, monkeypatch):
    """Nothing injected: settings, key set and email sender are built from the environment.
    (Deps builds under a non-reentrant lock, so a factory must not call deps.get itself.)"""
    import concurrent.futures

    from shared.identity.users.email import MemoryEmailSender, email_sender
    from shared.identity.sessions.keys import KeySet, generate_key, get_keyset
    from shared.platform.deps import Deps

    ks = KeySet((generate_key(),))
    monkeypatch.setenv("PAYLOOM_IDENTITY_JWT_KEYS", ks.to_json())
    monkeypatch.delenv("PAYLOOM_IDENTITY_EMAIL_API_URL", raising=False)
    bare = Deps(settings=deps.settings)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        keyset = pool.submit(get_keyset, bare).result(timeout=10)
        sender = pool.submit(email_sender, bare).result(timeout=10)
    assert keyset.keys[0].kid == ks.keys[0].kid and isinstance(sender, MemoryEmailSender)
