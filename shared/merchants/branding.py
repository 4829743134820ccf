"""A merchant's branding: how its hosted payment page looks and where it sends payers after.

Document ``merchant_branding/{mch}`` (one per merchant, shared by test and live mode like its
payment settings): ``display_name`` (overrides the business name on pages), ``logo`` bytes and
``logo_type`` (``branding_images``: PNG/WebP checked by their bytes, SVG sanitised),
``brand_color`` (``branding_rules``: contrast checked), default ``success_url`` /
``cancel_url`` (an intent's own fields win; ``branding_rules`` for what a URL may be),
``support_email`` and ``support_url`` (shown to payers). Read by viewers and by keys with
``account:read``; changed by admins and owners (``manage_settings``), never by an API key.

Absent fields are unset, never defaults: the page falls back to the business name, a monogram
and the platform's colours.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field, model_validator

from shared.merchants.branding_images import (
    MAX_LOGO_BYTES,
    Logo,
    check_logo,
    decode_input,
    stored_logo,
)
from shared.merchants.branding_rules import (
    MAX_URL,
    check_brand_color,
    check_return_url,
    text_on,
)
from shared.platform.clock import rfc3339
from shared.platform.models import DisplayText, RequestModel, ResourceModel

COLLECTION = "merchant_branding"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$"
MAX_NAME = 100
TEXT_FIELDS = ("display_name", "brand_color", "success_url", "cancel_url", "support_email",
               "support_url")


class Branding(ResourceModel):
    object: Literal["merchant_branding"] = "merchant_branding"
    merchant: str
    display_name: str | None = Field(None, description="Shown to payers instead of the "
                                     "business name.")
    logo: str | None = Field(None, description="A data: URI of the PNG, WebP or (sanitised) "
                             "SVG logo.")
    brand_color: str | None = Field(None, description="#rrggbb of the page's buttons.")
    brand_text_color: str | None = Field(None, description="The label colour on brand_color "
                                         "(white or black, whichever contrasts more).")
    success_url: str | None = Field(None, description="Default: where a paid page sends the "
                                    "payer ({PAYMENT_INTENT_ID} is replaced).")
    cancel_url: str | None = Field(None, description="Default: where the page's cancel link goes.")
    support_email: str | None = None
    support_url: str | None = None
    updated: str | None = None


class UpdateBranding(RequestModel):
    """Given fields replace the stored ones; ``null`` (or an empty string) clears one."""
    display_name: DisplayText | None = Field(None, max_length=MAX_NAME, examples=["Angkor Coffee"])
    logo: str | None = Field(None, max_length=4 * MAX_LOGO_BYTES // 3 + 200, description=(
        "Base64 of a PNG, WebP or SVG of at most 16 KiB, or a data: URI of one. SVG is "
        "sanitised: scripts, event handlers, external references and styles are removed."))
    brand_color: str | None = Field(None, max_length=20, examples=["#1f3a93"],
                                    description="#rrggbb, at least 3:1 against white.")
    success_url: str | None = Field(None, max_length=MAX_URL,
                                    examples=["https://shop.example/thanks?order={PAYMENT_INTENT_ID}"])
    cancel_url: str | None = Field(None, max_length=MAX_URL, examples=["https://shop.example/cart"])
    support_email: str | None = Field(None, max_length=254, pattern=EMAIL + "|^$",
                                      examples=["help@shop.example"])
    support_url: str | None = Field(None, max_length=MAX_URL, examples=["https://shop.example/help"])

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the pages read (``from_doc``): the document's fields, the logo decoded."""
    display_name: str | None = None
    logo: Logo | None = None
    brand_color: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    support_email: str | None = None
    support_url: str | None = None
    updated_at: Any = None

    @property
    def brand_text_color(self) -> str | None:
        return text_on(self.brand_color) if self.brand_color else None


def branding_ref(db, merchant_id: str):
    return db.collection(COLLECTION).document(merchant_id)


def from_doc(doc: dict[str, Any] | None) -> Stored:
    doc = doc or {}
    return Stored(**{name: doc.get(name) or None for name in TEXT_FIELDS},
                  logo=stored_logo(doc.get("logo_type"), doc.get("logo")),
                  updated_at=doc.get("updated_at"))


def resource(merchant_id: str, s: Stored) -> Branding:
    return Branding(merchant=merchant_id, display_name=s.display_name,
                    logo=s.logo.data_uri if s.logo else None, brand_color=s.brand_color,
                    brand_text_color=s.brand_text_color, success_url=s.success_url,
                    cancel_url=s.cancel_url, support_email=s.support_email,
                    support_url=s.support_url,
                    updated=rfc3339(s.updated_at) if s.updated_at else None)


def get_branding(deps, merchant_id: str) -> Branding:
    """The merchant's branding (the caller was checked by ``acting_for``); unset fields null."""
    snap = branding_ref(deps.db, merchant_id).get()
    return resource(merchant_id, from_doc(snap.to_dict() if snap.exists else None))


def changes(body: UpdateBranding) -> dict[str, Any]:
    """The stored fields ``body`` sets, each checked (400 naming the field otherwise)."""
    given = body.model_fields_set
    out: dict[str, Any] = {}
    if "display_name" in given:
        out["display_name"] = body.display_name or None
    if "brand_color" in given:
        out["brand_color"] = check_brand_color(body.brand_color)
    for name in ("success_url", "cancel_url", "support_url"):
        if name in given:   # merchant-wide: both modes' rule (http only on loopback)
            out[name] = check_return_url(getattr(body, name), livemode=False, param=name)
    if "support_email" in given:
        out["support_email"] = body.support_email.lower() if body.support_email else None
    if "logo" in given:
        logo = check_logo(decode_input(body.logo)) if body.logo else None
        out["logo"] = logo.data if logo else None
        out["logo_type"] = logo.content_type if logo else None
    return out


def update_branding(uow, merchant_id: str, body: UpdateBranding) -> Branding:
    """Apply ``body`` in the caller's unit: one read, one write (the whole document)."""
    ref = branding_ref(uow.db, merchant_id)
    snap = uow.get(ref)
    stored = snap.to_dict() if snap.exists else {}
    doc = {**stored, **changes(body), "merchant_id": merchant_id, "updated_at": uow.now}
    uow.set(ref, doc)
    return resource(merchant_id, from_doc(doc))
