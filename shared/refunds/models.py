"""API models of refunds and the events that announce them.

A refund is Stripe-shaped: ``amount`` in the intent's currency minor units, ``status``
``pending`` → ``succeeded`` | ``failed``. What it moved in the ledger (``ledger``: the asset,
the merchant's share and the returned fee share) and, for crypto, where and how it was sent
(``destination``, ``transaction``) are shown; the signed transaction itself never is.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, field_validator

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import DocId, RequestModel, ResourceModel, check_metadata
from shared.platform.pagination import ListQuery

Status = Literal["pending", "succeeded", "failed"]
Reason = Literal["duplicate", "fraudulent", "requested_by_customer", "overpayment", "other"]


class CreateRefund(RequestModel):
    payment_intent: DocId = Field(..., description="The captured payment intent (pi_…).")
    amount: StrictInt | None = Field(
        None, ge=1, description="Minor units of the intent's currency; default: everything "
                                "captured and not yet refunded.")
    reason: Reason | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    address: str | None = Field(
        None, min_length=42, max_length=42, pattern=r"^0x[0-9a-fA-F]{40}$",
        description="Crypto refunds only: the payer's address to send the refund to (EIP-55 "
                    "checksummed or all one case).")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=False)


class RefundListQuery(ListQuery):
    payment_intent: DocId | None = None


class RefundLedger(BaseModel):
    asset: str
    amount: int = Field(description="Ledger units returned to the payer (merchant + fee share).")
    merchant_share: int
    fee_share: int = Field(description="Part of the platform's fee returned with the refund.")
    transfer_ids: list[str] = Field(default_factory=list)


class RefundDestination(BaseModel):
    network: str
    chain_id: int
    asset: str
    token: str | None = None
    address: str
    amount: str = Field(description="On-chain base units sent (decimal string).")


class RefundTransaction(BaseModel):
    hash: str
    nonce: int
    sender: str
    block_number: int | None = None
    confirmations: int = 0
    gas_used: int | None = None
    explorer_url: str | None = None


class Refund(ResourceModel):
    id: str
    object: Literal["refund"] = "refund"
    merchant: str
    livemode: bool
    payment_intent: str
    amount: int
    currency: str
    method: str
    status: Status
    reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    failure_reason: str | None = None
    created: int
    updated: int
    succeeded_at: int | None = None
    failed_at: int | None = None
    ledger: RefundLedger
    destination: RefundDestination | None = None
    transaction: RefundTransaction | None = None
    processor_refund: str | None = Field(None, description="The card processor's refund id.")


EVENT_NAMES = ("created", "succeeded", "failed")
EVENTS = {name: declare(f"refund.{name}", ObjectPayload[Refund],
                        description=f"A refund was {name}.")
          for name in EVENT_NAMES}


def as_payload(resource: Refund) -> dict[str, Any]:
    return {"object": resource.model_dump(mode="json")}
