"""API models of invoices and payment links, and the events that announce them.

Requests forbid unknown fields and bound every size, so hostile input is a 400 naming the
parameter and an event (the resource after the change) stays far under 20 kB: an invoice holds
at most ``MAX_LINES`` lines but its resource shows the first ``LINES_SHOWN`` (Stripe's ``lines``
list object); ``GET /v1/invoices/{id}/lines`` returns them all.
"""
from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from shared.ledger.assets import INT64_MAX
from shared.merchants.branding_rules import MAX_URL
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel, check_metadata
from shared.platform.pagination import ListQuery

MAX_LINES = 100
LINES_SHOWN = 10
MAX_LINK_LINES = 20
MAX_METADATA_CHARS = 4000   # keys + values: keeps events thin
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$"
Method = Literal["wallet", "card", "crypto"]
InvoiceStatus = Literal["draft", "open", "paid", "void", "uncollectible"]
Quantity = Field(..., ge=1, le=1_000_000)
UnitAmount = Field(..., ge=0, le=INT64_MAX, description="Integer minor units of the currency.")
TaxRate = Field(None, ge=0, le=10_000, description="Basis points: 1000 = 10 %.")


def _return_url(what: str):
    return Field(None, max_length=MAX_URL, description=(
        f"{what} Passed to the payment intents this creates; null: the merchant's branding "
        "default. Absolute https (http only for localhost, in test mode)."))


SUCCESS_URL = "Where the hosted page sends the payer once paid ({PAYMENT_INTENT_ID} is replaced)."
CANCEL_URL = "Where the hosted page's cancel link goes."


def _metadata(value):
    value = check_metadata(value, allow_empty_values=False)
    if value and sum(len(k) + len(v) for k, v in value.items()) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_CHARS} characters in all")
    return value


class Customer(BaseModel):
    model_config = RequestModel.model_config
    email: str = Field(..., max_length=254, pattern=EMAIL)
    name: str | None = Field(None, min_length=1, max_length=200)


class LineIn(RequestModel):
    description: str = Field(..., min_length=1, max_length=250)
    quantity: StrictInt = Quantity
    unit_amount: StrictInt = UnitAmount
    tax_rate_bps: StrictInt | None = TaxRate


class Discount(BaseModel):
    model_config = RequestModel.model_config
    amount_off: StrictInt | None = Field(None, ge=1, le=INT64_MAX)
    percent_off_bps: StrictInt | None = Field(None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one(self):
        if (self.amount_off is None) == (self.percent_off_bps is None):
            raise ValueError("give exactly one of amount_off and percent_off_bps")
        return self


class _InvoiceFields(RequestModel):
    lines: list[LineIn] | None = Field(None, max_length=MAX_LINES)
    default_tax_rate_bps: StrictInt | None = TaxRate
    discount: Discount | None = None
    due_date: StrictInt | None = Field(None, ge=0, le=10**11, description="Unix seconds.")
    memo: str | None = Field(None, max_length=2000)
    metadata: dict[str, str] | None = None
    payment_method_types: list[Method] | None = Field(None, min_length=1, max_length=3)
    success_url: str | None = _return_url(SUCCESS_URL)
    cancel_url: str | None = _return_url(CANCEL_URL)

    @field_validator("metadata")
    @classmethod
    def _meta(cls, value):
        return _metadata(value)

    @field_validator("payment_method_types")
    @classmethod
    def _methods(cls, value):
        return None if value is None else list(dict.fromkeys(value))


class CreateInvoice(_InvoiceFields):
    customer: Customer
    currency: str = Field(..., min_length=2, max_length=10)


class UpdateInvoice(_InvoiceFields):
    """Changes a draft: given fields replace the stored ones (``lines`` replaces every line);
    ``null`` clears an optional field."""
    customer: Customer | None = None

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class InvoiceListQuery(ListQuery):
    status: InvoiceStatus | None = None
    customer_email: str | None = Field(None, max_length=254)


class Line(BaseModel):
    id: str
    object: Literal["line_item"] = "line_item"
    description: str
    quantity: int
    unit_amount: int
    amount: int
    discount_amount: int = 0
    tax_rate_bps: int = 0
    tax_amount: int = 0


class LineList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Line]
    has_more: bool
    total_count: int
    url: str


class CustomerOut(BaseModel):
    email: str
    name: str | None = None


class DiscountOut(BaseModel):
    amount_off: int | None = None
    percent_off_bps: int | None = None


class Invoice(ResourceModel):
    id: str
    object: Literal["invoice"] = "invoice"
    merchant: str
    project_id: str | None = None
    livemode: bool
    status: InvoiceStatus
    number: str | None = None
    customer: CustomerOut
    currency: str
    lines: LineList
    default_tax_rate_bps: int = 0
    discount: DiscountOut | None = None
    subtotal: int
    total_discount: int
    total_tax: int
    total: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    due_date: int | None = None
    memo: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_method_types: list[str] | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    payment_intent: str | None = None
    hosted_invoice_url: str | None = None
    created: int
    updated: int
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    marked_uncollectible_at: int | None = None


# --- payment links ---------------------------------------------------------------------------
class LinkLineIn(RequestModel):
    description: str = Field(..., min_length=1, max_length=250)
    quantity: StrictInt = Quantity
    unit_amount: StrictInt = UnitAmount


class CustomAmount(BaseModel):
    model_config = RequestModel.model_config
    minimum: StrictInt = Field(..., ge=1, le=INT64_MAX)
    maximum: StrictInt = Field(..., ge=1, le=INT64_MAX)
    preset: StrictInt | None = Field(None, ge=1, le=INT64_MAX)

    @model_validator(mode="after")
    def _order(self):
        if self.minimum > self.maximum:
            raise ValueError("minimum must not exceed maximum")
        if self.preset is not None and not self.minimum <= self.preset <= self.maximum:
            raise ValueError("preset must lie between minimum and maximum")
        return self


class CreateLink(RequestModel):
    """Exactly one way to price: ``line_items``, a fixed ``amount``, or ``custom_amount``
    (the visitor chooses within minimum..maximum)."""
    currency: str = Field(..., min_length=2, max_length=10)
    line_items: list[LinkLineIn] | None = Field(None, min_length=1, max_length=MAX_LINK_LINES)
    amount: StrictInt | None = Field(None, ge=1, le=INT64_MAX)
    custom_amount: CustomAmount | None = None
    description: str | None = Field(None, max_length=500)
    metadata: dict[str, str] | None = None
    payment_method_types: list[Method] | None = Field(None, min_length=1, max_length=3)
    active: StrictBool = True
    success_url: str | None = _return_url(SUCCESS_URL)
    cancel_url: str | None = _return_url(CANCEL_URL)

    @field_validator("metadata")
    @classmethod
    def _meta(cls, value):
        return _metadata(value)

    @field_validator("payment_method_types")
    @classmethod
    def _methods(cls, value):
        return None if value is None else list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_price(self):
        given = [x for x in (self.line_items, self.amount, self.custom_amount) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of line_items, amount and custom_amount")
        return self


class UpdateLink(RequestModel):
    active: StrictBool | None = None
    description: str | None = Field(None, max_length=500)
    metadata: dict[str, str] | None = None
    success_url: str | None = _return_url(SUCCESS_URL + " Applies to visitors who start after.")
    cancel_url: str | None = _return_url(CANCEL_URL + " Applies to visitors who start after.")

    @field_validator("metadata")
    @classmethod
    def _meta(cls, value):
        return _metadata(value)

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class LinkListQuery(ListQuery):
    active: Literal["true", "false"] | None = None


class LinkLine(BaseModel):
    description: str
    quantity: int
    unit_amount: int
    amount: int


class CustomAmountOut(BaseModel):
    minimum: int
    maximum: int
    preset: int | None = None


class PaymentLink(ResourceModel):
    id: str
    object: Literal["payment_link"] = "payment_link"
    merchant: str
    project_id: str | None = None
    livemode: bool
    active: bool
    url: str
    currency: str
    amount: int | None = Field(None, description="Fixed or from line_items; null when the "
                               "visitor chooses (custom_amount).")
    line_items: list[LinkLine] | None = None
    custom_amount: CustomAmountOut | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_method_types: list[str] | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    created: int
    updated: int


class StartCheckout(RequestModel):
    """A visitor starts paying a link. ``client_key``: a random value the visitor's page makes
    once per visit (≥ 16 characters); the same key gives the same payment intent."""
    client_key: str = Field(..., min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    amount: StrictInt | None = Field(None, ge=1, le=INT64_MAX,
                                     description="Required for custom_amount links, refused "
                                     "otherwise.")
    customer_email: str | None = Field(None, max_length=254, pattern=EMAIL)


class Checkout(BaseModel):
    object: Literal["payment_link_checkout"] = "payment_link_checkout"
    payment_link: str
    payment_intent: str
    client_secret: str
    amount: int
    currency: str
    status: str
    expires_at: int
    livemode: bool


class Button(BaseModel):
    object: Literal["payment_link_button"] = "payment_link_button"
    payment_link: str
    html: str = Field(..., description="Paste into a page: a plain link styled as a button; "
                      "no script, every value escaped.")


INVOICE_EVENTS = {name: declare(f"invoice.{name}", ObjectPayload[Invoice],
                                description=f"An invoice was {name.replace('_', ' ')}.")
                  for name in ("created", "finalized", "paid", "voided", "marked_uncollectible",
                               "reopened")}
# invoice.reopened: a paid invoice whose payment vanished (its intent's chain payment was
# reorganised out before being confirmed again) is open again until the intent pays once more.
LINK_EVENTS = {name: declare(f"payment_link.{name}", ObjectPayload[PaymentLink],
                             description=f"A payment link was {name}.")
               for name in ("created", "updated")}
