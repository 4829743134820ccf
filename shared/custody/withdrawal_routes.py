"""Withdrawal and approval routes (on ``routers.api`` / ``routers.tasks``).

``/v1/custody/withdrawals`` (users only: API keys get 403 ``principal_not_allowed``; anyone
not a custodian of the mode gets 403 ``custodian_required``). The mode is ``Payloom-Mode``
(``test`` by default). Creating and approving move money, so they need a sign-in with a second
factor in the last ``mfa_max_age_seconds`` (403 ``mfa_required`` / ``recent_mfa_required``);
rejecting and canceling need an MFA session of any age; reads need a custodian only.
"""
from __future__ import annotations

from pydantic import BaseModel

from shared.custody import audit, custodians
from shared.custody import withdrawal_chain as chain
from shared.custody import withdrawals as wd
from shared.custody.routers import api, tasks
from shared.custody.withdrawal_models import (
    AuditRecord,
    AuditVerification,
    CreateWithdrawal,
    RejectWithdrawal,
    Withdrawal,
    WithdrawalListQuery,
)
from shared.platform.models import DocId, RequestModel
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.router import SERVICE, Context
from shared.platform.uow import run_unit

USER = "user"


def _custodian(ctx: Context, mfa: str = custodians.NO_MFA) -> custodians.Custodian:
    return custodians.require_custodian(ctx.principal, ctx.deps,
                                        livemode=custodians.mode_from(ctx.request.headers),
                                        mfa=mfa)


@api.post("/withdrawals", body=CreateWithdrawal, response=Withdrawal, status=201, auth=USER,
          atomic=False)
def create_withdrawal(ctx: Context):
    """Propose a treasury withdrawal (idempotent with Idempotency-Key); at or below the asset's
    limit it is approved and sent at once, above it M custodians must approve."""
    custodian = _custodian(ctx, custodians.RECENT_MFA)
    proposal = chain.plan(ctx.deps, custodian.livemode, ctx.body)
    withdrawal_id = wd.new_withdrawal_id(custodian, ctx.idempotency_key)
    # the chain, outside the unit; a key's retry after its stored response expired finds the
    # withdrawal it made (derived id) and is answered without asking the chain again
    if ctx.idempotency_key is None or \
            not wd.withdrawal_ref(ctx.deps.db, withdrawal_id).get().exists:
        chain.precheck(ctx.deps, custodian.livemode, proposal)
    return run_unit(ctx.deps, lambda uow: wd.create(uow, custodian, proposal, withdrawal_id))


@api.get("/withdrawals", query=WithdrawalListQuery, response=ListResponse[Withdrawal], auth=USER)
def list_withdrawals(ctx: Context):
    """The mode's withdrawals, newest first; filter by status."""
    return wd.list_withdrawals(ctx.deps, _custodian(ctx), ctx.query)


@api.get("/withdrawals/{withdrawal_id}", response=Withdrawal, auth=USER)
def get_withdrawal(ctx: Context, withdrawal_id: str):
    return wd.retrieve(ctx.uow, _custodian(ctx), withdrawal_id)


@api.post("/withdrawals/{withdrawal_id}/approve", response=Withdrawal, auth=USER)
def approve_withdrawal(ctx: Context, withdrawal_id: str):
    """Approve (once per custodian); the M-th approval queues the transfer."""
    return wd.approve(ctx.uow, _custodian(ctx, custodians.RECENT_MFA), withdrawal_id)


@api.post("/withdrawals/{withdrawal_id}/reject", body=RejectWithdrawal, response=Withdrawal,
          auth=USER)
def reject_withdrawal(ctx: Context, withdrawal_id: str):
    """Reject (no veto: canceled once the threshold can no longer be reached)."""
    return wd.reject(ctx.uow, _custodian(ctx, custodians.MFA_SESSION), withdrawal_id,
                     ctx.body.reason)


@api.post("/withdrawals/{withdrawal_id}/cancel", response=Withdrawal, auth=USER)
def cancel_withdrawal(ctx: Context, withdrawal_id: str):
    """The proposer cancels their withdrawal, until it is signed."""
    return wd.cancel(ctx.uow, _custodian(ctx, custodians.MFA_SESSION), withdrawal_id)


# --- the audit log ----------------------------------------------------------------------------
def _record(doc: dict) -> AuditRecord:
    return AuditRecord(id=f"{doc['seq']:012d}", **{k: doc[k] for k in (
        "livemode", "seq", "at", "action", "actor", "subject", "data", "prev", "hash")})


@api.get("/audit", query=ListQuery, response=ListResponse[AuditRecord], auth=USER)
def list_audit(ctx: Context):
    """The mode's custody audit records, newest first (each holds the previous one's hash)."""
    custodian = _custodian(ctx)
    col = audit.records_query(ctx.deps.db, custodian.livemode)
    page = paginate(col, col, ctx.query, url="/v1/custody/audit", to_resource=_record,
                    order_field="seq")
    return ListResponse[AuditRecord](data=page.data, has_more=page.has_more, url=page.url)


@api.get("/audit/verification", response=AuditVerification, auth=USER)
def verify_audit(ctx: Context):
    """Walk the mode's audit chain: any altered, deleted or inserted record is reported."""
    custodian = _custodian(ctx)
    return AuditVerification(livemode=custodian.livemode,
                             **audit.verify(ctx.deps.db, custodian.livemode))


# --- tasks (queue ``custody``) ----------------------------------------------------------------
class WithdrawalTask(RequestModel):
    withdrawal_id: DocId


class TaskOutcome(BaseModel):
    withdrawal_id: str
    outcome: str


@tasks.post(wd.SEND_PATH, body=WithdrawalTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def withdrawal_send(ctx: Context):
    """Sign (once) and broadcast an approved withdrawal from the hot wallet."""
    wid = ctx.body.withdrawal_id
    return TaskOutcome(withdrawal_id=wid, outcome=chain.send(ctx.deps, wid))


@tasks.post(wd.POLL_PATH, body=WithdrawalTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def withdrawal_poll(ctx: Context):
    """Follow a withdrawal's transaction to its confirmations (rebroadcasts the same bytes)."""
    wid = ctx.body.withdrawal_id
    return TaskOutcome(withdrawal_id=wid, outcome=chain.poll(ctx.deps, wid))


@tasks.post(wd.EXPIRE_PATH, body=WithdrawalTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def withdrawal_expire(ctx: Context):
    """Cancel a proposal whose approval deadline passed (voids its hold)."""
    wid = ctx.body.withdrawal_id
    outcome = run_unit(ctx.deps, lambda uow: wd.expire(uow, wid))
    return TaskOutcome(withdrawal_id=wid, outcome=outcome)
