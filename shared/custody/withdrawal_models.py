"""API models of treasury withdrawals, their votes, the audit log, and the events.

A withdrawal moves Payloom's own funds (the platform's fee revenue in an asset) from the hot
wallet to an outside address. ``status``: ``pending_approval`` (above the limit, collecting
approvals) → ``approved`` (enough custodians; queued to sign) → ``executing`` (signed and
broadcast) → ``succeeded`` | ``failed``; or ``canceled`` (by its proposer, by rejections that
make the threshold unreachable, or because approvals ran out of time). The signed transaction
itself is never shown.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictInt

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel
from shared.platform.pagination import ListQuery
from shared.refunds.models import RefundTransaction

Status = Literal["pending_approval", "approved", "executing", "succeeded", "failed", "canceled"]
CancellationReason = Literal["proposer_canceled", "rejected", "expired"]
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"


def _printable(value: str | None) -> str | None:
    if value is not None and not value.isprintable():
        raise ValueError("must be printable text (no control characters)")
    return value or None


# A custodian's free text (memo, rejection reason): shown to the others and audited.
Note = Annotated[str | None, Field(max_length=500), AfterValidator(_printable)]


class CreateWithdrawal(RequestModel):
    network: str = Field(..., min_length=2, max_length=32, pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    asset: str = Field(..., min_length=2, max_length=10, pattern=r"^[A-Z][A-Z0-9]{1,9}$")
    amount: StrictInt = Field(..., ge=1, description="Ledger units of the asset (ETH: gwei).")
    destination: str = Field(..., min_length=42, max_length=42, pattern=ADDRESS_PATTERN,
                             description="The receiving address (EIP-55 checksummed or all "
                                         "one case).")
    memo: Note = Field(None, description="Why: shown to the approving custodians and audited.")


class RejectWithdrawal(RequestModel):
    reason: Note = None


class WithdrawalListQuery(ListQuery):
    status: Status | None = None


class Vote(BaseModel):
    custodian: str
    created: int
    reason: str | None = None


class WithdrawalTransaction(RefundTransaction):
    """The hot wallet's transaction: the same shape as a crypto refund's."""


class WithdrawalLedger(BaseModel):
    debit_account: str = Field(description="The platform's fee account of the asset and mode.")
    credit_account: str = Field(description="The mode's external account.")
    hold_id: str
    transfer_ids: list[str] = Field(default_factory=list,
                                    description="The post (succeeded) or void (failed, "
                                                "canceled) of the hold.")


class Withdrawal(ResourceModel):
    id: str
    object: Literal["custody_withdrawal"] = "custody_withdrawal"
    livemode: bool
    network: str
    chain_id: int
    asset: str
    amount: int
    amount_onchain: str = Field(description="Base units sent on chain (decimal string).")
    token: str | None = None
    destination: str
    memo: str | None = None
    status: Status
    proposer: str
    required_approvals: int
    approvals: list[Vote]
    rejections: list[Vote]
    approval_deadline: int = Field(description="Unix time after which a proposal still "
                                                "waiting for approvals is canceled.")
    created: int
    updated: int
    approved_at: int | None = None
    executed_at: int | None = None
    succeeded_at: int | None = None
    failed_at: int | None = None
    canceled_at: int | None = None
    failure_reason: str | None = None
    cancellation_reason: CancellationReason | None = None
    ledger: WithdrawalLedger
    transaction: WithdrawalTransaction | None = None


class AuditRecord(ResourceModel):
    id: str
    object: Literal["custody_audit_record"] = "custody_audit_record"
    livemode: bool
    seq: int
    at: str
    action: str
    actor: dict[str, Any]
    subject: str
    data: dict[str, Any]
    prev: str
    hash: str


class AuditProblem(BaseModel):
    seq: int | None
    problem: Literal["altered", "missing", "broken_link", "head_mismatch"]


class AuditVerification(BaseModel):
    object: Literal["custody_audit_verification"] = "custody_audit_verification"
    livemode: bool
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    problems: list[AuditProblem]


EVENT_NAMES = ("created", "approved", "executed", "succeeded", "failed", "canceled")
EVENTS = {name: declare(f"custody.withdrawal.{name}", ObjectPayload[Withdrawal], public=False,
                        description=f"A treasury withdrawal was {name} (operators only).")
          for name in EVENT_NAMES}
