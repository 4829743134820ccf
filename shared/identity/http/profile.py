"""Profile routes: GET/PATCH /v1/me."""
from __future__ import annotations

from shared.identity import limits
from shared.identity.users import profile
from shared.identity.http.api import accounts_api
from shared.identity.models import UpdateProfileRequest
from shared.identity.resources import User
from shared.platform.router import Context


@accounts_api.get("/", response=User, auth=("user", "api_key"), scopes=["account:read"],
                  rate_limits=[(limits.ME_READ, "principal")])
def me(ctx: Context):
    """The account: profile, verification and KYC status, linked wallets and DIDs."""
    return profile.get_profile(ctx.deps, ctx.principal.tenant_id)


@accounts_api.patch("/", body=UpdateProfileRequest, response=User, auth=("user",),
                    rate_limits=[(limits.ME_WRITE, "principal")])
def update(ctx: Context):
    """Change display name, username (atomically swaps the handle) or locale (en | km)."""
    b = ctx.body
    return profile.update_profile(ctx.uow, ctx.principal.id, display_name=b.display_name,
                                  username=b.username, locale=b.locale)
