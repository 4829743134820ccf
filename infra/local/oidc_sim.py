"""Loopback OAuth 2.0 / OpenID Connect provider simulating Google, Apple, LinkedIn and GitHub.

A real HTTP server (127.0.0.1 only), so the production client in ``shared.adapters.oauth_provider (called from shared.identity.social.oauth)`` is
what tests exercise. Each provider is a *tenant* under its own path prefix, laid out like the
real provider (the client rebases its production URLs onto ``{base}/{tenant}``):

=========  ===========================  =================================================
tenant     issuer                       endpoints (below ``/{tenant}``)
=========  ===========================  =================================================
google     ``{base}/google``            /o/oauth2/v2/auth, /token, /v1/userinfo, /oauth2/v3/certs
apple      ``{base}/apple``             /auth/authorize, /auth/token, /auth/keys (form_post)
linkedin   ``{base}/linkedin/oauth``    /oauth/v2/authorization, /oauth/v2/accessToken,
                                        /v2/userinfo, /oauth/openid/jwks
github     (OAuth 2 only)               /login/oauth/authorize, /login/oauth/access_token,
                                        /user, /user/emails
=========  ===========================  =================================================

plus ``{issuer}/.well-known/openid-configuration`` for the OIDC tenants.

Behaviour:

* **authorize** auto-consents: the user is the next one queued with ``queue_login`` (else a
  default user) and the browser is redirected to ``redirect_uri`` with ``code`` and ``state``
  (Apple with ``response_mode=form_post``: an auto-submitting HTML form). Unknown clients or
  unregistered redirect URIs get an error page, never a redirect (as real providers do).
* **token** authenticates the client (``client_secret_post`` or basic; Apple: the client secret
  must be an ES256 JWT signed by the registered key with iss = team id, sub = client id,
  aud = issuer), checks the code (single use, 10 minutes, same client and redirect_uri) and
  **PKCE**: S256(code_verifier) must equal the code_challenge (RFC 7636), else ``invalid_grant``.
  GitHub answers errors with 200 and ``{"error": ...}`` like the real one.
* **id_token**: RS256, ``kid`` from the JWKS, claims iss/aud/sub/iat/exp/nonce/email/...;
  ``queue_login(..., id_token_overrides={...})`` lets a test corrupt one (nonce, aud, exp).
* **userinfo** / GitHub ``/user`` and ``/user/emails`` with the access token.

In-process: ``server, base_url = start()``; ``server.register_client(...)``; ``server.stop()``.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.local.simserver import HOST  # noqa: F401 - kept as part of this module's API
from infra.local.simserver import (LoopbackHandler, LoopbackServer, parse_form, serve_cli,
                                   start_in_thread)

DEFAULT_PORT = 9097
CODE_TTL = 600
TOKEN_TTL = 3599
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

LAYOUTS: dict[str, dict[str, str]] = {
    "google": {"issuer": "", "authorize": "/o/oauth2/v2/auth", "token": "/token",
               "userinfo": "/v1/userinfo", "jwks": "/oauth2/v3/certs"},
    "apple": {"issuer": "", "authorize": "/auth/authorize", "token": "/auth/token",
              "jwks": "/auth/keys"},
    "linkedin": {"issuer": "/oauth", "authorize": "/oauth/v2/authorization",
                 "token": "/oauth/v2/accessToken", "userinfo": "/v2/userinfo",
                 "jwks": "/oauth/openid/jwks"},
    "github": {"authorize": "/login/oauth/authorize", "token": "/login/oauth/access_token",
               "user": "/user", "emails": "/user/emails"},
}
OIDC_TENANTS = ("google", "apple", "linkedin")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def default_user(tenant: str) -> dict[str, Any]:
    if tenant == "github":
        return {"id": 583231, "login": "octocat", "name": "The Octocat",
                "email": "octocat@example.com", "email_verified": True}
    return {"sub": f"{tenant}-sub-1", "email": f"someone@{tenant}.example",
            "email_verified": True, "name": "Sok Dara"}


class OidcSimServer(LoopbackServer):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port, _Handler)
        self._clients: dict[tuple[str, str], dict[str, Any]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._access: dict[str, dict[str, Any]] = {}
        self._queued: dict[str, list[dict[str, Any]]] = {t: [] for t in LAYOUTS}
        self._keys: list[tuple[str, Any]] = []
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.rotate_keys()

    # -- configuration and test hooks ---------------------------------------------------------
    def tenant_url(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}"

    def issuer(self, tenant: str) -> str:
        return self.tenant_url(tenant) + LAYOUTS[tenant].get("issuer", "")

    def register_client(self, tenant: str, client_id: str, *, client_secret: str | None = None,
                        redirect_uris: list[str] | None = None, apple_team_id: str | None = None,
                        apple_key_id: str | None = None, apple_public_key: Any = None) -> None:
        """Register an app. Apple clients give the team id, key id and the public key of the
        ES256 key their client-secret JWTs are signed with."""
        with self._lock:
            self._clients[(tenant, client_id)] = {
                "secret": client_secret, "redirect_uris": list(redirect_uris or []),
                "team_id": apple_team_id, "key_id": apple_key_id, "public_key": apple_public_key}

    def queue_login(self, tenant: str, user: dict[str, Any] | None = None, *,
                    id_token_overrides: dict[str, Any] | None = None, deny: bool = False) -> None:
        """The next authorize on ``tenant`` signs in ``user`` (or the user denies consent)."""
        with self._lock:
            self._queued[tenant].append({"user": dict(user or default_user(tenant)),
                                         "overrides": dict(id_token_overrides or {}), "deny": deny})

    def rotate_keys(self) -> str:
        kid = "sim-" + secrets.token_hex(4)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._keys.insert(0, (kid, key))
            del self._keys[2:]
        return kid

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._keys)
        out = []
        for kid, key in keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    # -- internals ------------------------------------------------------------------------------
    def _client(self, tenant: str, client_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._clients.get((tenant, client_id))

    def _next_login(self, tenant: str) -> dict[str, Any]:
        with self._lock:
            if self._queued[tenant]:
                return self._queued[tenant].pop(0)
        return {"user": default_user(tenant), "overrides": {}, "deny": False}

    def _sign(self, claims: dict[str, Any]) -> str:
        with self._lock:
            kid, key = self._keys[0]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class _Handler(LoopbackHandler):
    server: OidcSimServer
    default_headers = {"Cache-Control": "no-store"}

    # -- plumbing ------------------------------------------------------------------------------
    def _page(self, status: int, text: str) -> None:
        self.send_body(status, f"<!doctype html><title>Error</title><p>{html.escape(text)}</p>".encode(),
                       "text/html; charset=utf-8")

    def _route(self) -> tuple[str | None, str]:
        path = urlsplit(self.path).path
        parts = path.split("/", 2)
        if len(parts) < 2 or parts[1] not in LAYOUTS:
            return None, path
        return parts[1], "/" + (parts[2] if len(parts) > 2 else "")

    def _endpoint(self, tenant: str, rel: str) -> str | None:
        layout = LAYOUTS[tenant]
        if tenant in OIDC_TENANTS and rel == layout["issuer"] + "/.well-known/openid-configuration":
            return "discovery"
        for name, path in layout.items():
            if name != "issuer" and rel == path:
                return name
        return None

    def do_GET(self) -> None:
        tenant, rel = self._route()
        endpoint = self._endpoint(tenant, rel) if tenant else None
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if endpoint == "authorize":
            return self._authorize(tenant, query)
        if endpoint == "jwks":
            return self.json_response(200, self.server.jwks())
        if endpoint == "discovery":
            return self.json_response(200, self._discovery(tenant))
        if endpoint in ("userinfo", "user", "emails"):
            return self._userinfo(tenant, endpoint)
        return self.json_response(404, {"error": "not_found"})

    def do_POST(self) -> None:
        raw = self.read_body()
        tenant, rel = self._route()
        endpoint = self._endpoint(tenant, rel) if tenant else None
        if endpoint == "token":
            return self._token(tenant, parse_form(raw))
        if endpoint == "userinfo":
            return self._userinfo(tenant, endpoint)
        return self.json_response(404, {"error": "not_found"})

    # -- endpoints -------------------------------------------------------------------------------
    def _discovery(self, tenant: str) -> dict[str, Any]:
        base, layout, issuer = self.server.tenant_url(tenant), LAYOUTS[tenant], self.server.issuer(tenant)
        doc = {"issuer": issuer, "authorization_endpoint": base + layout["authorize"],
               "token_endpoint": base + layout["token"], "jwks_uri": base + layout["jwks"],
               "response_types_supported": ["code"], "subject_types_supported": ["public", "pairwise"],
               "id_token_signing_alg_values_supported": ["RS256"],
               "code_challenge_methods_supported": ["S256"],
               "scopes_supported": ["openid", "email", "profile", "name"],
               "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
               "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name",
                                    "nonce", "sub"]}
        if "userinfo" in layout:
            doc["userinfo_endpoint"] = base + layout["userinfo"]
        if tenant == "apple":
            doc["response_modes_supported"] = ["query", "fragment", "form_post"]
        return doc

    def _authorize(self, tenant: str, q: dict[str, str]) -> None:
        self.server.authorize_requests.append({"tenant": tenant, **q})
        client = self.server._client(tenant, q.get("client_id", ""))
        if client is None:
            return self._page(400, "invalid_client: unknown client_id")
        redirect = q.get("redirect_uri", "")
        if not redirect or (client["redirect_uris"] and redirect not in client["redirect_uris"]):
            return self._page(400, "redirect_uri_mismatch")
        state, mode = q.get("state"), q.get("response_mode", "query")

        def reply(params: dict[str, str]) -> None:
            if state is not None:
                params["state"] = state
            if mode == "form_post":
                inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                                 for k, v in params.items())
                page = (f'<!doctype html><html><body onload="document.forms[0].submit()">'
                        f'<form method="post" action="{html.escape(redirect)}">{inputs}</form>'
                        f'</body></html>')
                return self.send_body(200, page.encode(), "text/html; charset=utf-8")
            sep = "&" if "?" in redirect else "?"
            return self.send_body(302, b"", "text/plain", {"Location": redirect + sep + urlencode(params)})

        if q.get("response_type") != "code":
            return reply({"error": "unsupported_response_type"})
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method", "plain")
        if challenge is not None and method != "S256":
            return reply({"error": "invalid_request", "error_description": "only S256 is supported"})
        if tenant in OIDC_TENANTS and tenant != "apple" and "openid" not in q.get("scope", "").split():
            return reply({"error": "invalid_scope", "error_description": "openid scope required"})
        login = self.server._next_login(tenant)
        if login["deny"]:
            return reply({"error": "access_denied", "error_description": "The user denied the request"})
        code = _b64url(secrets.token_bytes(24))
        with self.server._lock:
            self.server._codes[code] = {
                "tenant": tenant, "client_id": q["client_id"], "redirect_uri": redirect,
                "challenge": challenge, "nonce": q.get("nonce"), "scope": q.get("scope", ""),
                "user": login["user"], "overrides": login["overrides"],
                "expires": time.time() + CODE_TTL, "used": False}
        params = {"code": code}
        if tenant == "apple" and "name" in q.get("scope", "").split():
            first, _, last = (login["user"].get("name") or "").partition(" ")
            params["user"] = json.dumps({"name": {"firstName": first, "lastName": last},
                                         "email": login["user"].get("email")})
        return reply(params)

    def _client_auth(self, tenant: str, form: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        client = self.server._client(tenant, client_id)
        if client is None or secret is None:
            return None
        if tenant == "apple":
            try:
                hdr = jwt.get_unverified_header(secret)
                claims = jwt.decode(secret, client["public_key"], algorithms=["ES256"],
                                    audience=self.server.issuer("apple"),
                                    issuer=client["team_id"], options={"require": ["exp", "iat", "sub"]})
            except jwt.PyJWTError:
                return None
            if hdr.get("kid") != client["key_id"] or claims["sub"] != client_id \
                    or claims["exp"] - claims["iat"] > 15_777_000:
                return None
            return client_id, client
        if not hmac.compare_digest((client["secret"] or "").encode(), secret.encode()):
            return None
        return client_id, client

    def _token_error(self, tenant: str, status: int, error: str, description: str) -> None:
        if tenant == "github":  # GitHub answers 200 with an error object
            return self.json_response(200, {"error": error, "error_description": description,
                                            "error_uri": "https://docs.github.com/apps/troubleshooting"})
        return self.json_response(status, {"error": error, "error_description": description})

    def _token(self, tenant: str, form: dict[str, str]) -> None:
        self.server.token_requests.append({"tenant": tenant, **form})
        auth = self._client_auth(tenant, form)
        if auth is None:
            return self._token_error(tenant, 401, "invalid_client", "client authentication failed")
        client_id, _ = auth
        if form.get("grant_type") != "authorization_code":
            return self._token_error(tenant, 400, "unsupported_grant_type", "authorization_code only")
        code = form.get("code", "")
        with self.server._lock:
            grant = self.server._codes.get(code)
            reused = bool(grant and grant["used"])
            if grant:
                grant["used"] = True
        bad = "bad_verification_code" if tenant == "github" else "invalid_grant"
        if grant is None or reused or grant["tenant"] != tenant:
            return self._token_error(tenant, 400, bad, "The code is invalid or was already used")
        if grant["expires"] < time.time():
            return self._token_error(tenant, 400, bad, "The code has expired")
        if grant["client_id"] != client_id:
            return self._token_error(tenant, 400, bad, "The code was issued to another client")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._token_error(tenant, 400, "redirect_uri_mismatch" if tenant == "github"
                                     else "invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier")
        if grant["challenge"] is not None:
            if not verifier or not _VERIFIER_RE.match(verifier):
                return self._token_error(tenant, 400, "invalid_grant", "code_verifier missing or malformed")
            computed = _b64url(hashlib.sha256(verifier.encode()).digest())
            if not hmac.compare_digest(computed, grant["challenge"]):
                return self._token_error(tenant, 400, "invalid_grant", "PKCE verification failed")
        elif verifier:
            return self._token_error(tenant, 400, "invalid_grant", "code_verifier given but no challenge")
        access = ("gho_" if tenant == "github" else "ya29.") + _b64url(secrets.token_bytes(24))
        with self.server._lock:
            self.server._access[access] = {"tenant": tenant, "user": grant["user"],
                                           "expires": time.time() + TOKEN_TTL}
        if tenant == "github":
            payload = {"access_token": access, "token_type": "bearer", "scope": grant["scope"].replace(" ", ",")}
            if "application/json" not in (self.headers.get("Accept") or ""):
                return self.send_body(200, urlencode(payload).encode(), "application/x-www-form-urlencoded")
            return self.json_response(200, payload)
        payload = {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL,
                   "scope": grant["scope"]}
        if tenant == "apple":
            payload["refresh_token"] = "r" + _b64url(secrets.token_bytes(24))
        if tenant == "apple" or "openid" in grant["scope"].split():
            payload["id_token"] = self._id_token(tenant, client_id, grant, access)
        return self.json_response(200, payload)

    def _id_token(self, tenant: str, client_id: str, grant: dict[str, Any], access: str) -> str:
        user, now = grant["user"], int(time.time())
        digest = hashlib.sha256(access.encode()).digest()
        claims: dict[str, Any] = {"iss": self.server.issuer(tenant), "aud": client_id,
                                  "sub": str(user["sub"]), "iat": now, "exp": now + 3600,
                                  "auth_time": now, "at_hash": _b64url(digest[:16])}
        if grant["nonce"] is not None:
            claims["nonce"] = grant["nonce"]
        scopes = grant["scope"].split()
        if "email" in scopes and user.get("email"):
            claims["email"] = user["email"]
            verified = bool(user.get("email_verified"))
            claims["email_verified"] = ("true" if verified else "false") if tenant == "apple" else verified
        if tenant == "google":
            claims["azp"] = client_id
        if tenant == "apple":
            claims["nonce_supported"] = True
            claims["is_private_email"] = "false"
        elif "profile" in scopes and user.get("name"):
            claims["name"] = user["name"]
            given, _, family = user["name"].partition(" ")
            claims.update(given_name=given, family_name=family)
        claims.update(grant["overrides"])
        return self.server._sign({k: v for k, v in claims.items() if v is not None})

    def _userinfo(self, tenant: str, endpoint: str) -> None:
        header = self.headers.get("Authorization") or ""
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self.server._lock:
            grant = self.server._access.get(token)
        if grant is None or grant["tenant"] != tenant or grant["expires"] < time.time():
            if tenant == "github":
                return self.json_response(401, {"message": "Bad credentials",
                                                "documentation_url": "https://docs.github.com/rest"})
            return self.json_response(401, {"error": "invalid_token"},
                                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        user = grant["user"]
        if endpoint == "user":
            return self.json_response(200, {"login": user.get("login"), "id": user.get("id"),
                                            "node_id": "MDQ6VXNlcjE=", "type": "User",
                                            "name": user.get("name"), "email": user.get("public_email"),
                                            "avatar_url": "https://avatars.example/u/1"})
        if endpoint == "emails":
            emails = []
            if user.get("email"):
                emails.append({"email": user["email"], "primary": True,
                               "verified": bool(user.get("email_verified")), "visibility": "private"})
            emails.append({"email": f"{user.get('id')}+{user.get('login')}@users.noreply.github.com",
                           "primary": False, "verified": True, "visibility": None})
            return self.json_response(200, emails)
        info = {"sub": str(user["sub"]), "name": user.get("name"), "email": user.get("email"),
                "email_verified": bool(user.get("email_verified"))}
        return self.json_response(200, {k: v for k, v in info.items() if v is not None})


def start(port: int = 0) -> tuple[OidcSimServer, str]:
    return start_in_thread(OidcSimServer(port), "oidc-sim")


def _cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", action="append", default=[], metavar="TENANT:CLIENT_ID:SECRET",
                        help="register a client (google, linkedin or github; any redirect URI)")


def _cli_server(args: argparse.Namespace) -> OidcSimServer:
    server = OidcSimServer(args.port)
    for spec in args.client:
        tenant, client_id, secret = spec.split(":", 2)
        server.register_client(tenant, client_id, client_secret=secret)
    return server


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - manual use
    return serve_cli(
        _cli_server, argv=argv, description=__doc__.split("\n")[0], default_port=DEFAULT_PORT,
        add_arguments=_cli_arguments,
        banner=lambda server: f"oidc simulator on {server.base_url}; "
                              "tenants under /google /apple /linkedin /github")


if __name__ == "__main__":  # pragma: no cover - manual use
    raise SystemExit(main())
