"""What the page shows of the merchant (name, logo) and where it sends the payer afterwards.

Document ``checkout_settings/{mch}`` (one per merchant, both modes, like its payment settings):
``logo`` (a small PNG/JPEG/WebP/GIF kept as bytes and shown as a ``data:`` URI, so the page
makes no request to a third party that would learn the payer's address, and the CSP stays
``img-src 'self' data:``), ``success_url`` and ``cancel_url`` (the merchant's defaults).

Per intent, ``metadata.success_url`` / ``metadata.cancel_url`` override the defaults (the way a
Stripe Checkout Session carries its own); ``{PAYMENT_INTENT_ID}`` in a success URL is replaced
by the intent's id, the merchant's own object. URLs must be absolute ``https`` (``http`` is
accepted in test mode, for local development), without credentials, and the payer reaches them
through ``/pay/.../done`` whose ``Referrer-Policy: no-referrer`` keeps the page's URL (the client
secret) out of the merchant's logs.
"""
from __future__ import annotations

import base64
import dataclasses
import urllib.parse
from typing import Any

from pydantic import Field, field_validator

from shared.merchants import settings as msettings
from shared.merchants import store
from shared.platform.errors import InvalidRequest
from shared.platform.models import RequestModel

COLLECTION = "checkout_settings"
MAX_LOGO_BYTES = 16 * 1024
MAX_URL = 2000
LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg",
              b"GIF87a": "image/gif", b"GIF89a": "image/gif"}


def settings_ref(db, merchant_id: str):
    return db.collection(COLLECTION).document(merchant_id)


def logo_type(data: bytes) -> str | None:
    """The image type of ``data`` by its magic bytes (never by what a caller claims)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in LOGO_TYPES.items() if data.startswith(magic)), None)


def check_url(url: str | None, *, livemode: bool, param: str) -> str | None:
    """An absolute http(s) URL a payer may be sent to, or None; 400 otherwise."""
    if url is None or url == "":
        return None
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL else None
    ok = (parts is not None and parts.scheme in (("https",) if livemode else ("https", "http"))
          and parts.hostname and not parts.username and not parts.password
          and url.isprintable() and not any(c.isspace() for c in url))
    if not ok:
        raise InvalidRequest(f"{param} must be an absolute {'https' if livemode else 'http(s)'} "
                             "URL without credentials.", code="url_invalid", param=param)
    return url


class UpdateCheckoutSettings(RequestModel):
    """What a merchant sets for its hosted page (``null`` clears a field)."""
    logo: str | None = Field(None, max_length=4 * MAX_LOGO_BYTES // 3 + 8,
                             description="Base64 of a PNG, JPEG, WebP or GIF of at most 16 KiB.")
    success_url: str | None = Field(None, max_length=MAX_URL)
    cancel_url: str | None = Field(None, max_length=MAX_URL)

    @field_validator("success_url", "cancel_url")
    @classmethod
    def _url(cls, value):
        # http is kept for test-mode development; a live intent never redirects to it
        return check_url(value, livemode=False, param="url")


def save(uow, merchant_id: str, body: UpdateCheckoutSettings) -> dict[str, Any]:
    """Store the merchant's checkout settings (the fields given). For the dashboard or a
    merchant settings route; the caller has checked ``manage_settings``."""
    fields: dict[str, Any] = {"merchant_id": merchant_id, "updated_at": uow.now}
    if "logo" in body.model_fields_set:
        data = None
        if body.logo:
            try:
                data = base64.b64decode(body.logo, validate=True)
            except ValueError:
                raise InvalidRequest("logo is not base64.", code="logo_invalid",
                                     param="logo") from None
            if len(data) > MAX_LOGO_BYTES or logo_type(data) is None:
                raise InvalidRequest("The logo must be a PNG, JPEG, WebP or GIF of at most "
                                     "16 KiB.", code="logo_invalid", param="logo")
        fields["logo"] = data
    for name in ("success_url", "cancel_url"):
        if name in body.model_fields_set:
            fields[name] = getattr(body, name)
    uow.set(settings_ref(uow.db, merchant_id), fields, merge=True)
    return fields


@dataclasses.dataclass(frozen=True)
class Merchant:
    name: str
    logo: str | None                    # a data: URI
    initial: str
    success_url: str | None
    cancel_url: str | None
    accepted_assets: tuple[str, ...] | None


def load(deps, merchant_id: str) -> Merchant:
    """The merchant as its page shows it: one batch read of the merchant, its payment settings
    and its checkout settings."""
    refs = [store.merchant_ref(deps.db, merchant_id), msettings.settings_ref(deps.db, merchant_id),
            settings_ref(deps.db, merchant_id)]
    snaps = {s.reference.path: s for s in deps.db.get_all(refs)}
    merchant, pay, page = ((snaps[r.path].to_dict() or {}) if snaps[r.path].exists else {}
                           for r in refs)
    name = str(merchant.get("business_name") or "").strip() or "Merchant"
    logo = page.get("logo")
    kind = logo_type(bytes(logo)) if logo else None
    return Merchant(
        name=name[:200],
        logo=f"data:{kind};base64,{base64.b64encode(bytes(logo)).decode()}" if kind else None,
        initial=name[:1].upper(),
        success_url=page.get("success_url"), cancel_url=page.get("cancel_url"),
        accepted_assets=tuple(pay["accepted_assets"]) if pay.get("accepted_assets") else None)


def redirect_url(doc: dict[str, Any], merchant: Merchant, which: str) -> str | None:
    """Where ``done`` (``which="success"``) or ``cancel`` sends the payer; None if nowhere.
    A malformed URL in metadata is ignored (metadata is free text the payment API accepted)."""
    meta = doc.get("metadata") or {}
    for candidate in (meta.get(f"{which}_url"), getattr(merchant, f"{which}_url")):
        try:
            url = check_url(candidate, livemode=bool(doc.get("livemode")), param=which)
        except InvalidRequest:
            continue
        if url:
            return url.replace("{PAYMENT_INTENT_ID}", doc["id"]) if which == "success" else url
    return None
