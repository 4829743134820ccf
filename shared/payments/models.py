"""API models of payment intents and the events that announce their changes.

Requests forbid unknown fields and bound every size (Stripe's metadata limits), so bad input is
a 400 naming the parameter. The resource never carries the client secret: only the create
answer does, once (``secret_fields``), and the document keeps its SHA-256.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, field_validator

from shared.merchants.branding_rules import MAX_URL
from shared.payments import states
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel, StatusEntry, check_metadata
from shared.platform.pagination import CreatedRangeQuery

METHODS = ("wallet", "card", "crypto")
Method = Literal["wallet", "card", "crypto"]
Status = Literal["requires_payment_method", "processing", "succeeded", "canceled", "expired",
                 "underpaid", "overpaid", "paid_late"]
TIMELINE_SHOWN = 20  # the resource shows the newest entries only: events stay thin
RETURN_URL_DOC = ("Overrides the merchant's branding default: {what}. Absolute https (http only "
                  "for localhost, in test mode); no credentials.")


class CreateIntent(RequestModel):
    amount: StrictInt | None = Field(None, description="Integer minor units of `currency` "
                                     "(its ledger scale). Omit for a top-up: any amount pays it.")
    currency: str = Field(..., min_length=2, max_length=10,
                          description="A ledger asset code: USD, KHR, USDC, ETH, …")
    payment_method_types: list[Method] | None = Field(
        None, min_length=1, max_length=3,
        description="Methods the payer may use; default: every method the merchant accepts.")
    description: str | None = Field(None, max_length=1000)
    metadata: dict[str, str] = Field(default_factory=dict,
                                     description="Up to 50 keys (40 characters), values up to 500.")
    customer_email: str | None = Field(None, max_length=254,
                                       pattern=r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
    expires_in_seconds: StrictInt | None = Field(
        None, ge=60, le=7 * 86400, description="Override the merchant's intent expiry.")
    success_url: str | None = Field(None, max_length=MAX_URL, description=RETURN_URL_DOC.format(
        what="where the hosted page sends the payer once paid ({PAYMENT_INTENT_ID} is "
             "replaced)"), examples=["https://shop.example/thanks?order={PAYMENT_INTENT_ID}"])
    cancel_url: str | None = Field(None, max_length=MAX_URL, description=RETURN_URL_DOC.format(
        what="where the hosted page's cancel link goes"), examples=["https://shop.example/cart"])

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=False)

    @field_validator("payment_method_types")
    @classmethod
    def _methods(cls, value):
        return None if value is None else list(dict.fromkeys(value))


class UpdateIntent(RequestModel):
    description: str | None = Field(None, max_length=1000)
    metadata: dict[str, str] | None = Field(
        None, description="Merged into the intent's metadata; an empty value removes the key.")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=True)


class CancelIntent(RequestModel):
    cancellation_reason: Literal["duplicate", "fraudulent", "requested_by_customer",
                                 "abandoned"] | None = None


class PayWithWallet(RequestModel):
    client_secret: str = Field(..., min_length=10, max_length=200)


class IntentListQuery(CreatedRangeQuery):
    status: Status | None = None
    customer_email: str | None = Field(None, max_length=254)


class Settlement(BaseModel):
    transfer_ids: list[str] = Field(default_factory=list)
    amount: int = 0
    fee: int = 0
    net: int = 0
    asset: str | None = None
    account_id: str | None = None


class RedirectToUrl(BaseModel):
    url: str
    return_url: str | None = None


class NextAction(BaseModel):
    type: Literal["redirect_to_url"]
    redirect_to_url: RedirectToUrl


class CardDetails(BaseModel):
    """The intent's ``card`` field: the processor payment and the last attempt's outcome."""
    processor: str = "stripe"
    processor_payment_id: str | None = None
    status: str | None = None
    attempts: int = 0
    payment_method: str | None = None
    last_payment_error: dict[str, Any] | None = None


class PaymentIntent(ResourceModel):
    id: str
    object: Literal["payment_intent"] = "payment_intent"
    merchant: str
    project_id: str | None = None
    livemode: bool
    amount: int | None
    currency: str
    amount_received: int
    amount_refunded: int = Field(0, description="Refunded or being refunded, in minor units "
                                                "(pending and succeeded refunds, as Stripe counts).")
    amount_pending: int = 0
    status: Status
    payment_method_types: list[str]
    method: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    customer_email: str | None = None
    success_url: str | None = Field(None, description="Where the hosted page sends the payer "
                                    "once paid (null: the merchant's branding default).")
    cancel_url: str | None = Field(None, description="Where the hosted page's cancel link goes "
                                   "(null: the merchant's branding default).")
    created: int
    updated: int
    expires_at: int
    late_until: int
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    succeeded_at: int | None = None
    tolerance_bps: int
    speed_policy: str
    required_confirmations: int
    timeline: list[StatusEntry] = Field(default_factory=list)
    settlement: Settlement | None = None
    crypto: dict[str, Any] | None = None
    card: CardDetails | None = None
    next_action: NextAction | None = Field(None, description="What the payer must do next (a "
                                           "3-D Secure redirect while the card is processing).")


CardPaymentIntent = PaymentIntent   # every read shows card and next_action


class PaymentIntentWithSecret(PaymentIntent):
    client_secret: str | None = Field(None, description="Shown once: give it to the payer's "
                                      "client; it authorises paying this intent.")


EVENT_STATUSES = ("created", "processing", "succeeded", "payment_failed", "canceled", "expired",
                  "underpaid", "overpaid", "paid_late", "reorged")
EVENTS = {name: declare(f"payment_intent.{name}", ObjectPayload[PaymentIntent],
                        description=f"A payment intent {name.replace('_', ' ')}.")
          for name in EVENT_STATUSES}
# every status has its event but requires_payment_method: going back there is payment_failed
# (a method failed) or reorged (chain money vanished)
assert set(states.STATUSES) - {states.REQUIRES_PAYMENT_METHOD} <= set(EVENT_STATUSES)
