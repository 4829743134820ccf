"""What the page shows of the merchant (name, logo, colour, support contacts) and where it sends
the payer afterwards.

The merchant sets these through ``/v1/merchants/{mch}/branding`` or the dashboard
(``shared.merchants.branding``, document ``merchant_branding/{mch}``). The logo is inlined as a
``data:`` URI, so the page makes no request to a third party that would learn the payer's
address and the CSP stays ``img-src 'self' data:``; an SVG logo was sanitised when it was
stored. The brand colour reaches CSS only as a checked ``#rrggbb``.

Return URLs: the intent's own ``success_url`` / ``cancel_url`` (set when it was created, by
the API, an invoice or a payment link) win over the merchant's defaults; ``{PAYMENT_INTENT_ID}``
in a success URL is replaced by the intent's id, the merchant's own object. A live intent only
ever sends the payer to ``https`` (a merchant default on ``http://localhost`` serves test mode
only), and the payer reaches it through ``/pay/.../done`` whose ``Referrer-Policy:
no-referrer`` keeps the page's URL (the client secret) out of the merchant's logs.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from shared.merchants import branding as mbranding
from shared.merchants import settings as msettings
from shared.merchants import store
from shared.merchants.branding_rules import url_problem

DEFAULT_NAME = "Merchant"


@dataclasses.dataclass(frozen=True)
class Merchant:
    name: str
    logo: str | None                    # a data: URI
    initial: str
    success_url: str | None
    cancel_url: str | None
    accepted_assets: tuple[str, ...] | None
    brand_color: str | None = None      # #rrggbb, checked when stored
    brand_text_color: str | None = None
    support_email: str | None = None
    support_url: str | None = None

    def support_link(self, livemode: bool) -> str | None:
        """The support URL shown to a payer of this mode (https only in live mode)."""
        return usable(self.support_url, livemode)


def load(deps, merchant_id: str) -> Merchant:
    """The merchant as its page shows it: one batch read of the merchant, its payment settings
    and its branding."""
    refs = [store.merchant_ref(deps.db, merchant_id), msettings.settings_ref(deps.db, merchant_id),
            mbranding.branding_ref(deps.db, merchant_id)]
    snaps = {s.reference.path: s for s in deps.db.get_all(refs)}
    merchant, pay, look = ((snaps[r.path].to_dict() or {}) if snaps[r.path].exists else {}
                           for r in refs)
    b = mbranding.from_doc(look)
    name = (b.display_name or str(merchant.get("business_name") or "").strip() or DEFAULT_NAME)[:200]
    return Merchant(
        name=name, logo=b.logo.data_uri if b.logo else None, initial=name[:1].upper(),
        success_url=b.success_url, cancel_url=b.cancel_url,
        accepted_assets=tuple(pay["accepted_assets"]) if pay.get("accepted_assets") else None,
        brand_color=b.brand_color, brand_text_color=b.brand_text_color,
        support_email=b.support_email, support_url=b.support_url)


def usable(url: str | None, livemode: bool) -> str | None:
    """``url`` if a payer of this mode may be sent there, else None (never an error: the page
    still works without it)."""
    return url if url and url_problem(url, livemode=livemode) is None else None


def redirect_url(doc: dict[str, Any], merchant: Merchant, which: str) -> str | None:
    """Where ``done`` (``which="success"``) or ``cancel`` sends the payer; None if nowhere."""
    live = bool(doc.get("livemode"))
    for candidate in (doc.get(f"{which}_url"), getattr(merchant, f"{which}_url")):
        url = usable(candidate, live)
        if url:
            return url.replace("{PAYMENT_INTENT_ID}", doc["id"]) if which == "success" else url
    return None
