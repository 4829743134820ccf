"""Treasury withdrawals: proposal, M-of-N approval, and how an open withdrawal ends.

Document ``custody_withdrawals/{wdr_…}``: the resource's fields plus what is never shown (the
signed transaction, the votes' sessions). Reads filter on ``livemode``: the other mode's
withdrawal is a 404.

Money: a withdrawal takes the PLATFORM's fee revenue out of the hot wallet, never merchants'
settlement money, so the ledger legs are ``fees`` (asset, mode) → ``external`` (asset, mode).
``fees`` carries ``debits_must_not_exceed_credits``: the ledger refuses a withdrawal above the
revenue not yet withdrawn (409 ``insufficient_treasury_balance``). The proposal books a HOLD
(pending transfer) at once, so concurrent proposals cannot promise the same revenue twice; the
hold is posted when the transaction is confirmed and voided when the withdrawal fails or is
canceled (ids derived from the withdrawal: a replay posts or voids nothing twice). The gas is
paid by the hot wallet and booked when its transaction is mined, ``network_fees`` → ``external``
as for refunds and sweeps (``withdrawal_chain``, ``shared.chain.outgoing.gas_booking``).

Every state change is ONE unit of work holding the withdrawal, the ledger writes, one audit
record (``custody.audit``), the event and the next timer. Timers (Cloud Tasks, queue
``custody``, function ``custody_tasks``): ``/withdrawals/send`` once approved, then
``/withdrawals/poll`` (``withdrawal_chain``), and ``/withdrawals/expire`` at the approval
deadline of a proposal that still waits.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.custody import approvals, audit
from shared.custody.custodians import Custodian
from shared.custody.withdrawal_models import (
    EVENTS,
    Vote,
    Withdrawal,
    WithdrawalLedger,
    WithdrawalListQuery,
    WithdrawalTransaction,
)
from shared.ledger import accounts, engine
from shared.ledger.model import TransferSpec
from shared.platform.errors import Conflict, NotFound, PayloomError, PermissionDenied
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse, paginate
from shared.platform.tasks import task_name
from shared.platform.uow import UnitOfWork

COLLECTION = "custody_withdrawals"
TASK_QUEUE, TASK_FUNCTION = "custody", "custody_tasks"
SEND_PATH, POLL_PATH, EXPIRE_PATH = "/withdrawals/send", "/withdrawals/poll", "/withdrawals/expire"
PENDING, APPROVED, EXECUTING = "pending_approval", "approved", "executing"
SUCCEEDED, FAILED, CANCELED = "succeeded", "failed", "canceled"
URL = "/v1/custody/withdrawals"


class NotPending(Conflict):
    code = "withdrawal_not_pending"


def withdrawal_ref(db, withdrawal_id: str):
    return db.collection(COLLECTION).document(withdrawal_id)


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def _votes(votes) -> list[Vote]:
    return [Vote(custodian=v["custodian"], created=_ts(v["at"]), reason=v.get("reason"))
            for v in votes or ()]


def resource(doc: dict[str, Any]) -> Withdrawal:
    chain = doc.get("chain") or {}
    tx = None
    if chain.get("hash"):
        tx = WithdrawalTransaction(hash=chain["hash"], nonce=chain["nonce"], sender=chain["sender"],
                                   block_number=chain.get("block_number"),
                                   confirmations=int(chain.get("confirmations") or 0),
                                   gas_used=chain.get("gas_used"),
                                   explorer_url=chain.get("explorer_url"))
    dest = doc["destination"]
    return Withdrawal(
        id=doc["id"], livemode=doc["livemode"], network=dest["network"],
        chain_id=dest["chain_id"], asset=dest["asset"], amount=doc["amount"],
        amount_onchain=dest["amount"], token=dest.get("token"), destination=dest["address"],
        memo=doc.get("memo"), status=doc["status"], proposer=doc["proposer"],
        required_approvals=doc["required_approvals"], approvals=_votes(doc.get("approvals")),
        rejections=_votes(doc.get("rejections")),
        approval_deadline=_ts(doc["approval_deadline"]), created=_ts(doc["created_at"]),
        updated=_ts(doc["updated_at"]), approved_at=_ts(doc.get("approved_at")),
        executed_at=_ts(doc.get("executed_at")), succeeded_at=_ts(doc.get("succeeded_at")),
        failed_at=_ts(doc.get("failed_at")), canceled_at=_ts(doc.get("canceled_at")),
        failure_reason=doc.get("failure_reason"),
        cancellation_reason=doc.get("cancellation_reason"),
        ledger=WithdrawalLedger(**{k: doc["ledger"][k] for k in
                                   ("debit_account", "credit_account", "hold_id", "transfer_ids")}),
        transaction=tx)


def emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(EVENTS[name].name, tenant="platform", livemode=doc["livemode"],
             data={"object": resource(doc).model_dump(mode="json")})


def record(uow: UnitOfWork, doc: dict[str, Any], action: str, actor: dict[str, Any] | str,
           **data: Any) -> None:
    """The unit's audit record about ``doc`` (what every audit record of a withdrawal says)."""
    dest = doc["destination"]
    audit.append(uow, livemode=doc["livemode"], action=action, actor=actor, subject=doc["id"],
                 data={"status": doc["status"], "network": dest["network"],
                       "asset": dest["asset"], "amount": doc["amount"],
                       "destination": dest["address"], **data})


# --- the ledger legs ------------------------------------------------------------------------
def templates(asset: str, livemode: bool):
    """(fees, external) of the asset in this mode."""
    key = "" if livemode else "test"
    return (accounts.system_template("fees", asset, key),
            accounts.system_template("external", asset, key))


def hold_id(withdrawal_id: str) -> str:
    return derived_id("txf", "cwdhold", withdrawal_id)


def _resolve(uow: UnitOfWork, doc: dict[str, Any], *, post: bool) -> list[str]:
    kind = "post" if post else "void"
    hid = doc["ledger"]["hold_id"]
    tid = derived_id("txf", f"cwd{kind}", hid)
    spec = (TransferSpec(id=tid, post_pending_id=hid, code="custody_withdrawal") if post else
            TransferSpec(id=tid, void_pending_id=hid, code="custody_withdrawal_void"))
    engine.execute(uow, [spec])
    return [tid]


# --- create ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked proposal (``withdrawal_chain.plan``): where, what, how much."""
    destination: dict[str, Any]   # network, chain_id, asset, token, address, amount (on chain)
    amount: int                   # ledger units
    memo: str | None


def new_withdrawal_id(custodian: Custodian, idempotency_key: str | None) -> str:
    """Derived from the key (a retry after the stored response expired re-finds it)."""
    if idempotency_key:
        return derived_id("wdr", custodian.user_id, str(custodian.livemode), idempotency_key)
    return new_id("wdr")


def create(uow: UnitOfWork, custodian: Custodian, plan: Plan, withdrawal_id: str) -> Withdrawal:
    """Hold the revenue, record the proposal (the proposer's approval), and queue the send at
    once when one approval is enough. One read round trip (the withdrawal id, the audit head
    and the ledger's accounts with the fee account's shards), one commit."""
    db, now, mode = uow.db, uow.now, custodian.livemode
    ref = withdrawal_ref(db, withdrawal_id)
    asset = plan.destination["asset"]
    fees, external = templates(asset, mode)
    hid = hold_id(withdrawal_id)
    spec = TransferSpec(id=hid, debit_account_id=fees.id, credit_account_id=external.id,
                        amount=plan.amount, asset=asset, pending=True,
                        code="custody_withdrawal_hold", description="Treasury withdrawal",
                        metadata={"withdrawal": withdrawal_id})
    # one round trip: the id, the audit head and what the ledger engine reads first
    snaps = uow.get_all([ref, audit.head_ref(db, mode)]
                        + engine.first_refs(db, [spec], [fees, external]))
    if snaps[ref.path].exists:
        existing = snaps[ref.path].to_dict()
        if existing["livemode"] != mode or existing["proposer"] != custodian.user_id:
            raise NotFound("No such withdrawal.", code="resource_missing")
        return resource(existing)
    policy = custodian.policy
    required = policy.required_approvals(asset, plan.amount)
    try:
        engine.execute(uow, [spec], templates=[fees, external])
    except PayloomError as exc:
        if exc.code == "insufficient_funds":
            raise Conflict(f"The platform's {asset} revenue not yet withdrawn does not cover "
                           f"this withdrawal.", code="insufficient_treasury_balance",
                           param="amount") from None
        raise
    votes = approvals.add_vote([], custodian.user_id, now)
    approved = approvals.threshold_met({"approvals": votes}, policy.approvers, required)
    doc: dict[str, Any] = {
        "id": withdrawal_id, "object": "custody_withdrawal", "livemode": mode,
        "amount": plan.amount, "destination": dict(plan.destination), "memo": plan.memo,
        "status": APPROVED if approved else PENDING, "proposer": custodian.user_id,
        "required_approvals": required, "approvals": votes, "rejections": [],
        "approval_deadline": now + dt.timedelta(seconds=policy.approval_ttl_seconds),
        "created_at": now, "updated_at": now, "approved_at": now if approved else None,
        "executed_at": None, "succeeded_at": None, "failed_at": None, "canceled_at": None,
        "failure_reason": None, "cancellation_reason": None,
        "ledger": {"asset": asset, "debit_account": fees.id, "credit_account": external.id,
                   "hold_id": hid, "transfer_ids": []},
        "chain": {"required_confirmations": policy.confirmations},
    }
    uow.create(ref, doc)
    record(uow, doc, "withdrawal.proposed", custodian.audit_actor(), memo=plan.memo,
           required_approvals=required, limit=policy.limit(asset))
    emit(uow, doc, "created")
    project = uow.deps.settings.project_id
    if approved:
        emit(uow, doc, "approved")
        _schedule_send(uow, withdrawal_id)
    else:
        uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=EXPIRE_PATH,
                          body={"withdrawal_id": withdrawal_id},
                          schedule_time=doc["approval_deadline"],
                          name=task_name("custody-wd-expire", project, withdrawal_id))
    return resource(doc)


def _schedule_send(uow: UnitOfWork, withdrawal_id: str) -> None:
    uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=SEND_PATH,
                      body={"withdrawal_id": withdrawal_id},
                      name=task_name("custody-wd-send", uow.deps.settings.project_id,
                                     withdrawal_id))


# --- reads ----------------------------------------------------------------------------------
def _missing() -> NotFound:
    return NotFound("No such withdrawal.", code="resource_missing")


def load(uow: UnitOfWork, withdrawal_id: str, livemode: bool | None = None
         ) -> tuple[Any, dict[str, Any]]:
    """The withdrawal (404 when missing or, if ``livemode`` is given, of the other mode)."""
    if not is_doc_id(withdrawal_id) or not withdrawal_id.startswith("wdr_"):
        raise _missing()
    ref = withdrawal_ref(uow.db, withdrawal_id)
    snap = uow.get(ref)
    doc = snap.to_dict() if snap.exists else None
    if doc is None or (livemode is not None and doc["livemode"] != livemode):
        raise _missing()
    return ref, doc


def prefetch(uow: UnitOfWork, livemode: bool, withdrawal_id: str | None = None,
             asset: str | None = None) -> None:
    """Read with the unit's first read (no round trip of their own): the audit head and, for a
    withdrawal that may end in this unit, what posting or voiding its hold reads (the hold,
    the resolution ids, the two accounts)."""
    db = uow.db
    uow.prefetch(audit.head_ref(db, livemode))
    if withdrawal_id and asset:
        hid = hold_id(withdrawal_id)
        for ref in [engine.transfer_ref(db, t) for t in
                    (hid, derived_id("txf", "cwdpost", hid), derived_id("txf", "cwdvoid", hid))] + \
                [accounts.account_ref(db, t.id) for t in templates(asset, livemode)]:
            uow.prefetch(ref)


def retrieve(uow: UnitOfWork, custodian: Custodian, withdrawal_id: str) -> Withdrawal:
    return resource(load(uow, withdrawal_id, custodian.livemode)[1])


def list_withdrawals(deps, custodian: Custodian, query: WithdrawalListQuery
                     ) -> ListResponse[Withdrawal]:
    """Newest first. Composite indexes: (livemode, created_at desc) and (livemode, status,
    created_at desc)."""
    col = deps.db.collection(COLLECTION)
    q = col.where(filter=FieldFilter("livemode", "==", custodian.livemode))
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    page = paginate(q, col, query, url=URL, to_resource=resource,
                    belongs=lambda d: d.get("livemode") == custodian.livemode)
    return ListResponse[Withdrawal](data=page.data, has_more=page.has_more, url=page.url)


# --- votes ----------------------------------------------------------------------------------
def _open_for_votes(uow: UnitOfWork, ref, doc: dict[str, Any]) -> None:
    """409 unless the proposal still collects votes; past its deadline it is canceled now
    (committed with the 409) rather than waiting for the timer."""
    if doc["status"] != PENDING:
        raise NotPending(f"This withdrawal is {doc['status']}; it no longer takes votes.")
    if uow.now >= doc["approval_deadline"]:
        close(uow, ref, doc, CANCELED, "expired", "system:approval_deadline")
        uow.keep_writes_on_error = True
        raise Conflict("The approval deadline of this withdrawal has passed; it is canceled.",
                       code="withdrawal_expired")


def approve(uow: UnitOfWork, custodian: Custodian, withdrawal_id: str) -> Withdrawal:
    """Add the custodian's approval (once); at M approvals the withdrawal is approved and its
    send is queued, in the same commit, so concurrent approvals execute it exactly once."""
    prefetch(uow, custodian.livemode)
    ref, doc = load(uow, withdrawal_id, custodian.livemode)
    _open_for_votes(uow, ref, doc)
    voted = approvals.has_voted(doc, custodian.user_id)
    if voted == "approved":
        return resource(doc)                      # the same custodian twice counts once
    if voted == "rejected":
        raise approvals.AlreadyVoted("You rejected this withdrawal; a custodian votes once.")
    policy = custodian.policy
    votes = approvals.add_vote(doc.get("approvals") or [], custodian.user_id, uow.now)
    required = policy.required_approvals(doc["destination"]["asset"], doc["amount"])
    met = approvals.threshold_met({"approvals": votes}, policy.approvers, required)
    changes = {"approvals": votes, "required_approvals": required, "updated_at": uow.now}
    if met:
        changes.update(status=APPROVED, approved_at=uow.now)
    doc = {**doc, **changes}
    uow.update(ref, changes)
    record(uow, doc, "withdrawal.approval", custodian.audit_actor(),
           approvals=approvals.counted(votes, policy.approvers), required_approvals=required,
           threshold_met=met)
    if met:
        emit(uow, doc, "approved")
        _schedule_send(uow, withdrawal_id)
    return resource(doc)


def reject(uow: UnitOfWork, custodian: Custodian, withdrawal_id: str,
           reason: str | None) -> Withdrawal:
    """Record a rejection (once); cancel when the threshold can no longer be reached."""
    prefetch(uow, custodian.livemode)
    ref, doc = load(uow, withdrawal_id, custodian.livemode)
    _open_for_votes(uow, ref, doc)
    voted = approvals.has_voted(doc, custodian.user_id)
    if voted == "rejected":
        return resource(doc)
    if voted == "approved":
        raise approvals.AlreadyVoted("You approved this withdrawal; a custodian votes once "
                                     "(its proposer may cancel it instead).")
    policy = custodian.policy
    votes = approvals.add_vote(doc.get("rejections") or [], custodian.user_id, uow.now, reason)
    required = policy.required_approvals(doc["destination"]["asset"], doc["amount"])
    doc = {**doc, "rejections": votes, "updated_at": uow.now}
    dead = approvals.unreachable(doc, policy.approvers, required)
    if dead:
        return resource(close(uow, ref, doc, CANCELED, "rejected", custodian.audit_actor(),
                              action="withdrawal.rejection", extra={"rejections": votes},
                              audit_data={"rejection_reason": reason,
                                          "rejections": len(votes), "canceled": True}))
    uow.update(ref, {"rejections": votes, "updated_at": uow.now})
    record(uow, doc, "withdrawal.rejection", custodian.audit_actor(), rejection_reason=reason,
           rejections=len(votes), canceled=False)
    return resource(doc)


def cancel(uow: UnitOfWork, custodian: Custodian, withdrawal_id: str) -> Withdrawal:
    """The proposer withdraws their proposal, until it is signed."""
    prefetch(uow, custodian.livemode)
    ref, doc = load(uow, withdrawal_id, custodian.livemode)
    if doc["proposer"] != custodian.user_id:
        raise PermissionDenied("Only the proposer can cancel a withdrawal; other custodians "
                               "reject it.", code="proposer_only")
    if doc["status"] == CANCELED:
        return resource(doc)
    if doc["status"] not in (PENDING, APPROVED) or (doc.get("chain") or {}).get("raw"):
        raise Conflict(f"This withdrawal is {doc['status']}; only a withdrawal not yet signed "
                       f"can be canceled.", code="withdrawal_not_cancelable")
    return resource(close(uow, ref, doc, CANCELED, "proposer_canceled", custodian.audit_actor()))


def expire(uow: UnitOfWork, withdrawal_id: str) -> str:
    """The approval-deadline timer: cancel a proposal still waiting (idempotent)."""
    try:
        ref, doc = load(uow, withdrawal_id)
    except NotFound:
        return "missing"
    if doc["status"] != PENDING:
        return "done"
    if uow.now < doc["approval_deadline"]:
        return "early"              # a clock ahead of ours; the deadline check on votes holds
    close(uow, ref, doc, CANCELED, "expired", "system:approval_deadline")
    return "expired"


# --- the end --------------------------------------------------------------------------------
_ACTIONS = {SUCCEEDED: "withdrawal.confirmed", FAILED: "withdrawal.failed",
            CANCELED: "withdrawal.canceled"}


def close(uow: UnitOfWork, ref, doc: dict[str, Any], status: str, reason: str | None,
          actor: dict[str, Any] | str, *, action: str | None = None,
          extra: dict[str, Any] | None = None, audit_data: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """End an open withdrawal: post (succeeded) or void (failed, canceled) the hold, set the
    status, append the audit record, emit the event. A closed withdrawal is returned as is."""
    if doc["status"] in (SUCCEEDED, FAILED, CANCELED):
        return doc
    now = uow.now
    tids = _resolve(uow, doc, post=status == SUCCEEDED)
    changes: dict[str, Any] = {**(extra or {}), "status": status, "updated_at": now,
                               "ledger": {**doc["ledger"], "transfer_ids": tids}}
    if status == SUCCEEDED:
        changes["succeeded_at"] = now
    elif status == FAILED:
        changes.update(failed_at=now, failure_reason=(reason or "failed")[:200])
    else:
        changes.update(canceled_at=now, cancellation_reason=reason)
    uow.update(ref, changes)
    doc = {**doc, **changes}
    data = {"reason": reason, "transaction": (doc.get("chain") or {}).get("hash"),
            **(audit_data or {})}
    record(uow, doc, action or _ACTIONS[status], actor, **data)
    emit(uow, doc, "canceled" if status == CANCELED else status)
    return doc

