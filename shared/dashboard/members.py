"""Who is looking, for which merchant, in which mode: the dashboard's ``Principal``.

A signed-in user sees the merchants they are a member of (``list_my_merchants``, with their
role); the one chosen in the merchant cookie (else the newest membership) is entered exactly as
the API's ``Payloom-Merchant`` header is (``merchants.context.enter``: the membership is read,
cached 5 s), and the mode cookie plays ``Payloom-Mode``. Every page then passes that principal
to the same services the API calls, and checks the same role matrix (``roles``).
"""
from __future__ import annotations

import dataclasses

from shared.dashboard import cookies
from shared.dashboard.session import SignedIn
from shared.merchants import context, merchants, roles
from shared.merchants.models import Merchant, MerchantListQuery
from shared.platform.auth import Principal

MAX_MERCHANTS = 100   # the switcher lists the newest memberships (list_my_merchants' page limit)


@dataclasses.dataclass(frozen=True)
class Member:
    user: SignedIn
    merchants: list[Merchant]
    merchant: Merchant | None
    principal: Principal | None      # acting for ``merchant`` with its role and mode
    livemode: bool

    @property
    def role(self) -> str | None:
        return self.principal.role if self.principal else None

    def can(self, action: str) -> bool:
        """Whether the role matrix lets this member do ``action`` (to show a control)."""
        return self.principal is not None and roles.at_least(self.role, roles.minimum_role(action))


def resolve(ctx, who: SignedIn) -> Member:
    mine = merchants.list_my_merchants(ctx.deps, who.principal,
                                       MerchantListQuery(limit=MAX_MERCHANTS)).data
    wanted = cookies.read(ctx.deps, ctx.request, cookies.MERCHANT)
    chosen = next((m for m in mine if m.id == wanted), mine[0] if mine else None)
    livemode = cookies.read(ctx.deps, ctx.request, cookies.MODE) == "live"
    principal = context.enter(ctx.deps, who.principal, chosen.id, livemode) if chosen else None
    return Member(who, mine, chosen, principal, livemode)
