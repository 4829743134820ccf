"""Request and response bodies of the wallet API."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from shared.ledger.resources import TransferKind, TransferStatus
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel
from shared.platform.pagination import ListQuery


class Recipient(RequestModel):
    username: str | None = Field(None, min_length=1, max_length=64)
    phone: str | None = Field(None, pattern=r"^\+[1-9][0-9]{6,14}$",
                              description="E.164, e.g. +85512345678.")
    wallet_address: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$")

    @model_validator(mode="after")
    def exactly_one(self):
        given = [k for k in ("username", "phone", "wallet_address") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of username, phone or wallet_address")
        return self


class AmountMixin(RequestModel):
    amount: StrictInt | None = Field(None, description="Integer minor units of the asset.")
    amount_decimal: str | None = Field(None, max_length=40,
                                       description='Alternatively a decimal string, "12.34".')
    asset: str = Field(..., min_length=2, max_length=10)

    @model_validator(mode="after")
    def one_amount(self):
        if (self.amount is None) == (self.amount_decimal is None):
            raise ValueError("give exactly one of amount or amount_decimal")
        return self


class CreateTransfer(AmountMixin):
    to: Recipient
    description: str | None = Field(None, max_length=500)


class CreateHold(AmountMixin):
    """A two-phase payment: funds leave the payer's available balance now, reach the payee on
    capture, and come back on cancel or after ``timeout_seconds``."""
    to: Recipient
    description: str | None = Field(None, max_length=500)
    timeout_seconds: StrictInt = Field(3600, ge=1, le=30 * 86400,
                                       description="Released automatically after this long.")


class CaptureHold(RequestModel):
    amount: StrictInt | None = Field(None, ge=1, description="Capture less than the hold "
                                     "(the rest is released); all of it if omitted.")


class CreateTopUp(AmountMixin):
    payment_method: str | None = Field(None, max_length=100,
                                       description="A provider payment method, e.g. pm_card_visa.")


class CreateRecord(RequestModel):
    user_id: str = Field(..., max_length=64)
    transfer_id: str = Field(..., max_length=80)
    kind: Literal["onchain", "note", "external"] = "onchain"
    description: str | None = Field(None, max_length=500)
    tx_hash: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{64}$")
    chain_id: StrictInt | None = Field(None, ge=1)
    asset: str | None = Field(None, max_length=10)
    raw_amount: str | None = Field(None, max_length=80,
                                   description="On-chain base units as a decimal string.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=20)


class TransactionsQuery(ListQuery):
    model_config = ConfigDict(populate_by_name=True)
    asset: str | None = Field(None, max_length=10)
    created_gte: str | None = Field(None, alias="created[gte]", max_length=40)
    created_gt: str | None = Field(None, alias="created[gt]", max_length=40)
    created_lte: str | None = Field(None, alias="created[lte]", max_length=40)
    created_lt: str | None = Field(None, alias="created[lt]", max_length=40)


class StatementQuery(RequestModel):
    model_config = ConfigDict(populate_by_name=True)
    asset: str = Field(..., max_length=10)
    from_: str | None = Field(None, alias="from", max_length=40)
    to: str | None = Field(None, max_length=40)


class BalanceResource(ResourceModel):
    object: Literal["balance"] = "balance"
    asset: str
    scale: int
    available: int
    posted: int
    pending_in: int
    pending_out: int
    available_decimal: str
    posted_decimal: str


class BalanceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BalanceResource]
    has_more: bool = False
    url: str


class WalletBalanceAfter(BaseModel):
    """The caller's balance in the transfer's asset right after it (minor units)."""
    available: int
    posted: int
    pending_in: int
    pending_out: int


class UserParty(BaseModel):
    user_id: str


class SystemParty(BaseModel):
    """The other side is one of Payloom's own accounts (top-up clearing, fees)."""
    account: Literal["system"] = "system"


Party = UserParty | SystemParty


class WalletTransfer(ResourceModel):
    id: str
    object: Literal["wallet_transfer"] = "wallet_transfer"
    result: Literal["created", "exists"]
    status: TransferStatus
    asset: str
    amount: int
    amount_decimal: str
    fee: int
    to: Party
    description: str | None = None
    balance_after: WalletBalanceAfter | None = None
    created: str


class WalletHold(ResourceModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str
    object: Literal["wallet_hold"] = "wallet_hold"
    result: Literal["created", "exists"] | None = None
    status: TransferStatus
    asset: str
    amount: int
    amount_decimal: str
    captured_amount: int | None = None
    from_: Party = Field(alias="from")
    to: Party
    description: str | None = None
    resolved_by: str | None = None
    expires_at: str | None = None
    created: str


class TopUp(ResourceModel):
    id: str
    object: Literal["topup"] = "topup"
    status: Literal["pending", "requires_action", "succeeded", "failed", "canceled"]
    asset: str
    amount: int
    amount_decimal: str
    provider: str
    provider_payment_id: str | None = None
    client_secret: str | None = None
    transfer_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    created: str


class EntryRecord(BaseModel):
    """A backend record linked to an entry (see ``WalletRecord``), as history shows it."""
    id: str
    kind: str
    tx_hash: str | None = None
    chain_id: int | None = None
    description: str | None = None


class WalletTransaction(ResourceModel):
    id: str
    object: Literal["wallet_transaction"] = "wallet_transaction"
    transfer_id: str
    type: str
    kind: TransferKind
    status: TransferStatus
    direction: Literal["in", "out"]
    asset: str
    amount: int
    amount_decimal: str
    balance_after: WalletBalanceAfter | None = None
    counterparty: Party
    description: str | None = None
    pending_id: str | None = None
    reverses: str | None = None
    records: list[EntryRecord] = []
    created: str


class WalletRecord(ResourceModel):
    id: str
    object: Literal["wallet_record"] = "wallet_record"
    user_id: str
    transfer_id: str
    kind: Literal["onchain", "note", "external"]
    description: str | None = None
    tx_hash: str | None = None
    chain_id: int | None = None
    asset: str
    raw_amount: str | None = None
    amount: int | None = None
    metadata: dict[str, str] = {}
    created: str


TOPUP_SUCCEEDED = declare("topup.succeeded", ObjectPayload[TopUp],
                          description="A card top-up succeeded and the wallet was credited (once).")
TOPUP_FAILED = declare("topup.failed", ObjectPayload[TopUp],
                       description="A card top-up failed; nothing was credited.")
TOPUP_CANCELED = declare("topup.canceled", ObjectPayload[TopUp],
                         description="A card top-up was canceled; nothing was credited.")
# The state a provider webhook moved a top-up to -> the event that says so.
TOPUP_EVENTS = {"succeeded": TOPUP_SUCCEEDED, "failed": TOPUP_FAILED, "canceled": TOPUP_CANCELED}
