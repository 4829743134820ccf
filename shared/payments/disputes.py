"""Card disputes (chargebacks): the processor's ``charge.dispute.*`` events, applied by the inbox.

A dispute names the processor's PaymentIntent; ``card_payments/{pi}`` (written when the card
payment was recorded) says which intent, merchant and mode it belongs to. Events are applied
in any order: a dispute of a payment whose ``succeeded`` webhook has not been applied yet is
retried by the inbox (``PaymentNotYetKnown``) rather than holding from a balance not yet
credited; one that never becomes known (a disputed wallet top-up) ends dead-lettered.

Money: opening a dispute HOLDS the disputed amount on the merchant's settlement account — a
two-phase ledger transfer (pending) from ``settlement`` to the ``disputes`` system account of
the asset and mode — so the merchant cannot be paid out money it may lose. Closing it won VOIDS
the hold (the money is the merchant's again); lost POSTS it (the money leaves the merchant for
the processor, which has taken it from us). The settlement account must not go below zero: when
it holds less than the disputed amount (already paid out), what is there is held and the rest is
recorded as ``uncovered_amount`` (for the payout/settlement capability to recover; not done
here).

Idempotency: one document ``disputes/{dp_…}`` per processor dispute and transfer ids derived
from it, so the same event twice (or ``created`` after ``closed``: events may be processed out
of order) changes nothing. A ``closed`` event for a dispute we never saw opens and resolves it
in ONE ledger batch. Events ``dispute.created``, ``dispute.updated``, ``dispute.closed`` (public)
go to the merchant.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from shared.adapters.stripe_cards import Dispute as ProcessorDispute
from shared.inbox.handlers import PermanentFailure
from shared.ledger import accounts, engine
from shared.ledger.model import AccountFlags, AccountTemplate, TransferSpec
from shared.payments import card_events, intents, settlement
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.errors import PayloomError
from shared.platform.ids import derived_id
from shared.platform.models import ResourceModel, is_doc_id
from shared.platform.uow import UnitOfWork

COLLECTION = "disputes"
DISPUTES_KIND = "disputes"


class PaymentNotYetKnown(Exception):
    """The disputed payment is not (yet) a settled card payment of ours: retry later."""


class Dispute(ResourceModel):
    id: str
    object: Literal["dispute"] = "dispute"
    merchant: str
    livemode: bool
    payment_intent: str
    amount: int                       # ledger units of ``currency``
    currency: str
    reason: str | None = None
    status: str                       # the processor's: needs_response, under_review, won, lost…
    outcome: Literal["won", "lost"] | None = None
    held_amount: int = 0              # held on the merchant's settlement account
    uncovered_amount: int = 0         # disputed but not held (the balance was already paid out)
    evidence_due_by: int | None = None
    created: int
    updated: int
    closed_at: int | None = None


DISPUTE_EVENTS = {name: declare(f"dispute.{name}", ObjectPayload[Dispute],
                                description=f"A card payment's dispute was {name}.")
                  for name in ("created", "updated", "closed")}


# --- ledger ----------------------------------------------------------------------------------------
def disputes_template(asset: str, livemode: bool) -> AccountTemplate:
    """The system account disputed money is held towards (per asset and mode). Built here
    rather than with ``accounts.system_template`` until ``disputes`` is one of its kinds."""
    key = "" if livemode else "test"
    return AccountTemplate(id=accounts.system_account_id(DISPUTES_KIND, asset, key), asset=asset,
                           owner_type="system", owner_id=f"{DISPUTES_KIND}:{key}" if key
                           else DISPUTES_KIND, kind=DISPUTES_KIND, flags=AccountFlags(),
                           shard_count=1, label=f"{DISPUTES_KIND} {key} {asset}".replace("  ", " "))


def hold_id(dispute_id: str) -> str:
    return derived_id("txf", "dispute_hold", dispute_id)


def resolution_id(dispute_id: str) -> str:
    return derived_id("txf", "dispute_close", dispute_id)


def _resolution(dispute_id: str, outcome: str) -> TransferSpec:
    kw = {"post_pending_id": hold_id(dispute_id)} if outcome == "lost" else \
        {"void_pending_id": hold_id(dispute_id)}
    return TransferSpec(id=resolution_id(dispute_id), code=f"dispute_{outcome}",
                        description=f"Dispute {outcome}", metadata={"dispute": dispute_id}, **kw)


def _available(uow: UnitOfWork, account_id: str) -> int:
    snap = uow.get(accounts.account_ref(uow.db, account_id))
    if not snap.exists:
        return 0
    doc = snap.to_dict()
    shards = uow.get_all(accounts.shard_refs(uow.db, account_id, max(1, int(doc.get("shard_count") or 1))))
    return max(0, accounts.balance_from(shards.values(), doc).available)


def _hold(uow: UnitOfWork, d: ProcessorDispute, payment: dict[str, Any], amount: int,
          outcome: str | None) -> int:
    """Hold up to ``amount`` (and resolve it at once when ``outcome``); returns what was held."""
    asset, livemode = payment["currency"], payment["livemode"]
    source = settlement.settlement_template(payment["tenant"], asset, livemode)
    dest = disputes_template(asset, livemode)

    def specs(n: int) -> list[TransferSpec]:
        hold = TransferSpec(id=hold_id(d.id), debit_account_id=source.id, credit_account_id=dest.id,
                            amount=n, asset=asset, pending=True, code="dispute_hold",
                            description="Disputed card payment",
                            metadata={"dispute": d.id, "payment_intent": payment["intent_id"],
                                      "merchant": payment["tenant"]})
        return [hold] + ([_resolution(d.id, outcome)] if outcome else [])

    try:
        engine.execute(uow, specs(amount), templates=[source, dest])
        return amount
    except PayloomError as exc:
        if exc.code != "insufficient_funds":
            raise
    held = min(amount, _available(uow, source.id))
    if held > 0:
        engine.execute(uow, specs(held), templates=[source, dest])
    return held


# --- documents and events ---------------------------------------------------------------------------
def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def resource(doc: dict[str, Any]) -> Dispute:
    return Dispute(id=doc["id"], merchant=doc["tenant"], livemode=doc["livemode"],
                   payment_intent=doc["intent_id"], amount=doc["amount"], currency=doc["currency"],
                   reason=doc.get("reason"), status=doc["status"], outcome=doc.get("outcome"),
                   held_amount=doc.get("held_amount", 0),
                   uncovered_amount=doc.get("uncovered_amount", 0),
                   evidence_due_by=doc.get("evidence_due_by"), created=_ts(doc["created_at"]),
                   updated=_ts(doc["updated_at"]), closed_at=_ts(doc.get("closed_at")))


def _emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(DISPUTE_EVENTS[name].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data={"object": resource(doc).model_dump(mode="json")})


def dispute_ref(db, dispute_id: str):
    return db.collection(COLLECTION).document(dispute_id)


def _open(uow: UnitOfWork, ref, d: ProcessorDispute, payment: dict[str, Any]) -> dict[str, Any]:
    outcome = d.outcome
    amount = min(card_events.from_processor_amount(d.amount, payment["currency"]),
                 int(payment["amount"]))
    held = _hold(uow, d, payment, amount, outcome)
    now = uow.now
    doc = {"id": d.id, "object": "dispute", "processor": card_events.PROCESSOR,
           "tenant": payment["tenant"], "livemode": payment["livemode"],
           "intent_id": payment["intent_id"], "processor_payment_id": d.payment_intent,
           "charge": d.charge, "amount": amount, "processor_amount": d.amount,
           "currency": payment["currency"], "reason": d.reason, "status": d.status,
           "outcome": outcome, "held_amount": held, "uncovered_amount": amount - held,
           "hold_transfer_id": hold_id(d.id) if held else None,
           "resolution_transfer_id": resolution_id(d.id) if held and outcome else None,
           "evidence_due_by": d.evidence_due_by, "created_at": now, "updated_at": now,
           "closed_at": now if outcome else None}
    uow.create(ref, doc)
    _emit(uow, doc, "created")
    if outcome:
        _emit(uow, doc, "closed")
    return doc


def _close(uow: UnitOfWork, ref, doc: dict[str, Any], d: ProcessorDispute) -> dict[str, Any]:
    outcome = d.outcome
    assert outcome is not None
    if doc.get("held_amount"):
        engine.execute(uow, [_resolution(d.id, outcome)])
    fields = {"status": d.status, "outcome": outcome, "updated_at": uow.now, "closed_at": uow.now,
              "resolution_transfer_id": resolution_id(d.id) if doc.get("held_amount") else None}
    uow.update(ref, fields)
    doc = {**doc, **fields}
    _emit(uow, doc, "closed")
    return doc


# --- the inbox handler ----------------------------------------------------------------------------------
def apply(uow: UnitOfWork, event: dict[str, Any]) -> str:
    """Apply a verified ``charge.dispute.*`` event. Returns what happened: opened, closed_won,
    closed_lost, updated, already_open, already_closed, livemode_mismatch, ignored. A dispute
    object that is not one is dead-lettered (``PermanentFailure``); a dispute of a payment not
    (yet) recorded and settled raises ``PaymentNotYetKnown`` (the inbox retries it)."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    try:
        d = ProcessorDispute.from_json(obj)
    except (ValueError, TypeError) as exc:
        raise PermanentFailure(f"not a dispute: {exc}") from None
    if not is_doc_id(d.id) or not d.payment_intent or not is_doc_id(d.payment_intent):
        return "ignored"
    pay_ref = card_events.card_payment_ref(uow.db, d.payment_intent)
    ref = dispute_ref(uow.db, d.id)
    snaps = uow.get_all([pay_ref, ref])
    if not snaps[pay_ref.path].exists:
        # not (yet) a known card payment: its success may still be in the inbox. Retried with
        # back-off, then dead-lettered for a person (a disputed wallet top-up ends there too).
        raise PaymentNotYetKnown(f"no card payment {d.payment_intent} (yet)")
    payment = snaps[pay_ref.path].to_dict()
    if d.livemode != bool(payment["livemode"]):
        return "livemode_mismatch"
    existing = snaps[ref.path].to_dict() if snaps[ref.path].exists else None
    etype = event.get("type")
    if existing is None:
        if etype not in ("charge.dispute.created", "charge.dispute.updated",
                         "charge.dispute.closed", "charge.dispute.funds_withdrawn"):
            return "ignored"
        snap = uow.get(intents.intent_ref(uow.db, payment["intent_id"]))
        receipts = (snap.to_dict().get("receipts") or []) if snap.exists else []
        wanted = card_events.reference(d.payment_intent)
        if not any(r.get("reference") == wanted and r.get("settled") for r in receipts):
            # the payment's webhook has not been applied yet: hold nothing from an empty balance
            raise PaymentNotYetKnown(f"card payment {d.payment_intent} not settled yet")
        doc = _open(uow, ref, d, payment)
        return f"closed_{doc['outcome']}" if doc["outcome"] else "opened"
    if existing.get("outcome"):
        return "already_closed"
    if d.outcome:                                   # closed (or an update saying so)
        doc = _close(uow, ref, existing, d)
        return f"closed_{doc['outcome']}"
    if etype == "charge.dispute.updated" and (d.status != existing["status"] or
                                              d.evidence_due_by != existing.get("evidence_due_by")):
        fields = {"status": d.status, "evidence_due_by": d.evidence_due_by, "updated_at": uow.now}
        uow.update(ref, fields)
        _emit(uow, {**existing, **fields}, "updated")
        return "updated"
    return "already_open"
