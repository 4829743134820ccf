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

The provider protocol (token endpoint, JWKS, ID token checks, userinfo, Apple's client secret)
is ``shared.adapters.oauth_provider``; this module keeps the rules and maps the adapter's
errors to the envelope (``provider_errors``).
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests

from shared.adapters.oauth_provider import (InvalidIdToken, OAuthProviderClient, ProviderBadAnswer,
                                            ProviderProfile, ProviderRefused, ProviderSpec,
                                            ProviderUnavailable, apple_client_secret)
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
    """The HTTP session for provider calls (tests may inject one as ``identity.oauth_http``)."""
    return deps.get("identity.oauth_http", requests.Session)


def provider_client(deps, spec: ProviderSpec, cfg: OAuthSettings) -> OAuthProviderClient:
    """The protocol client for ``spec`` with this deployment's credentials (Apple's client
    secret is an ES256 JWT signed now)."""
    if spec.name == "apple":
        secret = apple_client_secret(team_id=cfg.apple_team_id, key_id=cfg.apple_key_id,
                                     private_key=cfg.apple_private_key,
                                     client_id=cfg.apple_client_id, audience=spec.issuer,
                                     now=deps.clock.now(),
                                     ttl_seconds=cfg.apple_client_secret_ttl_seconds)
    else:
        secret = cfg.client_secret(spec.name)
    return OAuthProviderClient(spec, client_id=cfg.client_id(spec.name), client_secret=secret,
                               session=_http(deps), timeout=cfg.http_timeout_seconds,
                               jwks_cache_seconds=cfg.jwks_cache_seconds,
                               clock_skew_seconds=cfg.clock_skew_seconds)


@contextlib.contextmanager
def provider_errors() -> Iterator[None]:
    """The adapter's failures as API errors: a refused code is the client's 400, a bad ID
    token a 401, anything the provider got wrong a retryable 503."""
    try:
        yield
    except ProviderRefused as exc:
        raise InvalidRequest(str(exc), code="oauth_exchange_failed", param="code") from None
    except InvalidIdToken as exc:
        raise AuthenticationError(str(exc), code="invalid_id_token") from None
    except ProviderUnavailable as exc:
        raise ServiceUnavailable(str(exc), code="provider_unavailable") from None
    except ProviderBadAnswer as exc:
        raise ServiceUnavailable(str(exc), code="provider_error") from None


def identity_from_profile(profile: ProviderProfile) -> ProviderIdentity:
    """What we keep of the provider's profile: a normalised email (only vouched for if the
    provider verified it) and a printable name."""
    email = _clean_email(profile.email)
    # A provider can only vouch for an address we kept: no address, nothing verified.
    return ProviderIdentity(profile.provider, profile.subject, email,
                            bool(email) and profile.email_verified, _clean_name(profile.name),
                            profile.login)


def fetch_identity(deps, spec: ProviderSpec, cfg: OAuthSettings, *, code: str, redirect_uri: str,
                   code_verifier: str, nonce: str, apple_user: str | None = None
                   ) -> ProviderIdentity:
    """Exchange the code and prove the identity with the provider (no Firestore here)."""
    client = provider_client(deps, spec, cfg)
    with provider_errors():
        tokens = client.exchange_code(code=code, redirect_uri=redirect_uri,
                                      code_verifier=code_verifier)
        profile = client.fetch_profile(tokens, nonce=nonce, now=deps.clock.now().timestamp(),
                                       apple_user=apple_user)
    return identity_from_profile(profile)


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
    ident = fetch_identity(deps, spec, cfg, code=code, redirect_uri=flow["redirect_uri"],
                           code_verifier=flow["code_verifier"], nonce=flow["nonce"],
                           apple_user=apple_user)
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
