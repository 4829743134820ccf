"""OAuth 2.0 / OpenID Connect provider client (Google, Apple, LinkedIn, GitHub).

The protocol half of social login: the authorization-code exchange (RFC 6749 4.1.3, with the
PKCE verifier of RFC 7636), the provider's JWKS, ID token verification (OIDC Core 3.1.3.7),
userinfo / GitHub's REST API, and Apple's ES256 client-secret JWT. Locally and in tests it
talks to ``infra/local/oidc_sim.py``, which speaks the same protocols, so this is the code
under test.

It reads no settings and touches no database: the caller passes the provider's endpoints, the
client credentials, the HTTP session, timeouts and the time. Failures are this module's own
exceptions (``ProviderUnavailable``, ``ProviderBadAnswer``, ``ProviderRefused``,
``InvalidIdToken``); the caller decides what they mean to its clients. Tokens and secrets are
never logged.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import threading
import time
from typing import Any

import jwt
import requests

from shared.platform.logs import get_logger

_log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    """One provider's endpoints and protocol flavour."""
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


# --- errors ------------------------------------------------------------------------------------

class OAuthProviderError(Exception):
    """A provider call failed; ``str(exc)`` is a message safe to show (no token, no secret)."""


class ProviderUnavailable(OAuthProviderError):
    """The provider could not be reached or answered 5xx: try again later."""


class ProviderBadAnswer(OAuthProviderError):
    """The provider answered, but not something we can use (not JSON, unusable keys, a refused
    or malformed profile request)."""


class ProviderRefused(OAuthProviderError):
    """The token endpoint refused the grant (RFC 6749 5.2): a final answer about this code."""

    def __init__(self, message: str, *, error: str | None):
        super().__init__(message)
        self.error = error


class InvalidIdToken(OAuthProviderError):
    """The ID token (or the identity it names) failed verification; ``reason`` says which check."""

    def __init__(self, reason: str):
        super().__init__(f"The identity token was rejected: {reason}.")
        self.reason = reason


# --- Apple -------------------------------------------------------------------------------------

def apple_client_secret(*, team_id: str, key_id: str, private_key: str, client_id: str,
                        audience: str, now: dt.datetime, ttl_seconds: int) -> str:
    """Apple's client secret: an ES256 JWT signed with the team's key (Apple developer docs,
    "Creating a client secret"): header ``kid`` = key id; claims ``iss`` = team id, ``iat``,
    ``exp`` (at most 6 months later), ``aud`` = https://appleid.apple.com, ``sub`` = client id."""
    iat = int(now.timestamp())
    claims = {"iss": team_id, "iat": iat, "exp": iat + ttl_seconds, "aud": audience, "sub": client_id}
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"kid": key_id, "alg": "ES256"})


def apple_name(raw_user: str | None) -> str | None:
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


# --- JWKS ----------------------------------------------------------------------------------------

class JwksCache:
    """Key sets per URL with an expiry, shared by every client of the process (providers rotate
    keys rarely; an unknown ``kid`` forces one refetch)."""

    def __init__(self) -> None:
        self._sets: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> jwt.PyJWKSet | None:
        with self._lock:
            hit = self._sets.get(url)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def put(self, url: str, keyset: jwt.PyJWKSet, ttl_seconds: float) -> None:
        with self._lock:
            self._sets[url] = (time.monotonic() + ttl_seconds, keyset)

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()


JWKS_CACHE = JwksCache()


# --- the client ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProviderProfile:
    """Who the provider says signed in, as the provider said it (not normalised)."""
    provider: str
    subject: str
    email: str | None
    email_verified: bool   # the provider vouches for ``email`` (False when there is none)
    name: str | None
    login: str | None = None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class OAuthProviderClient:
    """One provider, one registered client. Cheap to build: make one per sign-in."""

    def __init__(self, spec: ProviderSpec, *, client_id: str, client_secret: str,
                 session: requests.Session | None = None, timeout: float = 10.0,
                 jwks_cache_seconds: float = 3600, clock_skew_seconds: int = 60,
                 jwks_cache: JwksCache | None = None):
        self.spec = spec
        self.client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self.timeout = timeout
        self.jwks_cache_seconds = jwks_cache_seconds
        self.clock_skew_seconds = clock_skew_seconds
        self._jwks_cache = jwks_cache or JWKS_CACHE

    def __repr__(self) -> str:  # never the secret
        return f"OAuthProviderClient({self.spec.name!r}, client_id={self.client_id!r})"

    # -- token endpoint ----------------------------------------------------------------------
    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """The token response (``access_token``, and ``id_token`` for OIDC)."""
        spec = self.spec
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": self.client_id, "code_verifier": code_verifier,
                "client_secret": self._client_secret}
        try:
            resp = self._session.post(spec.token_url, data=form, timeout=self.timeout,
                                      headers={"Accept": "application/json"})
        except requests.RequestException:
            raise ProviderUnavailable(f"{spec.display_name} could not be reached.") from None
        if resp.status_code >= 500:
            raise ProviderUnavailable(f"{spec.display_name} is unavailable.")
        payload = _json(resp, "token")
        # GitHub answers errors with 200 and {"error": ...}; the others with 400/401.
        if resp.status_code >= 400 or not isinstance(payload, dict) or payload.get("error") \
                or not payload.get("access_token"):
            err = payload.get("error") if isinstance(payload, dict) else None
            _log.info("oauth code exchange refused by %s: %s", spec.name, err)
            raise ProviderRefused(f"{spec.display_name} refused the authorization code"
                                  f" ({err or 'no access token'}).", error=err)
        return payload

    # -- keys and ID tokens ------------------------------------------------------------------
    def jwks(self, *, refresh: bool = False) -> jwt.PyJWKSet:
        url = self.spec.jwks_url
        if not url:
            raise ProviderBadAnswer(f"{self.spec.display_name} publishes no signing keys.")
        hit = None if refresh else self._jwks_cache.get(url)
        if hit is not None:
            return hit
        try:
            resp = self._session.get(url, timeout=self.timeout)
        except requests.RequestException:
            raise ProviderUnavailable("The provider's signing keys could not be fetched.") from None
        if resp.status_code != 200:
            raise ProviderUnavailable("The provider's signing keys could not be fetched.")
        try:
            keyset = jwt.PyJWKSet.from_dict(_json(resp, "JWKS"))
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError, KeyError, AttributeError):
            raise ProviderBadAnswer("The provider's signing keys are unusable.") from None
        self._jwks_cache.put(url, keyset, self.jwks_cache_seconds)
        return keyset

    def verify_id_token(self, id_token: str, *, nonce: str, now: float) -> dict[str, Any]:
        """The verified claims (OIDC Core 3.1.3.7). Time checks use ``now`` (unix seconds, the
        caller's clock) with the configured skew, not the library's clock."""
        spec = self.spec
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.DecodeError:
            raise InvalidIdToken("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in spec.id_token_algs:
            raise InvalidIdToken(f"algorithm {alg!r} not accepted")
        key = next((k for k in self.jwks().keys if k.key_id == kid), None)
        if key is None:  # the provider rotated its keys: refetch once
            key = next((k for k in self.jwks(refresh=True).keys if k.key_id == kid), None)
        if key is None:
            raise InvalidIdToken("unknown signing key")
        try:
            claims = jwt.decode(id_token, key.key, algorithms=[alg], audience=self.client_id,
                                issuer=spec.issuer,
                                options={"require": ["iss", "aud", "exp", "iat", "sub"],
                                         "verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False})
        except jwt.InvalidAudienceError:
            raise InvalidIdToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidIdToken("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidIdToken("bad signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidIdToken(type(exc).__name__) from None
        skew = self.clock_skew_seconds
        if not isinstance(claims["exp"], (int, float)) or claims["exp"] <= now - skew:
            raise InvalidIdToken("expired")
        if not isinstance(claims["iat"], (int, float)) or claims["iat"] > now + skew:
            raise InvalidIdToken("issued in the future")
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise InvalidIdToken("wrong authorized party")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise InvalidIdToken("nonce mismatch")
        if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise InvalidIdToken("bad subject")
        return claims

    # -- profile APIs -------------------------------------------------------------------------
    def api_get(self, url: str, access_token: str) -> Any:
        spec = self.spec
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if spec.name == "github":
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
        try:
            resp = self._session.get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException:
            raise ProviderUnavailable(f"{spec.display_name} could not be reached.") from None
        if resp.status_code != 200:
            raise ProviderBadAnswer(f"{spec.display_name} refused the profile request.")
        return _json(resp, "profile")

    def fetch_profile(self, tokens: dict[str, Any], *, nonce: str, now: float,
                      apple_user: str | None = None) -> ProviderProfile:
        """Prove who signed in: OIDC by the verified ID token (userinfo fills missing email or
        name); GitHub (OAuth 2 only) by ``/user`` and ``/user/emails``."""
        spec = self.spec
        if spec.oidc:
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise InvalidIdToken("missing")
            claims = self.verify_id_token(id_token, nonce=nonce, now=now)
            email, verified, name = claims.get("email"), _truthy(claims.get("email_verified")), claims.get("name")
            if spec.userinfo_url and (not email or not name):
                info = self.api_get(spec.userinfo_url, tokens["access_token"])
                if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                    raise InvalidIdToken("userinfo subject differs")  # OIDC Core 5.3.4
                email = email or info.get("email")
                verified = verified or _truthy(info.get("email_verified"))
                name = name or info.get("name")
            if spec.name == "apple":
                name = name or apple_name(apple_user)
            return ProviderProfile(spec.name, claims["sub"], email, bool(email and verified), name)
        # The numeric id is the stable subject (logins can change).
        user = self.api_get(spec.userinfo_url, tokens["access_token"])
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise ProviderBadAnswer(f"{spec.display_name} returned an unexpected profile.")
        email, verified = None, False
        if spec.emails_url:
            emails = self.api_get(spec.emails_url, tokens["access_token"])
            primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None) \
                if isinstance(emails, list) else None
            if primary:
                email, verified = primary.get("email"), bool(primary.get("verified"))
        return ProviderProfile(spec.name, str(user["id"]), email, bool(email and verified),
                               user.get("name") or user.get("login"), user.get("login"))


def _json(resp: requests.Response, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ProviderBadAnswer(f"The provider's {what} answer was not JSON.") from None
