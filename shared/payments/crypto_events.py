"""Chain events applied to payment intents (the ``payments_events`` Pub/Sub consumer).

The watcher emits ``chain.transfer_seen|confirmed|reorged`` for transfers to deposit addresses.
Each is applied ONCE per transfer state through ``crypto_receipts/{network}:{tx}:{log}`` (what
this consumer already did for that transfer) read and written in the same unit as the intent:

- events are level-triggered: the truth is the watcher's ``chain_transfers`` document when it
  exists (else the event's payload), so Pub/Sub delivering ``confirmed`` before ``seen`` or a
  stale ``confirmed`` after ``reorged`` converges to the chain's current state;
- seen → ``record_received(final=False)`` (the intent goes ``processing`` when the money on its
  way would pay it; BTCPay's Processing); confirmed → ``record_received(final=True, reference=
  "<network>:<tx>:<log>")`` → succeeded / underpaid / overpaid / paid_late with the tolerance,
  settled in the ledger in the same unit; several transfers to one address add up;
- reorged → ``record_reorged``: the receipt stops counting, its ledger legs (if settled) are
  reversed once, the intent goes back to processing / requires_payment_method and
  ``payment_intent.reorged`` is emitted; seen/confirmed again → settled again exactly once
  (settlement ids carry the receipt's generation).

Unmatched payments (recorded on the intent's ``crypto.unmatched``, ``payment_intent.
payment_unmatched`` emitted, never settled to the merchant, kept for a refund):
a transfer first seen after the late window; a token other than the address's asset; an intent
canceled or already captured by ANOTHER method (the wallet won the race: policy "first final
payment captures, the other is flagged for refund").

Dust (see ``crypto_method``): the part of a transfer below the ledger scale, or a whole
transfer worth less than one minor unit, is recorded exactly (``crypto.dust``, base units) and
never credited.
"""
from __future__ import annotations

from typing import Any

from shared.chain.events import TRANSFER_CONFIRMED, TRANSFER_REORGED, TRANSFER_SEEN
from shared.payments import crypto_method, intents, states
from shared.payments.models import PaymentIntent
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.consumer import EventConsumer
from shared.platform.errors import Conflict, NotFound
from shared.platform.outbox import Event
from shared.platform.uow import UnitOfWork

RECEIPTS = "crypto_receipts"
CHAIN_TRANSFERS = "chain_transfers"
UNMATCHED_SHOWN = 10            # the intent shows the newest unmatched payments (events stay thin)
UNMATCHED = declare("payment_intent.payment_unmatched", ObjectPayload[PaymentIntent],
                    description="A payment reached the intent's deposit address but cannot pay "
                                "it (after the late window, wrong token, intent canceled or "
                                "already paid by another method); it is kept for a refund.")

consumer = EventConsumer("payments_events")

# applied states of a transfer on its intent
NONE, SEEN, CONFIRMED, REORGED = "none", "seen", "confirmed", "reorged"


def reference(t: dict[str, Any]) -> str:
    return f"{t['network']}:{t['tx_hash']}:{t['log_index']}"


def target_state(truth: str) -> str:
    return {"seen": SEEN, "confirmed": CONFIRMED, "reorged": REORGED}[truth]


def unmatched_reason(doc: dict[str, Any], t: dict[str, Any]) -> str | None:
    """Why this transfer cannot pay the intent (pure), or None when it can."""
    crypto = doc.get("crypto") or {}
    if not crypto or crypto.get("address", "").lower() != str(t.get("to", "")).lower():
        return "unknown_address"
    if t.get("asset") != crypto.get("asset") or \
            (t.get("token") or "").lower() != (crypto.get("token") or "").lower():
        return "wrong_asset"
    if doc["status"] == states.CANCELED:
        return "intent_canceled"
    if doc.get("method") not in (None, crypto_method.CRYPTO):
        return "paid_by_other_method"
    seen_at = t.get("first_seen_at")
    if seen_at is not None and seen_at > doc["late_until"]:
        return "after_late_window"
    return None


def _seen_at(t: dict[str, Any]):
    import datetime as dt
    value = t.get("first_seen_at")
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def apply_transfer(uow: UnitOfWork, t: dict[str, Any]) -> str:
    """Bring the intent in line with transfer ``t``'s current chain state. Returns what was done
    (for tests and logs). Reads: intent, receipt record, watcher's transfer doc (one get_all)."""
    if not t.get("intent_id"):
        return "no_intent"
    db = uow.db
    tid = reference(t)
    rec_ref = db.collection(RECEIPTS).document(tid)
    chain_ref = db.collection(CHAIN_TRANSFERS).document(tid)
    iref = intents.intent_ref(db, t["intent_id"])
    snaps = uow.get_all([iref, rec_ref, chain_ref])
    if not snaps[iref.path].exists:
        raise NotFound("intent of a deposit address is missing")   # retried, then logged
    doc = snaps[iref.path].to_dict()
    if snaps[chain_ref.path].exists:                                 # the chain's current truth
        t = {**t, **{k: v for k, v in snaps[chain_ref.path].to_dict().items() if v is not None}}
    t = {**t, "first_seen_at": _seen_at(t)}
    rec = snaps[rec_ref.path].to_dict() if snaps[rec_ref.path].exists else None
    applied = (rec or {}).get("applied", NONE)
    want = target_state(t["status"])
    if want == applied:
        return "unchanged"
    crypto = dict(doc.get("crypto") or {})
    amount_base = int(t["amount"])
    if rec is None:
        reason = unmatched_reason(doc, t)
        units, dust = (0, 0)
        if reason is None:
            units, dust = crypto_method.received_units(
                amount_base, asset=crypto["asset"], currency=doc["currency"],
                amount=doc.get("amount"),
                amount_due=int(crypto["amount_due"]) if crypto.get("amount_due") else None,
                rate=(crypto.get("rate") or {}).get("rate"))
        rec = {"id": tid, "intent_id": doc["id"], "tenant": doc["tenant"],
               "livemode": doc["livemode"], "network": t["network"], "tx_hash": t["tx_hash"],
               "log_index": t["log_index"], "amount": str(amount_base), "units": units,
               "dust": str(dust), "unmatched": reason, "created_at": uow.now}
    outcome = _apply(uow, iref, doc, crypto, rec, applied, want)
    rec = {**rec, "applied": want, "updated_at": uow.now}
    uow.set(rec_ref, rec)
    return outcome


def _totals(crypto: dict[str, Any], rec: dict[str, Any], sign: int, *, confirmed: bool,
            received: bool) -> None:
    amount = int(rec["amount"])
    if received:
        crypto["received"] = str(int(crypto.get("received") or 0) + sign * amount)
    if confirmed:
        crypto["confirmed"] = str(int(crypto.get("confirmed") or 0) + sign * amount)
        crypto["dust"] = str(int(crypto.get("dust") or 0) + sign * int(rec.get("dust") or 0))


def _apply(uow, ref, doc, crypto, rec, applied, want) -> str:
    counted_before = applied in (SEEN, CONFIRMED)
    counted_after = want in (SEEN, CONFIRMED)
    if counted_after and not counted_before:
        _totals(crypto, rec, +1, confirmed=False, received=True)
    if counted_before and not counted_after:
        _totals(crypto, rec, -1, confirmed=False, received=True)
    if want == CONFIRMED:
        _totals(crypto, rec, +1, confirmed=True, received=False)
    if applied == CONFIRMED:
        _totals(crypto, rec, -1, confirmed=True, received=False)
    reference_ = rec["id"]
    asset = crypto.get("asset")
    if rec.get("unmatched"):
        return _unmatched(uow, ref, doc, crypto, rec, want)
    units = int(rec.get("units") or 0)
    uow.update(ref, {"crypto": crypto, "updated_at": uow.now})
    doc = {**doc, "crypto": crypto}
    if units <= 0:
        return f"dust:{want}"                 # recorded in crypto.dust, never credited
    if want == REORGED:
        intents.record_reorged(uow, ref, doc, reference_)
        return "reorged"
    ledger = {}
    if asset != doc["currency"]:
        from shared.ledger import assets
        ledger = {"ledger_asset": asset,
                  "ledger_amount": int(rec["amount"]) // assets.get_asset(asset).dust_factor}
    if want == SEEN and applied == CONFIRMED:
        # confirmed → seen only happens through a reorg we did not see: count it pending again
        doc = intents.record_reorged(uow, ref, doc, reference_)
    try:
        new = intents.record_received(uow, ref, doc, units,
                                      method=crypto_method.CRYPTO, final=want == CONFIRMED,
                                      reference=reference_, **ledger)
    except Conflict as exc:
        if exc.code != "too_many_receipts":
            raise
        # the intent holds no more separate payments: keep the money visible as unmatched (to
        # refund) instead of failing, which Pub/Sub would redeliver forever
        rec["unmatched"] = "too_many_payments"
        return _unmatched(uow, ref, doc, crypto, rec, want)
    return f"{want}:{new['status']}"


def _unmatched(uow, ref, doc, crypto, rec, want) -> str:
    """Record (confirmed) or withdraw (reorged) an unmatched payment on the intent."""
    entries = [e for e in (crypto.get("unmatched") or []) if e.get("reference") != rec["id"]]
    count = int(crypto.get("unmatched_count") or 0)
    if want == CONFIRMED:
        entries.append({"reference": rec["id"], "amount": rec["amount"],
                        "reason": rec["unmatched"], "tx_hash": rec["tx_hash"],
                        "at": int(uow.now.timestamp())})
        count += 1
    elif rec.get("applied") == CONFIRMED:
        count -= 1
    crypto["unmatched"] = entries[-UNMATCHED_SHOWN:]
    crypto["unmatched_count"] = max(0, count)
    fields = {"crypto": crypto, "updated_at": uow.now}
    uow.update(ref, fields)
    if want == CONFIRMED:
        new = {**doc, **fields}
        uow.emit(UNMATCHED.name, tenant=doc["tenant"], livemode=doc["livemode"],
                 data={"object": intents.resource(new).model_dump(mode="json")})
    return f"unmatched:{rec['unmatched']}:{want}"


def _handle(uow: UnitOfWork, event: Event) -> None:
    apply_transfer(uow, dict(event.data["object"]))


for _type in (TRANSFER_SEEN, TRANSFER_CONFIRMED, TRANSFER_REORGED):
    consumer.on(_type)(_handle)
