"""Social login against the OIDC/OAuth simulator: the production client does every HTTP call."""
from __future__ import annotations

import datetime as dt
import html.parser
import time
import urllib.parse

import jwt
import pytest
from google.cloud.firestore import FieldFilter
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.identity.social import oauth as social
from shared.identity.social.config import OAuthSettings
from shared.platform.clock import FrozenClock
from tests.identity.helpers import assert_error, fresh_ip
from tests.support.identity import auth_headers, create_user_with_token

PROVIDERS = ("google", "apple", "linkedin", "github")
_apple_key = ec.generate_private_key(ec.SECP256R1())
APPLE_PEM = _apple_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


@pytest.fixture(autouse=True)
def oauth(deps, oidc_server):
    cfg = OAuthSettings(
        google_client_id="google-client", google_client_secret="google-secret",
        google_base_url=oidc_server.tenant_url("google"),
        github_client_id="github-client", github_client_secret="github-secret",
        github_base_url=oidc_server.tenant_url("github"),
        linkedin_client_id="linkedin-client", linkedin_client_secret="linkedin-secret",
        linkedin_base_url=oidc_server.tenant_url("linkedin"),
        apple_client_id="com.payloom.web", apple_team_id="TEAM123456", apple_key_id="KEY1234567",
        apple_private_key=APPLE_PEM, apple_base_url=oidc_server.tenant_url("apple"),
        allowed_redirect_uris=["payloom://oauth"])
    deps.extras["identity.oauth_settings"] = cfg
    for p in PROVIDERS:
        redirects = [social.callback_url(deps, p), "payloom://oauth"]
        if p == "apple":
            oidc_server.register_client(p, cfg.apple_client_id, redirect_uris=redirects,
                                        apple_team_id=cfg.apple_team_id, apple_key_id=cfg.apple_key_id,
                                        apple_public_key=_apple_key.public_key())
        else:
            oidc_server.register_client(p, cfg.client_id(p), client_secret=cfg.client_secret(p),
                                        redirect_uris=redirects)
    return cfg


class _Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a["value"]


def authorize(auth, provider: str, *, headers=None, query: str = "") -> dict:
    r = auth.get(f"/v1/auth/oauth/{provider}/authorize{query}",
                 headers={"X-Forwarded-For": fresh_ip(), **(headers or {})})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def consent(url: str) -> dict[str, str]:
    """What the browser would bring back from the provider (a redirect or Apple's form_post)."""
    resp = requests.get(url, allow_redirects=False, timeout=5)
    if resp.status_code == 302:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))
    assert resp.status_code == 200 and "<form" in resp.text, resp.text
    form = _Form()
    form.feed(resp.text)
    return form.fields


def callback(auth, provider: str, params: dict, *, post: bool = False, headers=None):
    headers = {"X-Forwarded-For": fresh_ip(), "User-Agent": "pytest-oauth", **(headers or {})}
    if provider == "apple":  # Apple's form_post: the browser posts the fields as a form
        return auth.post(f"/v1/auth/oauth/{provider}/callback", data=params, headers=headers)
    if post:  # an app relaying code + state as JSON
        return auth.post(f"/v1/auth/oauth/{provider}/callback", json=params, headers=headers)
    return auth.get(f"/v1/auth/oauth/{provider}/callback?{urllib.parse.urlencode(params)}",
                    headers=headers)


def login(auth, oidc_server, provider: str, user: dict | None = None, **kw):
    start = authorize(auth, provider)
    oidc_server.queue_login(provider, user)
    return callback(auth, provider, consent(start["url"]), **kw)


def _user(provider: str, n: str, email_verified: bool = True) -> dict:
    if provider == "github":
        return {"id": int(time.time() * 1000) % 10**9 + int(n), "login": f"gh{n}",
                "name": f"GitHub {n}", "email": f"gh{n}.{time.time_ns()}@example.com",
                "email_verified": email_verified}
    return {"sub": f"{provider}-{n}-{time.time_ns()}", "email": f"{provider}{n}.{time.time_ns()}@example.com",
            "email_verified": email_verified, "name": "Chan Sophea"}


# --- happy paths ----------------------------------------------------------------------------

def test_authorize_url_carries_state_pkce_and_nonce(auth, oauth, oidc_server):
    start = authorize(auth, "google")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start["url"]).query))
    assert start["url"].startswith(oidc_server.tenant_url("google") + "/o/oauth2/v2/auth?")
    assert q["response_type"] == "code" and q["client_id"] == "google-client"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["state"] == start["state"] and len(q["state"]) >= 43 and q["nonce"]
    assert q["scope"] == "openid email profile"
    assert q["redirect_uri"].endswith("/v1/auth/oauth/google/callback")
    assert start["expires_in"] == 600


@pytest.mark.parametrize("provider", ["google", "linkedin", "apple"])
def test_oidc_provider_sign_up_then_sign_in(deps, auth, me, oidc_server, provider):
    person = _user(provider, "1")
    r = login(auth, oidc_server, provider, person)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["new_user"] is True and body["provider"] == provider
    assert body["session"]["amr"] == ["fed"]
    user = deps.db.collection("users").document(body["user_id"]).get().to_dict()
    assert user["email"] == person["email"] and user["email_verified"] is True
    assert user["display_name"] == "Chan Sophea"
    handle = deps.db.collection("user_handles").document(f"social:{provider}:{person['sub']}").get()
    assert handle.exists and handle.get("user_id") == body["user_id"]
    # the code went back with the PKCE verifier (and Apple's ES256 client secret)
    token_req = oidc_server.token_requests[-1]
    assert token_req["code_verifier"] and token_req["tenant"] == provider
    if provider == "apple":
        assert jwt.get_unverified_header(token_req["client_secret"])["alg"] == "ES256"
    listed = me.get("/v1/me/identities", headers=auth_headers(body["access_token"])).get_json()
    assert [i["provider"] for i in listed["data"]] == [provider]

    again = login(auth, oidc_server, provider, person)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["user_id"] == body["user_id"] and again.get_json()["new_user"] is False


def test_github_oauth2_sign_up_uses_user_api(deps, auth, oidc_server):
    person = _user("github", "2")
    r = login(auth, oidc_server, "github", person)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    ident = deps.db.collection("user_identities").where(filter=FieldFilter("user_id", "==", body["user_id"])).get()[0].to_dict()
    assert ident["subject"] == str(person["id"]) and ident["login"] == person["login"]
    assert ident["email"] == person["email"]
    user = deps.db.collection("users").document(body["user_id"]).get().to_dict()
    assert user["email"] == person["email"] and user["email_verified"] is True
    assert "id_token" not in str(oidc_server.token_requests[-1])


def test_unverified_provider_email_is_not_claimed(deps, auth, oidc_server):
    person = _user("google", "3", email_verified=False)
    r = login(auth, oidc_server, "google", person)
    assert r.status_code == 201, r.get_json()
    user = deps.db.collection("users").document(r.get_json()["user_id"]).get().to_dict()
    assert user["email"] is None and user["email_verified"] is False


def test_app_relay_with_registered_redirect_uri(auth, oidc_server):
    start = authorize(auth, "google", query="?redirect_uri=payloom://oauth")
    assert start["redirect_uri"] == "payloom://oauth"
    oidc_server.queue_login("google", _user("google", "4"))
    r = callback(auth, "google", consent(start["url"]), post=True)
    assert r.status_code == 201, r.get_json()
    assert oidc_server.token_requests[-1]["redirect_uri"] == "payloom://oauth"


# --- refusals --------------------------------------------------------------------------------

def test_state_is_single_use(auth, oidc_server):
    start = authorize(auth, "google")
    oidc_server.queue_login("google", _user("google", "5"))
    params = consent(start["url"])
    assert callback(auth, "google", params).status_code == 201
    assert_error(callback(auth, "google", params), 400, "invalid_state")


def test_unknown_expired_or_cross_provider_state(deps, auth, oidc_server):
    assert_error(callback(auth, "google", {"code": "x", "state": "made-up"}), 400, "invalid_state")
    assert_error(callback(auth, "google", {"code": "x"}), 400, "invalid_state")
    gh = authorize(auth, "github")
    assert_error(callback(auth, "google", {"code": "x", "state": gh["state"]}), 400, "invalid_state")
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    start = authorize(auth, "google")
    oidc_server.queue_login("google", _user("google", "6"))
    params = consent(start["url"])
    deps.clock.advance(601)
    assert_error(callback(auth, "google", params), 400, "invalid_state")


@pytest.mark.parametrize("provider", ["google", "github"])
def test_pkce_mismatch_is_refused_by_the_provider_and_surfaced_as_400(auth, oidc_server, provider):
    # A code obtained for flow A, injected into flow B: our client sends B's verifier.
    a, b = authorize(auth, provider), authorize(auth, provider)
    oidc_server.queue_login(provider, _user(provider, "7"))
    params_a = consent(a["url"])
    r = callback(auth, provider, {"code": params_a["code"], "state": b["state"]})
    assert_error(r, 400, "oauth_exchange_failed")
    assert "invalid_grant" in r.get_json()["error"]["message"]
    assert oidc_server.token_requests[-1]["code"] == params_a["code"]


@pytest.mark.parametrize("override,reason", [
    ({"nonce": "not-the-nonce"}, "nonce mismatch"),
    ({"aud": "someone-else"}, "wrong audience"),
    ({"iss": "https://evil.example"}, "wrong issuer"),
    ({"exp": int(time.time()) - 3600}, "expired"),
])
def test_bad_id_tokens_are_rejected(auth, oidc_server, override, reason):
    start = authorize(auth, "google")
    oidc_server.queue_login("google", _user("google", "8"), id_token_overrides=override)
    r = callback(auth, "google", consent(start["url"]))
    body = assert_error(r, 401, "invalid_id_token")
    assert reason in body["error"]["message"]


def test_missing_nonce_is_rejected(auth, oidc_server):
    start = authorize(auth, "linkedin")
    oidc_server.queue_login("linkedin", _user("linkedin", "9"), id_token_overrides={"nonce": None})
    assert_error(callback(auth, "linkedin", consent(start["url"])), 401, "invalid_id_token")


def test_user_denies_consent(auth, oidc_server):
    start = authorize(auth, "google")
    oidc_server.queue_login("google", deny=True)
    params = consent(start["url"])
    assert params["error"] == "access_denied"
    assert_error(callback(auth, "google", params), 400, "oauth_denied")


def test_unknown_disabled_provider_and_bad_redirect(deps, auth, oauth):
    assert_error(auth.get("/v1/auth/oauth/myspace/authorize"), 404, "provider_unknown")
    deps.extras["identity.oauth_settings"] = oauth.model_copy(update={"linkedin_client_id": ""})
    assert_error(auth.get("/v1/auth/oauth/linkedin/authorize"), 400, "provider_disabled")
    assert_error(auth.get("/v1/auth/oauth/google/authorize?redirect_uri=https://evil.example/cb"),
                 400, "redirect_uri_not_allowed")
    assert_error(auth.get("/v1/auth/oauth/google/authorize?link=true"), 401)


def test_verified_email_of_another_account_is_409(deps, auth, oidc_server):
    create_user_with_token(deps, email="taken.by.password@example.com")
    person = {**_user("google", "10"), "email": "taken.by.password@example.com"}
    assert_error(login(auth, oidc_server, "google", person), 409, "email_in_use")


# --- linking and unlinking ---------------------------------------------------------------------

def _link(auth, oidc_server, provider, token, person, *, relay_token=None):
    start = authorize(auth, provider, headers=auth_headers(token), query="?link=true")
    assert start["link"] is True
    oidc_server.queue_login(provider, person)
    return callback(auth, provider, consent(start["url"]), post=True,
                    headers=auth_headers(relay_token or token))


def test_link_then_sign_in_with_the_linked_provider(deps, auth, me, oidc_server):
    user_id, token = create_user_with_token(deps)
    person = _user("google", "11")
    r = _link(auth, oidc_server, "google", token, person)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["object"] == "identity" and r.get_json()["provider"] == "google"
    signed_in = login(auth, oidc_server, "google", person)
    assert signed_in.status_code == 200 and signed_in.get_json()["user_id"] == user_id
    listed = me.get("/v1/me/identities", headers=auth_headers(token)).get_json()["data"]
    assert [i["subject"] for i in listed] == [person["sub"]]


def test_link_completion_needs_the_same_user(deps, auth, oidc_server):
    _, token = create_user_with_token(deps)
    _, other = create_user_with_token(deps)
    assert_error(_link(auth, oidc_server, "google", token, _user("google", "12"), relay_token=other),
                 401, "link_requires_same_user")
    start = authorize(auth, "github", headers=auth_headers(token), query="?link=true")
    oidc_server.queue_login("github", _user("github", "13"))
    assert_error(callback(auth, "github", consent(start["url"])), 401, "link_requires_same_user")


def test_identity_linked_to_another_account_is_409(deps, auth, oidc_server):
    person = _user("github", "14")
    assert login(auth, oidc_server, "github", person).status_code == 201
    _, token = create_user_with_token(deps)
    assert_error(_link(auth, oidc_server, "github", token, person), 409, "identity_linked_elsewhere")


def test_unlink_refuses_to_remove_the_last_way_in(deps, auth, me, oidc_server):
    r = login(auth, oidc_server, "google", _user("google", "15"))
    body = r.get_json()
    headers = auth_headers(body["access_token"])
    assert_error(me.delete("/v1/me/identities/google", headers=headers), 409, "last_sign_in_method")
    # With a second provider linked, either can go, but not both.
    assert _link(auth, oidc_server, "github", body["access_token"], _user("github", "16")).status_code == 200
    assert me.delete("/v1/me/identities/google", headers=headers).status_code == 204
    assert_error(me.delete("/v1/me/identities/github", headers=headers), 409, "last_sign_in_method")
    assert_error(me.delete("/v1/me/identities/google", headers=headers), 404)
    assert_error(me.delete("/v1/me/identities/myspace", headers=headers), 404, "provider_unknown")


def test_password_or_phone_counts_as_a_way_in(deps, auth, me, oidc_server, phone_user):
    _, token = create_user_with_token(deps)
    person = _user("google", "17")
    assert _link(auth, oidc_server, "google", token, person).status_code == 200
    assert me.delete("/v1/me/identities/google", headers=auth_headers(token)).status_code == 204
    assert not deps.db.collection("user_handles").document(f"social:google:{person['sub']}").get().exists
    # the identity can now sign up a fresh account
    assert login(auth, oidc_server, "google", person).status_code == 201

    _, headers, _, tokens = phone_user()
    assert _link(auth, oidc_server, "linkedin", tokens["access_token"], _user("linkedin", "18")).status_code == 200
    assert me.delete("/v1/me/identities/linkedin", headers=headers).status_code == 204


def test_simulator_discovery_and_jwks(oidc_server):
    doc = requests.get(oidc_server.issuer("linkedin") + "/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == oidc_server.issuer("linkedin")
    assert doc["jwks_uri"].endswith("/oauth/openid/jwks") and "S256" in doc["code_challenge_methods_supported"]
    keys = requests.get(doc["jwks_uri"], timeout=5).json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] for k in keys)
