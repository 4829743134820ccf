"""The ledger's public shapes (pydantic) and the event types declared with them.

Services build these models and routes declare them, so the OpenAPI document and the event
catalogue describe exactly what is returned and emitted. ``model`` keeps the Firestore side
(dataclasses and collection names); this module is what leaves the ledger.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import ResourceModel


TransferKind = Literal["single", "pending", "post_pending", "void_pending", "expire_pending"]
TransferStatus = Literal["posted", "pending", "voided", "expired"]


class BalanceTotals(BaseModel):
    """The four TigerBeetle balances of an account (or their sum over an asset)."""
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int


class BalanceSummary(BalanceTotals):
    """An account's balances after a transfer, with the views of a credit-normal account."""
    posted: int
    available: int
    pending_in: int
    pending_out: int


class LedgerTransfer(ResourceModel):
    id: str
    object: Literal["transfer"] = "transfer"
    kind: TransferKind
    code: str | None = None
    status: TransferStatus
    asset: str
    amount: int
    amount_decimal: str
    debit_account_id: str
    credit_account_id: str
    pending_id: str | None = None
    reverses: str | None = None
    reversed_amount: int | None = None
    expires_at: str | None = None
    linked_ids: list[str]
    description: str | None = None
    metadata: dict[str, str] = {}
    balances_after: dict[str, BalanceSummary | None] = {}
    created: str


class HoldExpiry(ResourceModel):
    """What the hold-expiry task did (delivery is at least once: a repeat says ``already_…``)."""
    object: Literal["ledger_task"] = "ledger_task"
    pending_id: str
    result: Literal["expired", "exists", "rescheduled", "not_found", "no_timeout",
                    "already_pending", "already_posted", "already_voided", "already_expired"]
    transfer_id: str | None = None


class AuditViolation(BaseModel):
    """One broken invariant; the other fields name what is involved (account, asset, ids)."""
    model_config = ConfigDict(extra="allow")
    check: str


class LedgerAudit(ResourceModel):
    id: str
    object: Literal["ledger_audit"] = "ledger_audit"
    mode: Literal["full", "incremental"]
    ok: bool
    violation_count: int
    violations: list[AuditViolation]
    expired_overdue_holds: int = 0
    accounts: int
    transfers: int
    entries: int
    assets: dict[str, BalanceTotals]
    created: str


TRANSFER_CREATED = declare("transfer.created", ObjectPayload[LedgerTransfer],
                           description="A transfer (or a hold) moved a user's balance; one event "
                                       "per user involved, showing only that user's side.")
TRANSFER_POSTED = declare("transfer.posted", ObjectPayload[LedgerTransfer],
                          description="A hold was captured, in whole or in part.")
TRANSFER_VOIDED = declare("transfer.voided", ObjectPayload[LedgerTransfer],
                          description="A hold was released before it was captured.")
TRANSFER_EXPIRED = declare("transfer.expired", ObjectPayload[LedgerTransfer],
                           description="A hold reached its timeout and was released.")
AUDIT_FAILED = declare("ledger.audit_failed", ObjectPayload[LedgerAudit], public=False,
                       description="The ledger audit found broken invariants (operators only).")
