"""Social login routes (/v1/auth/oauth/...) and linked identities (/v1/me/identities)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.identity import limits
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.resources import Identity
from shared.identity.responses import OAuthAuthorization, SocialCallbackAnswer, SocialSignIn
from shared.identity.sessions.tokens import no_store
from shared.identity.social import oauth as social
from shared.identity.social.identities import list_identities
from shared.platform import auth as auth_mod
from shared.platform.errors import AuthenticationError, PermissionDenied
from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import PUBLIC, Context

AUTHORIZE_IP = Limit("auth.oauth.authorize.ip", 100, 300)
CALLBACK_IP = Limit("auth.oauth.callback.ip", 60, 300)


class AuthorizeQuery(RequestModel):
    redirect_uri: str | None = Field(None, max_length=2048)
    link: bool = False


class CallbackParams(BaseModel):
    """What a provider sends back (or an app relays). Providers add parameters of their own
    (Google: scope, authuser, prompt, hd), so unknown ones are ignored, not refused."""
    model_config = ConfigDict(extra="ignore")
    code: str | None = Field(None, max_length=2048)
    state: str | None = Field(None, max_length=256)
    error: str | None = Field(None, max_length=256)
    error_description: str | None = Field(None, max_length=1024)
    user: str | None = Field(None, max_length=4096, description="Apple: the user JSON (first sign-in).")


def _user_principal(ctx: Context, *, required: bool) -> auth_mod.Principal | None:
    if auth_mod.bearer_token(ctx.request.headers) is None:
        if required:
            raise AuthenticationError("Linking needs the signed-in user's Bearer token.",
                                      code="missing_credentials")
        return None
    principal = auth_mod.authenticate(ctx.request.headers, ctx.deps.settings, ip=ctx.ip)
    if principal.kind != "user":
        raise PermissionDenied("Only a signed-in user can link a sign-in provider.",
                               code="principal_not_allowed")
    return principal


@auth_api.get("/oauth/{provider}/authorize", query=AuthorizeQuery, response=OAuthAuthorization,
              auth=PUBLIC, rate_limits=[(AUTHORIZE_IP, "ip")])
def oauth_authorize(ctx: Context, provider: str):
    """Start a sign-in (or, with link=true and a Bearer token, a link): the provider URL."""
    principal = _user_principal(ctx, required=ctx.query.link) if ctx.query.link else None
    return social.begin_authorization(ctx.uow, provider=provider,
                                      redirect_uri=ctx.query.redirect_uri,
                                      link_user_id=principal.id if principal else None)


def _complete(ctx: Context, provider: str, params: CallbackParams):
    principal = _user_principal(ctx, required=False)
    out = social.complete_authorization(
        ctx.uow, provider=provider, code=params.code, state=params.state, error=params.error,
        error_description=params.error_description, apple_user=params.user,
        bearer_user_id=principal.id if principal else None, ip=ctx.ip,
        user_agent=ctx.request.headers.get("User-Agent"))
    new_user = isinstance(out, SocialSignIn) and out.new_user
    return no_store(SocialCallbackAnswer(out), status=201 if new_user else 200)


@auth_api.get("/oauth/{provider}/callback", query=CallbackParams, response=SocialCallbackAnswer,
              auth=PUBLIC, atomic=False, rate_limits=[(CALLBACK_IP, "ip")], other_statuses=(201,))
def oauth_callback_get(ctx: Context, provider: str):
    """The provider's redirect: exchanges the code and signs in (or links)."""
    return _complete(ctx, provider, ctx.query)


@auth_api.post("/oauth/{provider}/callback", body=CallbackParams, response=SocialCallbackAnswer,
               auth=PUBLIC, idempotent=False, form=True, atomic=False,
               rate_limits=[(CALLBACK_IP, "ip")], other_statuses=(201,))
def oauth_callback_post(ctx: Context, provider: str):
    """Apple's response_mode=form_post lands here as a form; apps may also relay code + state as JSON."""
    return _complete(ctx, provider, ctx.body)


@accounts_api.get("/identities", response=ListResponse[Identity], auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def identities(ctx: Context):
    """The social identities linked to this account."""
    return list_identities(ctx.deps, ctx.principal.id)


@accounts_api.delete("/identities/{provider}", status=204, auth=("user",),
                     rate_limits=[(limits.ME_WRITE, "principal")])
def unlink_identity(ctx: Context, provider: str):
    """Unlink a provider; refused (409) if it is the account's last way in."""
    social.unlink_identity(ctx.uow, ctx.principal.id, provider)
    return None
