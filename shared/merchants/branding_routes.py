"""``/v1/merchants/{merchant_id}/branding``: read (viewer+, a key with ``account:read``) and
change (admin+, users only: a leaked key must not repoint where payers are sent)."""
from __future__ import annotations

from shared.merchants import branding
from shared.merchants.context import acting_for
from shared.platform.router import Context, Router

USERS = ("user",)
USERS_AND_KEYS = ("user", "api_key")


def register(api: Router) -> None:
    @api.get("/{merchant_id}/branding", response=branding.Branding, auth=USERS_AND_KEYS,
             scopes=["account:read"])
    def read_branding(ctx: Context, merchant_id: str):
        """The hosted page's branding and default return URLs (viewer+)."""
        acting_for(ctx, merchant_id, "read")
        return branding.get_branding(ctx.deps, merchant_id)

    @api.post("/{merchant_id}/branding", body=branding.UpdateBranding,
              response=branding.Branding, auth=USERS)
    def update_branding(ctx: Context, merchant_id: str):
        """Change the display name, logo, colour, return URLs or support contacts (admin+)."""
        acting_for(ctx, merchant_id, "manage_settings")
        return branding.update_branding(ctx.uow, merchant_id, ctx.body)
