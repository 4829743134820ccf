"""The OAuth/OIDC provider adapter (``shared.adapters.oauth_provider``) against the OIDC
simulator: the adapter alone (no identity rules), then how identity maps its failures."""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
import time
import urllib.parse

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.local.simserver import LoopbackHandler, LoopbackServer, start_in_thread
from infra.local.stack import free_port
from shared.adapters.oauth_provider import (InvalidIdToken, JwksCache, OAuthProviderClient,
                                            ProviderBadAnswer, ProviderRefused,
                                            ProviderUnavailable, apple_client_secret)
from shared.identity.social import oauth as social
from shared.identity.social.config import OAuthSettings
from shared.platform.errors import AuthenticationError, InvalidRequest, ServiceUnavailable
from tests.identity.helpers import assert_error, fresh_ip

REDIRECT = "https://app.example/cb"


class RecordingSession(requests.Session):
    """A real session that remembers which URLs it called."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):
        self.calls.append((method, url))
        return super().request(method, url, *args, **kwargs)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _spec(oidc_server, provider: str):
    """The production spec rebased onto the simulator's tenant, as identity resolves it."""
    creds = {f"{provider}_client_id": "x", f"{provider}_client_secret": "x",
             f"{provider}_base_url": oidc_server.tenant_url(provider)}
    if provider == "apple":
        creds.update(apple_team_id="T", apple_key_id="K", apple_private_key="P")
    return social.resolved_spec(provider, OAuthSettings(**creds))


def _client_id(provider: str) -> str:
    return f"adapter-{provider}-{secrets.token_hex(4)}"


def _register(oidc_server, provider: str) -> tuple[str, str]:
    client_id, secret = _client_id(provider), secrets.token_urlsafe(16)
    oidc_server.register_client(provider, client_id, client_secret=secret, redirect_uris=[REDIRECT])
    return client_id, secret


def _grant(oidc_server, spec, client_id: str, *, user=None, overrides=None) -> dict:
    """Run the browser leg on the simulator: a code bound to a fresh PKCE verifier and nonce."""
    verifier, nonce = _b64url(secrets.token_bytes(48)), _b64url(secrets.token_bytes(16))
    oidc_server.queue_login(spec.name, user, id_token_overrides=overrides)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
              "scope": " ".join(spec.scopes), "state": "s",
              "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
              "code_challenge_method": "S256", "nonce": nonce}
    resp = requests.get(f"{spec.authorize_url}?{urllib.parse.urlencode(params)}",
                        allow_redirects=False, timeout=5)
    assert resp.status_code == 302, resp.text
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    return {"code": query["code"], "verifier": verifier, "nonce": nonce}


def _client(spec, client_id, secret, **kw) -> OAuthProviderClient:
    kw.setdefault("jwks_cache", JwksCache())
    return OAuthProviderClient(spec, client_id=client_id, client_secret=secret, timeout=5, **kw)


def _person(provider: str) -> dict:
    if provider == "github":
        return {"id": time.time_ns() % 10**9, "login": "octo", "name": "Octo Cat",
                "email": f"octo.{time.time_ns()}@example.com", "email_verified": True}
    return {"sub": f"{provider}-{time.time_ns()}", "email": f"p.{time.time_ns()}@example.com",
            "email_verified": True, "name": "Chan Sophea"}


# --- good exchanges ---------------------------------------------------------------------------

def test_good_code_exchange_and_verified_id_token(oidc_server):
    spec = _spec(oidc_server, "google")
    client_id, secret = _register(oidc_server, "google")
    person = _person("google")
    g = _grant(oidc_server, spec, client_id, user=person)
    session = RecordingSession()
    client = _client(spec, client_id, secret, session=session)
    tokens = client.exchange_code(code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert tokens["access_token"] and isinstance(tokens["id_token"], str)
    sent = oidc_server.token_requests[-1]
    assert sent["code_verifier"] == g["verifier"] and sent["client_secret"] == secret
    profile = client.fetch_profile(tokens, nonce=g["nonce"], now=time.time())
    assert (profile.provider, profile.subject, profile.email, profile.email_verified, profile.name) \
        == ("google", person["sub"], person["email"], True, "Chan Sophea")
    # one token call, one JWKS fetch; no userinfo call (the ID token had email and name)
    assert [m for m, _ in session.calls] == ["POST", "GET"] and session.calls[1][1] == spec.jwks_url
    # a second verification is served from the key cache
    client.verify_id_token(tokens["id_token"], nonce=g["nonce"], now=time.time())
    assert len(session.calls) == 2
    assert secret not in repr(client)


def test_github_profile_comes_from_the_user_api(oidc_server):
    spec = _spec(oidc_server, "github")
    client_id, secret = _register(oidc_server, "github")
    person = _person("github")
    g = _grant(oidc_server, spec, client_id, user=person)
    client = _client(spec, client_id, secret)
    tokens = client.exchange_code(code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert "id_token" not in tokens
    profile = client.fetch_profile(tokens, nonce=g["nonce"], now=time.time())
    assert profile.subject == str(person["id"]) and profile.login == "octo"
    assert profile.email == person["email"] and profile.email_verified is True


def test_apple_client_secret_is_accepted_and_a_wrong_key_is_refused(oidc_server):
    spec = _spec(oidc_server, "apple")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    client_id = _client_id("apple")
    oidc_server.register_client("apple", client_id, redirect_uris=[REDIRECT], apple_team_id="TEAM1",
                                apple_key_id="KID1", apple_public_key=key.public_key())
    now = dt.datetime.now(dt.UTC)
    secret = apple_client_secret(team_id="TEAM1", key_id="KID1", private_key=pem, client_id=client_id,
                                 audience=spec.issuer, now=now, ttl_seconds=600)
    assert jwt.get_unverified_header(secret) == {"alg": "ES256", "kid": "KID1", "typ": "JWT"}
    g = _grant(oidc_server, spec, client_id)
    tokens = _client(spec, client_id, secret).exchange_code(
        code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert tokens["id_token"]

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    forged = apple_client_secret(team_id="TEAM1", key_id="KID1", private_key=other,
                                 client_id=client_id, audience=spec.issuer, now=now, ttl_seconds=600)
    g = _grant(oidc_server, spec, client_id)
    with pytest.raises(ProviderRefused) as exc:
        _client(spec, client_id, forged).exchange_code(code=g["code"], redirect_uri=REDIRECT,
                                                       code_verifier=g["verifier"])
    assert exc.value.error == "invalid_client"


# --- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize("provider,error", [("google", "invalid_grant"),
                                            ("github", "bad_verification_code")])
def test_refused_code_is_provider_refused(oidc_server, provider, error):
    spec = _spec(oidc_server, provider)
    client_id, secret = _register(oidc_server, provider)
    client = _client(spec, client_id, secret)
    g = _grant(oidc_server, spec, client_id)
    # a wrong PKCE verifier (the provider's 400 invalid_grant; GitHub the same with 200)
    with pytest.raises(ProviderRefused) as exc:
        client.exchange_code(code=g["code"], redirect_uri=REDIRECT,
                             code_verifier=_b64url(secrets.token_bytes(48)))
    assert exc.value.error == "invalid_grant" and "invalid_grant" in str(exc.value)
    # the code is now spent: a retry with the right verifier is refused too (single use)
    with pytest.raises(ProviderRefused) as exc:
        client.exchange_code(code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert exc.value.error == error
    assert str(exc.value) == f"{spec.display_name} refused the authorization code ({error})."


def test_wrong_client_secret_is_refused(oidc_server):
    spec = _spec(oidc_server, "linkedin")
    client_id, _ = _register(oidc_server, "linkedin")
    g = _grant(oidc_server, spec, client_id)
    with pytest.raises(ProviderRefused) as exc:
        _client(spec, client_id, "not-the-secret").exchange_code(
            code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert exc.value.error == "invalid_client"


@pytest.mark.parametrize("overrides,reason", [
    ({"aud": "someone-else"}, "wrong audience"),
    ({"iss": "https://evil.example"}, "wrong issuer"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"iat": int(time.time()) + 3600}, "issued in the future"),
    ({"nonce": "other"}, "nonce mismatch"),
    ({"sub": None}, "MissingRequiredClaimError"),
])
def test_bad_id_token_is_invalid_id_token(oidc_server, overrides, reason):
    spec = _spec(oidc_server, "google")
    client_id, secret = _register(oidc_server, "google")
    g = _grant(oidc_server, spec, client_id, overrides=overrides)
    client = _client(spec, client_id, secret)
    tokens = client.exchange_code(code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    with pytest.raises(InvalidIdToken) as exc:
        client.fetch_profile(tokens, nonce=g["nonce"], now=time.time())
    assert exc.value.reason == reason


def test_id_token_times_use_the_callers_clock_with_skew(oidc_server):
    spec = _spec(oidc_server, "google")
    client_id, secret = _register(oidc_server, "google")
    g = _grant(oidc_server, spec, client_id)
    client = _client(spec, client_id, secret, clock_skew_seconds=60)
    id_token = client.exchange_code(code=g["code"], redirect_uri=REDIRECT,
                                    code_verifier=g["verifier"])["id_token"]
    exp = jwt.decode(id_token, options={"verify_signature": False})["exp"]
    assert client.verify_id_token(id_token, nonce=g["nonce"], now=exp + 59)["sub"]
    with pytest.raises(InvalidIdToken, match="expired"):
        client.verify_id_token(id_token, nonce=g["nonce"], now=exp + 60)
    with pytest.raises(InvalidIdToken, match="issued in the future"):
        client.verify_id_token(id_token, nonce=g["nonce"], now=exp - 3600 - 61)
    with pytest.raises(InvalidIdToken, match="malformed"):
        client.verify_id_token("not.a.jwt", nonce=g["nonce"], now=time.time())
    unsigned = jwt.encode({"sub": "x"}, key=None, algorithm="none")
    with pytest.raises(InvalidIdToken, match="algorithm 'none' not accepted"):
        client.verify_id_token(unsigned, nonce=g["nonce"], now=time.time())
    with pytest.raises(InvalidIdToken, match="missing"):
        client.fetch_profile({"access_token": "x"}, nonce=g["nonce"], now=time.time())


def test_rotated_provider_keys_are_refetched_once(oidc_server):
    spec = _spec(oidc_server, "google")
    client_id, secret = _register(oidc_server, "google")
    session, cache = RecordingSession(), JwksCache()
    client = _client(spec, client_id, secret, session=session, jwks_cache=cache)
    client.jwks()                      # cached before the rotation
    oidc_server.rotate_keys()
    g = _grant(oidc_server, spec, client_id)
    tokens = client.exchange_code(code=g["code"], redirect_uri=REDIRECT, code_verifier=g["verifier"])
    assert client.fetch_profile(tokens, nonce=g["nonce"], now=time.time()).subject
    assert [u for _, u in session.calls].count(spec.jwks_url) == 2


# --- the provider misbehaving ------------------------------------------------------------------

def test_unreachable_provider_is_provider_unavailable(oidc_server):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec = dataclasses.replace(_spec(oidc_server, "google"), token_url=dead + "/token",
                               jwks_url=dead + "/certs", userinfo_url=dead + "/userinfo")
    client = OAuthProviderClient(spec, client_id="c", client_secret="s", timeout=2,
                                 jwks_cache=JwksCache())
    with pytest.raises(ProviderUnavailable, match="Google could not be reached"):
        client.exchange_code(code="x", redirect_uri=REDIRECT, code_verifier="v" * 43)
    with pytest.raises(ProviderUnavailable, match="signing keys could not be fetched"):
        client.jwks()
    with pytest.raises(ProviderUnavailable, match="Google could not be reached"):
        client.api_get(spec.userinfo_url, "token")


def test_provider_answers_we_cannot_use_are_bad_answers(oidc_server):
    base = oidc_server.tenant_url("google")
    spec = dataclasses.replace(_spec(oidc_server, "google"), jwks_url=base + "/no-such-keys")
    client = _client(spec, "c", "s")
    with pytest.raises(ProviderUnavailable):      # a 404 for the key set
        client.jwks()
    with pytest.raises(ProviderBadAnswer, match="refused the profile request"):
        client.api_get(spec.userinfo_url, "not-a-token")  # the provider's 401
    # a JSON answer that is not a key set
    spec = dataclasses.replace(spec, jwks_url=oidc_server.issuer("google")
                               + "/.well-known/openid-configuration")
    with pytest.raises(ProviderBadAnswer, match="signing keys are unusable"):
        _client(spec, "c", "s").jwks()


class _BrokenProvider(LoopbackHandler):
    """A provider having a bad day: 503 on /down, an HTML page with 200 elsewhere."""

    def do_POST(self):
        self.read_body()
        if self.path.startswith("/down"):
            return self.json_response(503, {"error": "temporarily_unavailable"})
        return self.send_body(200, b"<html>maintenance</html>", "text/html")

    do_GET = do_POST


@pytest.fixture(scope="module")
def broken_provider():
    server, base = start_in_thread(LoopbackServer(0, _BrokenProvider), "broken-oidc")
    yield base
    server.stop()


def test_provider_5xx_is_unavailable_and_html_is_a_bad_answer(oidc_server, broken_provider):
    spec = dataclasses.replace(_spec(oidc_server, "google"), token_url=broken_provider + "/down/token",
                               jwks_url=broken_provider + "/certs")
    client = _client(spec, "c", "s")
    with pytest.raises(ProviderUnavailable, match="Google is unavailable"):
        client.exchange_code(code="x", redirect_uri=REDIRECT, code_verifier="v" * 43)
    with pytest.raises(ProviderBadAnswer, match="token answer was not JSON"):
        _client(dataclasses.replace(spec, token_url=broken_provider + "/token"), "c", "s") \
            .exchange_code(code="x", redirect_uri=REDIRECT, code_verifier="v" * 43)
    with pytest.raises(ProviderBadAnswer, match="JWKS answer was not JSON"):
        client.jwks()
    with pytest.raises(ProviderBadAnswer, match="profile answer was not JSON"):
        client.api_get(broken_provider + "/userinfo", "token")


# --- identity's side: the adapter's failures in the error envelope ------------------------------

@pytest.mark.parametrize("exc,status,error,code", [
    (ProviderRefused("Google refused the authorization code (invalid_grant).", error="invalid_grant"),
     400, InvalidRequest, "oauth_exchange_failed"),
    (InvalidIdToken("wrong audience"), 401, AuthenticationError, "invalid_id_token"),
    (ProviderUnavailable("Google could not be reached."), 503, ServiceUnavailable,
     "provider_unavailable"),
    (ProviderBadAnswer("The provider's token answer was not JSON."), 503, ServiceUnavailable,
     "provider_error"),
])
def test_identity_maps_adapter_errors(exc, status, error, code):
    with pytest.raises(error) as raised, social.provider_errors():
        raise exc
    assert raised.value.status == status and raised.value.code == code
    assert str(exc) in str(raised.value)
    if code == "oauth_exchange_failed":
        assert raised.value.param == "code"


def _start_google(deps, auth, oidc_server):
    client_id, secret = _register(oidc_server, "google")
    oidc_server.register_client("google", client_id, client_secret=secret,
                                redirect_uris=[social.callback_url(deps, "google")])
    cfg = OAuthSettings(google_client_id=client_id, google_client_secret=secret,
                        google_base_url=oidc_server.tenant_url("google"))
    deps.extras["identity.oauth_settings"] = cfg
    r = auth.get("/v1/auth/oauth/google/authorize", headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 200, r.get_json()
    oidc_server.queue_login("google", _person("google"))
    resp = requests.get(r.get_json()["url"], allow_redirects=False, timeout=5)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    return cfg, params


def test_callback_with_the_provider_down_is_a_503_in_the_envelope(deps, auth, oidc_server):
    cfg, params = _start_google(deps, auth, oidc_server)
    deps.extras["identity.oauth_settings"] = cfg.model_copy(
        update={"google_base_url": f"http://127.0.0.1:{free_port()}"})
    r = auth.get(f"/v1/auth/oauth/google/callback?{urllib.parse.urlencode(params)}",
                 headers={"X-Forwarded-For": fresh_ip()})
    body = assert_error(r, 503, "provider_unavailable")
    assert body["error"]["message"] == "Google could not be reached."


def test_callback_uses_the_injected_http_session(deps, auth, oidc_server):
    session = RecordingSession()
    deps.extras["identity.oauth_http"] = session
    _, params = _start_google(deps, auth, oidc_server)
    r = auth.get(f"/v1/auth/oauth/google/callback?{urllib.parse.urlencode(params)}",
                 headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 201, r.get_json()
    assert session.calls and session.calls[0][0] == "POST"
    assert session.calls[0][1] == oidc_server.tenant_url("google") + "/token"


def test_adapter_reads_no_settings_and_no_database():
    """Item 9: the adapter takes what it needs as arguments; identity owns settings and state."""
    import ast
    import pathlib

    import shared.adapters.oauth_provider as adapter

    tree = ast.parse(pathlib.Path(adapter.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    banned = [m for m in imported if m.startswith(("shared.platform.config", "shared.identity",
                                                   "google.cloud", "pydantic_settings"))]
    assert not banned, banned
    assert "shared.platform.logs" in imported  # the walk sees the imports that are there


def test_an_address_we_cannot_keep_is_not_vouched_for():
    from shared.adapters.oauth_provider import ProviderProfile
    from shared.identity.social.oauth import identity_from_profile
    kept = identity_from_profile(ProviderProfile("google", "s1", "Ann@Example.com", True, "Ann"))
    assert kept.email == "Ann@example.com" and kept.email_verified is True  # domain lower-cased
    dropped = identity_from_profile(ProviderProfile("google", "s2", "not an address", True, "Bo"))
    assert dropped.email is None and dropped.email_verified is False
