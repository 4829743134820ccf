"""Social login and account linking: Google, Apple, LinkedIn (OpenID Connect) and GitHub (OAuth 2).

Flow (authorization code + PKCE S256 + nonce, RFC 6749 / RFC 7636 / OIDC Core):

1. ``begin_authorization``: a random ``state`` (32 bytes) — stored only as its SHA-256 in
   ``oauth_states/{sha256}``, single use, 10 minutes — with the PKCE ``code_verifier`` and an
   OIDC ``nonce``; answers the provider's authorize URL.
2. ``complete_authorization`` (the callback, or the app relaying ``code`` + ``state``): the state
   is consumed in a transaction (a replay is a 400), the code is exchanged with the verifier,
   then the identity is proven: OIDC providers by the ``id_token`` verified against the
   provider's JWKS (signature, ``iss``, ``aud``/``azp``, ``exp``/``iat`` with skew, ``nonce``);
   GitHub by its ``/user`` and ``/user/emails`` API.
3. The identity ``social:{provider}:{sub}`` is a directory handle: it signs in its user, or a new
   user is created (verified email claimed if free; a verified email already held by another
   account is a 409 — sign in and link instead, never silent account merging). A *link* flow
   (started with a Bearer token and ``link=true``) attaches the identity to that user; its
   completion must carry the same user's Bearer token.

Unlinking refuses (409) to leave an account with no way in (password, verified phone, another
social identity or a linked wallet).
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from typing import Any

import jwt
import requests

from shared.identity.responses import MfaChallenge, OAuthAuthorization, SocialSignIn
from shared.identity.sessions.signin import finish_sign_in
from shared.identity.social.config import OAuthSettings, oauth_settings
from shared.identity.social.identities import (MAX_IDENTITIES_PER_USER, identity_doc,
                                               identity_ref, identity_resource, user_identities)
from shared.identity.users import directory
from shared.identity.users.ways_in import ways_in
from shared.identity.resources import IDENTITY_LINKED, IDENTITY_UNLINKED, USER_CREATED, Identity
from shared.platform.clock import rfc3339
from shared.platform.errors import (AuthenticationError, Conflict, InvalidRequest, NotFound,
                                    ServiceUnavailable)
from shared.platform.logs import get_logger
from shared.platform.uow import run_unit

_log = get_logger(__name__)
STATES = "oauth_states"


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    name: str
    display_name: str
    kind: str                      # "oidc" | "oauth2"
    authorize_url: str
    token_url: str
    userinfo_url: str | None
    jwks_url: str | None
    issuer: str | None
    scopes: tuple[str, ...]
    emails_url: str | None = None  # GitHub
    response_mode: str | None = None  # Apple: form_post (required when scopes are requested)
    id_token_algs: tuple[str, ...] = ("RS256",)

    @property
    def oidc(self) -> bool:
        return self.kind == "oidc"


PROVIDERS: dict[str, ProviderSpec] = {
    "google": ProviderSpec(
        "google", "Google", "oidc",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        jwks_url="https://www.googleapis.com/oauth2/v3/certs",
        issuer="https://accounts.google.com", scopes=("openid", "email", "profile")),
    "apple": ProviderSpec(
        "apple", "Apple", "oidc",
        authorize_url="https://appleid.apple.com/auth/authorize",
        token_url="https://appleid.apple.com/auth/token",
        userinfo_url=None,
        jwks_url="https://appleid.apple.com/auth/keys",
        issuer="https://appleid.apple.com", scopes=("name", "email"), response_mode="form_post"),
    "linkedin": ProviderSpec(
        "linkedin", "LinkedIn", "oidc",
        authorize_url="https://www.linkedin.com/oauth/v2/authorization",
        token_url="https://www.linkedin.com/oauth/v2/accessToken",
        userinfo_url="https://api.linkedin.com/v2/userinfo",
        jwks_url="https://www.linkedin.com/oauth/openid/jwks",
        issuer="https://www.linkedin.com/oauth", scopes=("openid", "profile", "email")),
    "github": ProviderSpec(
        "github", "GitHub", "oauth2",
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com/user",
        jwks_url=None, issuer=None, scopes=("read:user", "user:email"),
        emails_url="https://api.github.com/user/emails"),
}


def _rebase(url: str | None, base: str) -> str | None:
    """Replace scheme://host of ``url`` with ``base`` (which may carry a path prefix)."""
    if url is None or not base:
        return url
    path = urllib.parse.urlsplit(url).path
    return base.rstrip("/") + (path if path != "/" else "")


def resolved_spec(name: str, cfg: OAuthSettings) -> ProviderSpec:
    spec = PROVIDERS.get(name)
    if spec is None:
        raise NotFound(f"Unknown sign-in provider '{name}'.", code="provider_unknown",
                       param="provider")
    if not cfg.enabled(name):
        raise InvalidRequest(f"Sign-in with {spec.display_name} is not enabled.",
                             code="provider_disabled", param="provider")
    base = cfg.base_url(name)
    if not base:
        return spec
    return dataclasses.replace(
        spec, authorize_url=_rebase(spec.authorize_url, base), token_url=_rebase(spec.token_url, base),
        userinfo_url=_rebase(spec.userinfo_url, base), jwks_url=_rebase(spec.jwks_url, base),
        issuer=_rebase(spec.issuer, base), emails_url=_rebase(spec.emails_url, base))


def callback_url(deps, provider: str) -> str:
    base = oauth_settings(deps).redirect_base_url or deps.settings.public_base_url
    return f"{base.rstrip('/')}/v1/auth/oauth/{provider}/callback"


# --- small crypto helpers --------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _state_ref(db, state: str):
    return db.collection(STATES).document(hashlib.sha256(state.encode()).hexdigest())


def apple_client_secret(cfg: OAuthSettings, spec: ProviderSpec, now: dt.datetime) -> str:
    """Apple's client secret: an ES256 JWT signed with the team's key (Apple developer docs,
    "Creating a client secret"): header ``kid`` = key id; claims ``iss`` = team id, ``iat``,
    ``exp`` (at most 6 months later), ``aud`` = https://appleid.apple.com, ``sub`` = client id."""
    iat = int(now.timestamp())
    claims = {"iss": cfg.apple_team_id, "iat": iat, "exp": iat + cfg.apple_client_secret_ttl_seconds,
              "aud": spec.issuer, "sub": cfg.apple_client_id}
    return jwt.encode(claims, cfg.apple_private_key, algorithm="ES256",
                      headers={"kid": cfg.apple_key_id, "alg": "ES256"})


# --- step 1: authorize ----------------------------------------------------------------------

def begin_authorization(uow, *, provider: str, redirect_uri: str | None = None,
                        link_user_id: str | None = None) -> OAuthAuthorization:
    deps = uow.deps
    cfg = oauth_settings(deps)
    spec = resolved_spec(provider, cfg)
    default_redirect = callback_url(deps, provider)
    redirect = redirect_uri or default_redirect
    if redirect != default_redirect and redirect not in cfg.allowed_redirect_uris:
        raise InvalidRequest("redirect_uri is not registered for this application.",
                             code="redirect_uri_not_allowed", param="redirect_uri")
    now = uow.now
    state = _b64url(secrets.token_bytes(32))
    verifier = _b64url(secrets.token_bytes(48))  # 64 chars, RFC 7636 allows 43..128
    nonce = _b64url(secrets.token_bytes(24))
    expires = now + dt.timedelta(seconds=cfg.state_ttl_seconds)
    uow.create(_state_ref(uow.db, state), {
        "provider": provider, "code_verifier": verifier, "nonce": nonce, "redirect_uri": redirect,
        "link_user_id": link_user_id, "created_at": now, "expires_at": expires, "used_at": None,
        "purge_at": expires + dt.timedelta(days=1)})
    params = {"response_type": "code", "client_id": cfg.client_id(provider),
              "redirect_uri": redirect, "scope": " ".join(spec.scopes), "state": state,
              "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
    if spec.oidc:
        params["nonce"] = nonce
    if spec.response_mode:
        params["response_mode"] = spec.response_mode
    if provider == "google":
        params["prompt"] = "select_account"
    if provider == "github":
        params["allow_signup"] = "true"
    return OAuthAuthorization(
        provider=provider,
        url=f"{spec.authorize_url}?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}",
        state=state, redirect_uri=redirect, link=link_user_id is not None,
        expires_at=rfc3339(expires), expires_in=cfg.state_ttl_seconds)


# --- step 2: callback --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProviderIdentity:
    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    login: str | None = None


def _consume_state(deps, provider: str, state: str) -> dict[str, Any]:
    """Spend the state in its own commit, before the code is exchanged with the provider."""
    if not state or len(state) > 256:
        raise InvalidRequest("The state is missing or malformed.", code="invalid_state", param="state")
    ref = _state_ref(deps.db, state)

    def run(uow):
        snap = uow.get(ref)
        if not snap.exists:
            return "missing", None
        doc = snap.to_dict()
        if doc.get("used_at") is not None:
            return "used", None
        uow.update(ref, {"used_at": uow.now})
        if doc["provider"] != provider:
            return "provider", None
        if doc["expires_at"] <= uow.now:
            return "expired", None
        return "ok", doc

    outcome, doc = run_unit(deps, run)
    messages = {"missing": "Unknown state; start the sign-in again.",
                "used": "This sign-in attempt was already completed; start again.",
                "provider": "The state belongs to another provider.",
                "expired": "The sign-in attempt expired; start again."}
    if outcome != "ok":
        raise InvalidRequest(messages[outcome], code="invalid_state", param="state")
    return doc


def _http(deps) -> requests.Session:
    return deps.get("identity.oauth_http", requests.Session)


def _provider_json(resp: requests.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ServiceUnavailable(f"The provider's {what} answer was not JSON.",
                                 code="provider_error") from None


def exchange_code(deps, spec: ProviderSpec, cfg: OAuthSettings, *, code: str, redirect_uri: str,
                  code_verifier: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": cfg.client_id(spec.name), "code_verifier": code_verifier}
    form["client_secret"] = (apple_client_secret(cfg, spec, deps.clock.now())
                             if spec.name == "apple" else cfg.client_secret(spec.name))
    try:
        resp = _http(deps).post(spec.token_url, data=form, timeout=cfg.http_timeout_seconds,
                                headers={"Accept": "application/json"})
    except requests.RequestException:
        raise ServiceUnavailable(f"{spec.display_name} could not be reached.",
                                 code="provider_unavailable") from None
    if resp.status_code >= 500:
        raise ServiceUnavailable(f"{spec.display_name} is unavailable.", code="provider_unavailable")
    payload = _provider_json(resp, "token")
    # GitHub answers errors with 200 and {"error": ...}; the others with 400/401.
    if resp.status_code >= 400 or not isinstance(payload, dict) or payload.get("error") \
            or not payload.get("access_token"):
        err = payload.get("error") if isinstance(payload, dict) else None
        _log.info("oauth code exchange refused by %s: %s", spec.name, err)
        raise InvalidRequest(f"{spec.display_name} refused the authorization code"
                             f" ({err or 'no access token'}).", code="oauth_exchange_failed",
                             param="code")
    return payload


# JWKS per URL, cached per process.
_jwks_cache: dict[str, tuple[float, jwt.PyJWKSet]] = {}
_jwks_lock = threading.Lock()


def _jwks(deps, url: str, cfg: OAuthSettings, *, refresh: bool = False) -> jwt.PyJWKSet:
    with _jwks_lock:
        hit = _jwks_cache.get(url)
    if hit and not refresh and hit[0] > time.monotonic():
        return hit[1]
    try:
        resp = _http(deps).get(url, timeout=cfg.http_timeout_seconds)
    except requests.RequestException:
        raise ServiceUnavailable("The provider's signing keys could not be fetched.",
                                 code="provider_unavailable") from None
    if resp.status_code != 200:
        raise ServiceUnavailable("The provider's signing keys could not be fetched.",
                                 code="provider_unavailable")
    try:
        keyset = jwt.PyJWKSet.from_dict(_provider_json(resp, "JWKS"))
    except (jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError, KeyError):
        raise ServiceUnavailable("The provider's signing keys are unusable.",
                                 code="provider_error") from None
    with _jwks_lock:
        _jwks_cache[url] = (time.monotonic() + cfg.jwks_cache_seconds, keyset)
    return keyset


def _bad_token(reason: str) -> AuthenticationError:
    return AuthenticationError(f"The identity token was rejected: {reason}.", code="invalid_id_token")


def verify_id_token(deps, spec: ProviderSpec, cfg: OAuthSettings, id_token: str, *,
                    nonce: str) -> dict[str, Any]:
    """Verify an OIDC id_token (OIDC Core 3.1.3.7) with our clock."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.DecodeError:
        raise _bad_token("malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in spec.id_token_algs:
        raise _bad_token(f"algorithm {alg!r} not accepted")
    keyset = _jwks(deps, spec.jwks_url, cfg)
    key = next((k for k in keyset.keys if k.key_id == kid), None)
    if key is None:  # the provider rotated its keys: refetch once
        keyset = _jwks(deps, spec.jwks_url, cfg, refresh=True)
        key = next((k for k in keyset.keys if k.key_id == kid), None)
    if key is None:
        raise _bad_token("unknown signing key")
    client_id = cfg.client_id(spec.name)
    try:
        claims = jwt.decode(id_token, key.key, algorithms=[alg], audience=client_id,
                            issuer=spec.issuer,
                            options={"require": ["iss", "aud", "exp", "iat", "sub"],
                                     "verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidAudienceError:
        raise _bad_token("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise _bad_token("wrong issuer") from None
    except jwt.InvalidSignatureError:
        raise _bad_token("bad signature") from None
    except jwt.PyJWTError as exc:
        raise _bad_token(type(exc).__name__) from None
    now = deps.clock.now().timestamp()
    skew = cfg.clock_skew_seconds
    if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= now - skew:
        raise _bad_token("expired")
    if not isinstance(claims["iat"], (int, float)) or claims["iat"] > now + skew:
        raise _bad_token("issued in the future")
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise _bad_token("wrong authorized party")
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise _bad_token("nonce mismatch")
    if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 255:
        raise _bad_token("bad subject")
    return claims


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _api_get(deps, url: str, access_token: str, cfg: OAuthSettings, spec: ProviderSpec) -> Any:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if spec.name == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    try:
        resp = _http(deps).get(url, headers=headers, timeout=cfg.http_timeout_seconds)
    except requests.RequestException:
        raise ServiceUnavailable(f"{spec.display_name} could not be reached.",
                                 code="provider_unavailable") from None
    if resp.status_code != 200:
        raise ServiceUnavailable(f"{spec.display_name} refused the profile request.",
                                 code="provider_error")
    return _provider_json(resp, "profile")


def _apple_name(raw_user: str | None) -> str | None:
    """Apple posts ``user`` (JSON: {"name": {"firstName", "lastName"}, "email"}) once."""
    if not raw_user:
        return None
    try:
        data = json.loads(raw_user)
        name = data.get("name") or {}
        full = " ".join(p for p in (name.get("firstName"), name.get("lastName")) if p)
        return full[:64] or None
    except (ValueError, AttributeError, TypeError):
        return None


def fetch_identity(deps, spec: ProviderSpec, cfg: OAuthSettings, tokens: dict[str, Any], *,
                   nonce: str, apple_user: str | None = None) -> ProviderIdentity:
    if spec.oidc:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise _bad_token("missing")
        claims = verify_id_token(deps, spec, cfg, id_token, nonce=nonce)
        email, verified, name = claims.get("email"), _truthy(claims.get("email_verified")), claims.get("name")
        if spec.userinfo_url and (not email or not name):
            info = _api_get(deps, spec.userinfo_url, tokens["access_token"], cfg, spec)
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                raise _bad_token("userinfo subject differs")  # OIDC Core 5.3.4
            email = email or info.get("email")
            verified = verified or _truthy(info.get("email_verified"))
            name = name or info.get("name")
        if spec.name == "apple":
            name = name or _apple_name(apple_user)
        return ProviderIdentity(spec.name, claims["sub"], _clean_email(email), bool(email and verified),
                                _clean_name(name))
    # GitHub: OAuth 2 only; the numeric id is the stable subject (logins can change).
    user = _api_get(deps, spec.userinfo_url, tokens["access_token"], cfg, spec)
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise ServiceUnavailable("GitHub returned an unexpected profile.", code="provider_error")
    email, verified = None, False
    if spec.emails_url:
        emails = _api_get(deps, spec.emails_url, tokens["access_token"], cfg, spec)
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None) \
            if isinstance(emails, list) else None
        if primary:
            email, verified = primary.get("email"), bool(primary.get("verified"))
    return ProviderIdentity("github", str(user["id"]), _clean_email(email), bool(email and verified),
                            _clean_name(user.get("name") or user.get("login")), user.get("login"))


def _clean_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    from shared.identity.models import normalise_email
    try:
        return normalise_email(value)
    except ValueError:
        return None


def _clean_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = "".join(c for c in value if c.isprintable()).strip()
    return value[:64] or None


def complete_authorization(uow, *, provider: str, code: str | None, state: str | None,
                           error: str | None = None, error_description: str | None = None,
                           apple_user: str | None = None, bearer_user_id: str | None = None,
                           ip: str | None = None, user_agent: str | None = None
                           ) -> SocialSignIn | MfaChallenge | Identity:
    """Callback: the state is spent (own commit), the code exchanged with the provider, then
    the sign-in or link commits in ``uow`` (the route is ``atomic=False``: run once)."""
    deps = uow.deps
    cfg = oauth_settings(deps)
    spec = resolved_spec(provider, cfg)
    flow = _consume_state(deps, provider, state or "")
    if error:
        raise InvalidRequest(f"{spec.display_name} sign-in was not completed ({error[:64]}).",
                             code="oauth_denied")
    if not code or len(code) > 2048:
        raise InvalidRequest("The authorization code is missing.", code="parameter_missing", param="code")
    link_user_id = flow.get("link_user_id")
    if link_user_id and bearer_user_id != link_user_id:
        # The app relays a link completion with the same user's token (no cross-user CSRF).
        raise AuthenticationError("Completing a link needs the Bearer token of the user who started it.",
                                  code="link_requires_same_user")
    tokens = exchange_code(deps, spec, cfg, code=code, redirect_uri=flow["redirect_uri"],
                           code_verifier=flow["code_verifier"])
    ident = fetch_identity(deps, spec, cfg, tokens, nonce=flow["nonce"], apple_user=apple_user)
    if link_user_id:
        return link_identity(uow, link_user_id, ident)
    return _sign_in(uow, ident, ip=ip, user_agent=user_agent)


def _sign_in(uow, ident: ProviderIdentity, *, ip, user_agent) -> SocialSignIn | MfaChallenge:
    db, now = uow.db, uow.now
    handle = directory.handle_ref(db, "social", f"{ident.provider}:{ident.subject}")
    email_handle = directory.handle_ref(db, "email", ident.email) if ident.email else None
    iref = identity_ref(db, ident.provider, ident.subject)
    snaps = uow.get_all([r for r in (handle, email_handle, iref) if r is not None])
    held = snaps[handle.path]
    created = False
    if held.exists:
        usnap = uow.get(directory.user_ref(db, held.get("user_id")))
        if not usnap.exists:
            raise NotFound("The account for this identity no longer exists.")
        user = usnap.to_dict()
        uow.update(iref, {"last_used_at": now})
    else:
        email, verified = ident.email, ident.email_verified
        if email and verified and snaps[email_handle.path].exists:
            raise Conflict("An account with this email address exists. Sign in to it and "
                           f"link {PROVIDERS[ident.provider].display_name} from your settings.",
                           code="email_in_use")
        user = directory.new_user_doc(now=now, email=email if verified else None,
                                      email_verified=verified, display_name=ident.name)
        directory.insert_user(db, uow, user, now=now,
                              extra_handles=[("social", f"{ident.provider}:{ident.subject}")])
        uow.create(iref, identity_doc(ident, user["id"], now))
        uow.emit(USER_CREATED.name, tenant=user["id"],
                 data={"object": {"id": user["id"], "object": "user"},
                       "method": f"social:{ident.provider}"})
        created = True
    answer = finish_sign_in(uow, user, amr=["fed"], ip=ip, user_agent=user_agent)
    if isinstance(answer, MfaChallenge):  # a second factor is on: no tokens yet
        return answer
    return SocialSignIn(**dict(answer), user_id=user["id"], new_user=created,
                        provider=ident.provider)


def link_identity(uow, user_id: str, ident: ProviderIdentity) -> Identity:
    db, now = uow.db, uow.now
    handle = directory.handle_ref(db, "social", f"{ident.provider}:{ident.subject}")
    iref = identity_ref(db, ident.provider, ident.subject)
    snaps = uow.get_all([handle, iref])
    held = snaps[handle.path]
    mine = user_identities(uow, user_id)
    if held.exists:
        if held.get("user_id") != user_id:
            raise Conflict(f"This {PROVIDERS[ident.provider].display_name} account is linked "
                           "to another Payloom account.", code="identity_linked_elsewhere")
        return identity_resource(snaps[iref.path].to_dict())
    if any(d["provider"] == ident.provider for d in mine):
        raise Conflict(f"A {PROVIDERS[ident.provider].display_name} account is already linked; "
                       "unlink it first.", code="provider_already_linked")
    if len(mine) >= MAX_IDENTITIES_PER_USER:
        raise Conflict("Too many linked identities.", code="too_many_identities")
    doc = identity_doc(ident, user_id, now)
    directory.claim_handle(db, uow, "social", f"{ident.provider}:{ident.subject}", user_id, now)
    uow.create(iref, doc)
    uow.emit(IDENTITY_LINKED.name, tenant=user_id, data={"object": identity_resource(doc).model_dump(mode="json")})
    return identity_resource(doc)


def unlink_identity(uow, user_id: str, provider: str) -> None:
    if provider not in PROVIDERS:
        raise NotFound(f"Unknown sign-in provider '{provider}'.", code="provider_unknown",
                       param="provider")
    counts = ways_in(uow, user_id)
    mine = user_identities(uow, user_id)
    doc = next((d for d in mine if d["provider"] == provider), None)
    if doc is None:
        raise NotFound(f"No {PROVIDERS[provider].display_name} account is linked.",
                       code="resource_missing", param="provider")
    remaining = counts["password"] + counts["phone"] + counts["wallets"] + counts["identities"] - 1
    if remaining <= 0:
        raise Conflict("This is your only way to sign in. Add a password, a phone number or "
                       "another sign-in method first.", code="last_sign_in_method")
    directory.release_handle(uow.db, uow, "social", f"{doc['provider']}:{doc['subject']}")
    uow.delete(identity_ref(uow.db, doc["provider"], doc["subject"]))
    uow.emit(IDENTITY_UNLINKED.name, tenant=user_id, data={"object": identity_resource(doc).model_dump(mode="json")})
