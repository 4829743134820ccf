"""Who is calling: the ``Principal`` and the authentication hook.

Authenticators are tried in order on the ``Authorization`` header; the identity capability
registers its JWT and API-key authenticators here. Our own callers (Cloud Tasks, Scheduler,
service-to-service) present a Google OIDC token in production and the local shared secret in
development; nothing else reaches ``auth="service"`` routes.
"""
from __future__ import annotations

import dataclasses
import hmac
from typing import Callable, Iterable, Mapping

from shared.platform.config import Settings
from shared.platform.errors import AuthenticationError, PermissionDenied


@dataclasses.dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "api_key" | "service" | "anonymous"
    id: str
    tenant_id: str
    scopes: frozenset[str] = frozenset()
    livemode: bool = False
    session_id: str | None = None
    ip: str | None = None
    role: str | None = None        # a user acting for a merchant: their role there
    actor_id: str | None = None    # the user behind a merchant context
    project_id: str | None = None  # an API key's project

    def has_scope(self, scope: str) -> bool:
        if "*" in self.scopes or scope in self.scopes:
            return True
        # "wallet:write" is granted by "wallet:*"
        family = scope.split(":", 1)[0] + ":*"
        return family in self.scopes

    def require_scopes(self, scopes: Iterable[str]) -> None:
        missing = [s for s in scopes if not self.has_scope(s)]
        if missing:
            raise PermissionDenied(f"This credential lacks the scope {missing[0]!r}.",
                                   code="missing_scope")


ANONYMOUS = Principal(kind="anonymous", id="anonymous", tenant_id="public")

# An authenticator inspects the bearer credential; returns None if it is not its kind, raises
# AuthenticationError if it is its kind but invalid.
Authenticator = Callable[[str, Mapping[str, str], "Settings"], "Principal | None"]
_authenticators: list[Authenticator] = []


def register_authenticator(fn: Authenticator) -> Authenticator:
    if fn not in _authenticators:
        _authenticators.append(fn)
    return fn


# A resolver refines an authenticated principal from the request (a user acting for a merchant
# becomes a principal of that merchant). Registered per function by its main.py
# (``boot(name, resolvers=[...])``), so only the functions that name one apply it, as deployed.
Resolver = Callable[["Principal", Mapping[str, str], "Settings"], "Principal"]
_resolvers: dict[str, list[Resolver]] = {}


def register_resolvers(function_name: str, resolvers: Iterable[Resolver]) -> None:
    chain = _resolvers.setdefault(function_name, [])
    for fn in resolvers:
        if fn not in chain:
            chain.append(fn)


def resolve(principal: "Principal", headers: Mapping[str, str], settings: "Settings",
            function_name: str) -> "Principal":
    for fn in _resolvers.get(function_name, ()):
        principal = fn(principal, headers, settings)
    return principal


def bearer_token(headers: Mapping[str, str], *, forwarded: bool = False) -> str | None:
    """The caller's bearer credential.

    Behind API Gateway (``forwarded``) ``Authorization`` carries the gateway's own Google token
    and the client's header arrives as ``X-Forwarded-Authorization``; only the gateway's account
    may invoke public functions, so that header cannot be forged from outside.
    """
    value = ""
    if forwarded:
        value = headers.get("X-Forwarded-Authorization") or ""
    value = value or headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(headers: Mapping[str, str], settings: Settings, *, ip: str | None = None) -> Principal:
    token = bearer_token(headers, forwarded=settings.is_production)
    if token is None:
        raise AuthenticationError("No valid Authorization: Bearer credential was provided.",
                                  code="missing_credentials")
    for authenticator in list(_authenticators):
        principal = authenticator(token, headers, settings)
        if principal is not None:
            return dataclasses.replace(principal, ip=ip)
    service = _local_service_principal(token, settings)
    if service is not None:
        return service
    raise AuthenticationError("The credential is not valid.", code="invalid_credentials")


def _local_service_principal(token: str, settings: Settings) -> Principal | None:
    if settings.is_production or not settings.task_auth_secret:
        return None
    if hmac.compare_digest(token.encode(), settings.task_auth_secret.encode()):
        return Principal(kind="service", id="local-service", tenant_id="platform",
                         scopes=frozenset({"*"}))
    return None


def authenticate_service(headers: Mapping[str, str], settings: Settings, *,
                         http_request=None) -> Principal:
    """Cloud Tasks / Scheduler / internal callers only."""
    token = bearer_token(headers)
    if token is None:
        raise AuthenticationError("Service credentials required.", code="missing_credentials")
    if settings.is_production:
        return _verify_google_oidc(token, settings, http_request)
    principal = _local_service_principal(token, settings)
    if principal is None:
        raise AuthenticationError("Service credentials are not valid.", code="invalid_credentials")
    return principal


def _verify_google_oidc(token: str, settings: Settings, http_request=None) -> Principal:
    """Google-signed OIDC token for this function's URL, minted for our invoker account."""
    from google.auth import exceptions as google_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token

    audience = settings.function_url(settings.function_name)
    try:
        claims = id_token.verify_oauth2_token(token, http_request or google_requests.Request(),
                                              audience=audience)
    except (ValueError, google_exceptions.GoogleAuthError) as exc:
        raise AuthenticationError("OIDC token rejected.", code="invalid_credentials") from exc
    if not claims.get("email_verified") or claims.get("email") != settings.tasks_invoker_email:
        raise PermissionDenied("This service account may not invoke this function.")
    return Principal(kind="service", id=claims["email"], tenant_id="platform", scopes=frozenset({"*"}))
