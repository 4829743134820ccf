"""Refunds: create, read, list, and the two ways a pending refund ends (``complete``/``fail``).

Document ``refunds/{re_…}``: the resource's fields plus what is never shown (the held transfer
ids, the signed transaction). ``tenant`` is the merchant; every read filters tenant AND
livemode, and another merchant's or the other mode's refund or intent is a 404.

Creation is ONE unit of work (the route is atomic): it reads the refund id (derived from the
Idempotency-Key, so a retry after the stored response expired re-finds it) and the intent
together, checks the intent is captured and refundable, splits the amount
(``amounts.split``), writes the intent's ``refund_totals`` (the cap: concurrent refunds of one
intent read the same intent version, one commit wins, the others re-run against the new totals)
and books the ledger in the same commit:

- wallet: REVERSALS of the payment's own legs (``reverses``: settlement → payer wallet for the
  merchant's share, fees → payer wallet for the fee share). The ledger itself refuses to reverse
  more than a leg carried: a second guard under the intent's totals. Succeeded at once.
- card and crypto: HOLDS (pending transfers) settlement → card clearing / ``external`` and
  fees → the same, so the money is reserved while the processor or the chain works; posted on
  success, voided on failure (``complete``/``fail``). A Cloud Task (queue ``payments``,
  function ``refunds_tasks``) does the outside call: the processor (``card``) or the hot wallet
  (``crypto``).

A merchant whose settlement balance no longer covers its share (paid out) gets 400
``balance_insufficient`` with nothing written.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.ledger import accounts, engine
from shared.ledger.model import TransferSpec
from shared.payments import intents, settlement, states, wallet_method
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest, NotFound, PayloomError
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse, paginate, tenant_mode_query
from shared.platform.tasks import task_name
from shared.platform.uow import Conflicted, UnitOfWork
from shared.refunds import amounts
from shared.refunds.models import (
    EVENTS,
    CreateRefund,
    Refund,
    RefundDestination,
    RefundLedger,
    RefundListQuery,
    RefundTransaction,
    as_payload,
)

COLLECTION = "refunds"
TASK_QUEUE, TASK_FUNCTION = "payments", "refunds_tasks"
CARD_SUBMIT_PATH, CRYPTO_SEND_PATH, CRYPTO_POLL_PATH = "/card/submit", "/crypto/send", "/crypto/poll"
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
METHODS = ("wallet", "card", "crypto")


class IntentNotRefundable(Conflict):
    code = "intent_not_refundable"


def refund_ref(db, refund_id: str):
    return db.collection(COLLECTION).document(refund_id)


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def resource(doc: dict[str, Any]) -> Refund:
    chain = doc.get("chain") or {}
    tx = None
    if chain.get("hash"):
        tx = RefundTransaction(hash=chain["hash"], nonce=chain["nonce"], sender=chain["sender"],
                               block_number=chain.get("block_number"),
                               confirmations=int(chain.get("confirmations") or 0),
                               gas_used=chain.get("gas_used"),
                               explorer_url=chain.get("explorer_url"))
    ledger = doc["ledger"]
    return Refund(
        id=doc["id"], merchant=doc["tenant"], livemode=doc["livemode"],
        payment_intent=doc["payment_intent"], amount=doc["amount"], currency=doc["currency"],
        method=doc["method"], status=doc["status"], reason=doc.get("reason"),
        metadata=doc.get("metadata") or {}, failure_reason=doc.get("failure_reason"),
        created=_ts(doc["created_at"]), updated=_ts(doc["updated_at"]),
        succeeded_at=_ts(doc.get("succeeded_at")), failed_at=_ts(doc.get("failed_at")),
        ledger=RefundLedger(asset=ledger["asset"], amount=ledger["ledger"],
                            merchant_share=ledger["net"], fee_share=ledger["fee"],
                            transfer_ids=list(ledger.get("transfer_ids") or [])),
        destination=RefundDestination(**doc["destination"]) if doc.get("destination") else None,
        transaction=tx, processor_refund=(doc.get("processor") or {}).get("id"))


def emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(EVENTS[name].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data=as_payload(resource(doc)))


# --- ledger legs ------------------------------------------------------------------------------
def _templates(doc: dict[str, Any], asset: str, method: str):
    """(settlement, fees, counterpart) account templates of a card/crypto refund."""
    mode = doc["livemode"]
    dest_kind = "topup_clearing" if method == "card" else "external"
    return (settlement.settlement_template(doc["tenant"], asset, mode),
            settlement.fees_template(asset, mode),
            accounts.system_template(dest_kind, asset, "" if mode else "test"))


def wallet_reversals(intent: dict[str, Any], refund_id: str, split: amounts.Split,
                     taken: dict[str, int]) -> tuple[list[TransferSpec], dict[str, int]]:
    """Reversals of the payment's net and fee legs carrying ``split`` (pure), and the legs'
    new ``taken`` map. Legs are the settled receipts' transfers, in receipt order."""
    net_legs, fee_legs = [], []
    for r in intent.get("receipts") or []:
        if not r.get("settled") or r.get("reorged"):
            continue
        net_id, fee_id = settlement.transfer_ids(intent["id"], r["reference"],
                                                 int(r.get("generation") or 0))
        gross, fee = int(r.get("ledger_amount") or r["amount"]), int(r.get("fee") or 0)
        if gross - fee:
            net_legs.append((net_id, gross - fee))
        if fee:
            fee_legs.append((fee_id, fee))
    meta = {"payment_intent": intent["id"], "refund": refund_id, "merchant": intent["tenant"]}
    specs, taken = [], dict(taken)
    for legs, part, code in ((net_legs, split.net, "refund"), (fee_legs, split.fee, "refund_fee")):
        for tid, amount in amounts.distribute(part, legs, taken):
            taken[tid] = int(taken.get(tid) or 0) + amount
            specs.append(TransferSpec(id=derived_id("txf", "refund", refund_id, tid), reverses=tid,
                                      amount=amount, code=code, description="Refund",
                                      metadata=meta))
    return specs, taken


def hold_ids(refund_id: str) -> tuple[str, str]:
    return derived_id("txf", "rfhold", refund_id, "net"), derived_id("txf", "rfhold", refund_id, "fee")


def holds(intent: dict[str, Any], refund_id: str, split: amounts.Split, asset: str,
          method: str) -> tuple[list[TransferSpec], list]:
    """Pending transfers reserving the refund in the merchant's settlement account and the fee
    account (pure), and the templates they need."""
    settle, fees, dest = _templates(intent, asset, method)
    net_id, fee_id = hold_ids(refund_id)
    meta = {"payment_intent": intent["id"], "refund": refund_id, "merchant": intent["tenant"]}
    specs = []
    if split.net:
        specs.append(TransferSpec(id=net_id, debit_account_id=settle.id, credit_account_id=dest.id,
                                  amount=split.net, asset=asset, pending=True, code="refund_hold",
                                  description="Refund in flight", metadata=meta))
    if split.fee:
        specs.append(TransferSpec(id=fee_id, debit_account_id=fees.id, credit_account_id=dest.id,
                                  amount=split.fee, asset=asset, pending=True,
                                  code="refund_fee_hold", description="Refund in flight (fee)",
                                  metadata=meta))
    return specs, [settle, fees, dest]


def resolutions(doc: dict[str, Any], *, post: bool) -> list[TransferSpec]:
    """Post (success) or void (failure) the refund's holds; ids derive from the holds."""
    kind = "post" if post else "void"
    out = []
    for hid in (doc.get("ledger") or {}).get("hold_ids") or []:
        rid = derived_id("txf", f"rf{kind}", hid)
        out.append(TransferSpec(id=rid, post_pending_id=hid, code="refund")
                   if post else TransferSpec(id=rid, void_pending_id=hid, code="refund_void"))
    return out


def _prefetch_reversal(uow: UnitOfWork, intent: dict[str, Any], specs: list[TransferSpec],
                       asset: str) -> None:
    """Read in ONE round trip what the ledger engine would otherwise find out in three (a
    reversal names its accounts only through the reversed transfer): the reversals' ids, the
    reversed transfers, the settlement and fee accounts with their shards (checked debits) and
    the payer's wallet. The engine then plans from the unit's cache."""
    db, mode = uow.db, intent["livemode"]
    refs = [engine.transfer_ref(db, s.id) for s in specs]
    refs += [engine.transfer_ref(db, s.reverses) for s in specs if s.reverses]
    for t in (settlement.settlement_template(intent["tenant"], asset, mode),
              settlement.fees_template(asset, mode)):
        refs.append(accounts.account_ref(db, t.id))
        refs += accounts.shard_refs(db, t.id, t.shard_count)
    if intent.get("payer"):
        funding = wallet_method.funding_template(intent["payer"], asset, mode)
        refs.append(accounts.account_ref(db, funding.id))
    uow.get_all(refs)


def _execute(uow: UnitOfWork, specs: list[TransferSpec], templates=()) -> None:
    try:
        engine.execute(uow, specs, templates=templates)
    except PayloomError as exc:
        if exc.code == "insufficient_funds":
            raise InvalidRequest("The merchant's settlement balance does not cover this refund.",
                                 code="balance_insufficient", param="amount") from None
        if exc.code in ("exceeds_reversible_amount", "transfer_already_reversed"):
            # the intent's refund totals allowed it, so they were read before a concurrent
            # refund committed (the transfers were read after it): run the unit again with
            # fresh reads, which answers amount_too_large
            raise Conflicted(exc.code) from None
        raise


# --- create -------------------------------------------------------------------------------------
def _owned_intent(snap, principal: Principal) -> dict[str, Any]:
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc.get("tenant") != principal.tenant_id or \
            doc.get("livemode") != principal.livemode:
        raise NotFound("No such payment intent.", code="resource_missing", param="payment_intent")
    return doc


def create(uow: UnitOfWork, principal: Principal, body: CreateRefund,
           idempotency_key: str | None) -> Refund:
    """One ``get_all`` (refund id, intent, idempotency record), the ledger's reads, one commit."""
    from shared.refunds import (
        crypto,  # the chain part (eth_utils) only where it is used
    )
    merchant, mode = principal.tenant_id, principal.livemode
    if not body.payment_intent.startswith("pi_"):
        raise NotFound("No such payment intent.", code="resource_missing", param="payment_intent")
    refund_id = (derived_id("re", merchant, str(mode), idempotency_key)
                 if idempotency_key else new_id("re"))
    rref, iref = refund_ref(uow.db, refund_id), intents.intent_ref(uow.db, body.payment_intent)
    snaps = uow.get_all([rref, iref])
    if snaps[rref.path].exists:
        existing = snaps[rref.path].to_dict()
        if existing["tenant"] != merchant or existing["livemode"] != mode:
            raise NotFound("No such refund.", code="resource_missing")
        return resource(existing)
    intent = _owned_intent(snaps[iref.path], principal)
    if intent["status"] not in states.PAID:
        raise IntentNotRefundable(f"Only a captured payment intent (succeeded, overpaid or "
                                  f"paid_late) can be refunded; this one is {intent['status']}.")
    cap = amounts.captured(intent)
    if cap is None:
        raise IntentNotRefundable("Nothing has been settled on this payment intent.")
    if cap.method not in METHODS:
        raise IntentNotRefundable(f"Refunds of {cap.method} payments are not supported.")
    if body.address is not None and cap.method != "crypto":
        raise InvalidRequest("address applies to crypto refunds only.",
                             code="parameter_invalid", param="address")
    destination = crypto.destination(uow.deps, intent, body.address) \
        if cap.method == "crypto" else None
    totals = amounts.Totals.of(intent.get("refund_totals"))
    split = amounts.split(cap, totals, body.amount)
    now = uow.now
    doc: dict[str, Any] = {
        "id": refund_id, "object": "refund", "tenant": merchant, "livemode": mode,
        "project_id": principal.project_id, "payment_intent": intent["id"],
        "amount": split.amount, "currency": intent["currency"], "method": cap.method,
        "status": PENDING, "reason": body.reason, "metadata": body.metadata,
        "failure_reason": None, "created_at": now, "updated_at": now, "succeeded_at": None,
        "failed_at": None, "ledger": {"asset": cap.asset, **split.as_dict(),
                                      "transfer_ids": [], "hold_ids": []},
        "destination": None, "chain": None, "processor": None,
        "created_by": principal.actor_id or principal.id,
    }
    intent_fields: dict[str, Any] = {"refund_totals": totals.plus(split).as_dict()}
    if cap.method == "wallet":
        specs, taken = wallet_reversals(intent, refund_id, split, intent.get("refund_legs") or {})
        _prefetch_reversal(uow, intent, specs, cap.asset)
        _execute(uow, specs)
        intent_fields["refund_legs"] = taken
        doc["ledger"]["transfer_ids"] = [s.id for s in specs]
        doc.update(status=SUCCEEDED, succeeded_at=now)
    else:
        specs, templates = holds(intent, refund_id, split, cap.asset, cap.method)
        _execute(uow, specs, templates)
        doc["ledger"]["hold_ids"] = [s.id for s in specs]
        if cap.method == "crypto":
            doc["destination"] = destination.wire(split.ledger)
            doc["chain"] = {"required_confirmations": destination.confirmations}
        path = CRYPTO_SEND_PATH if cap.method == "crypto" else CARD_SUBMIT_PATH
        uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=path,
                          body={"refund_id": refund_id},
                          name=task_name("refund-start", uow.deps.settings.project_id, refund_id))
    uow.update(iref, intent_fields)
    uow.create(rref, doc)
    emit(uow, doc, "created")
    if doc["status"] == SUCCEEDED:
        emit(uow, doc, "succeeded")
    return resource(doc)


# --- reads --------------------------------------------------------------------------------------
def retrieve(uow: UnitOfWork, principal: Principal, refund_id: str) -> Refund:
    if not is_doc_id(refund_id) or not refund_id.startswith("re_"):
        raise NotFound("No such refund.", code="resource_missing")
    snap = uow.get(refund_ref(uow.db, refund_id))
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc["tenant"] != principal.tenant_id or doc["livemode"] != principal.livemode:
        raise NotFound("No such refund.", code="resource_missing")
    return resource(doc)


def list_refunds(deps, principal: Principal, query: RefundListQuery) -> ListResponse[Refund]:
    """Newest first. Composite indexes: (tenant, livemode, created_at desc) and (tenant,
    livemode, payment_intent, created_at desc)."""
    col = deps.db.collection(COLLECTION)
    q, belongs = tenant_mode_query(col, principal)
    if query.payment_intent:
        q = q.where(filter=FieldFilter("payment_intent", "==", query.payment_intent))
    page = paginate(q, col, query, url="/v1/refunds", to_resource=resource,
                    belongs=belongs)
    return ListResponse[Refund](data=page.data, has_more=page.has_more, url=page.url)


# --- the end of a pending refund ------------------------------------------------------------------
def load_for_update(uow: UnitOfWork, refund_id: str) -> tuple[Any, dict[str, Any] | None]:
    ref = refund_ref(uow.db, refund_id)
    snap = uow.get(ref)
    return ref, (snap.to_dict() if snap.exists else None)


def complete(uow: UnitOfWork, ref, doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Post the holds, mark succeeded, emit ``refund.succeeded``. Idempotent: a refund that is no
    longer pending is returned unchanged."""
    if doc["status"] != PENDING:
        return doc
    specs = resolutions(doc, post=True)
    if specs:
        engine.execute(uow, specs)
    ledger = {**doc["ledger"], "transfer_ids": [s.id for s in specs]}
    changes = {**fields, "status": SUCCEEDED, "succeeded_at": uow.now, "updated_at": uow.now,
               "ledger": ledger}
    uow.update(ref, changes)
    doc = {**doc, **changes}
    emit(uow, doc, "succeeded")
    return doc


def fail(uow: UnitOfWork, ref, doc: dict[str, Any], reason: str, **fields: Any) -> dict[str, Any]:
    """Void the holds, give the amount back to the intent's refundable total, mark failed, emit
    ``refund.failed``. Idempotent like ``complete``. No money left: the merchant may refund
    again (to a corrected address, say)."""
    if doc["status"] != PENDING:
        return doc
    iref, intent = intents.load_for_update(uow, doc["payment_intent"])
    specs = resolutions(doc, post=False)
    if specs:
        engine.execute(uow, specs)
    totals = amounts.Totals.of(intent.get("refund_totals")).minus(amounts.Split.of(doc["ledger"]))
    uow.update(iref, {"refund_totals": totals.as_dict()})
    changes = {**fields, "status": FAILED, "failure_reason": reason[:200], "failed_at": uow.now,
               "updated_at": uow.now}
    uow.update(ref, changes)
    doc = {**doc, **changes}
    emit(uow, doc, "failed")
    return doc
