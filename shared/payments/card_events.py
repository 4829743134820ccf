"""The card processor's verified ``payment_intent.*`` events for merchant payment intents (the
inbox runs ``apply`` for events whose metadata names ``payloom_intent_id``; see
``shared/wallet/inbound.py``), and the rules the card method shares with them.

Only the signed webhook finalises a card payment: ``payment_intent.succeeded`` records a FINAL
receipt ``card:<processor pi id>`` with ``intents.record_received`` (which settles it to the
merchant from the card clearing account in the same unit). The synchronous answer of a
confirmation never does (it may be forged by nobody, but it may be lost, replayed or raced by
the webhook: one path that pays keeps the ledger simple).

Idempotency: the inbox de-duplicates by event id; independently, a receipt is keyed by the
processor's PaymentIntent id (a replayed or duplicated ``succeeded`` changes nothing), and a
failure by its charge id (``last_payment_error.charge``; every confirmation attempt makes its own
charge), so the synchronous decline and its webhook emit ``payment_intent.payment_failed`` once.

Document ``card_payments/{processor pi id}``: which intent a processor payment belongs to
(disputes name the processor's PaymentIntent, never our metadata).
"""
from __future__ import annotations

import logging
from typing import Any

from shared.ledger import assets
from shared.payments import intents, states
from shared.payments.models import EVENTS
from shared.platform import logs
from shared.platform.errors import InvalidRequest, NotFound
from shared.platform.models import is_doc_id
from shared.platform.uow import UnitOfWork

_log = logging.getLogger(__name__)

METHOD = "card"
PROCESSOR = "stripe"
METADATA_KEY = "payloom_intent_id"
CARD_PAYMENTS = "card_payments"
MAX_FAILURES = 20            # failure keys remembered per intent (bounded document)
CONFIRMING = "confirming"    # card.status while a confirmation call is in flight
# The processor's minor unit per currency (Stripe: KHR has 2 decimals, unlike its ISO use).
PROCESSOR_EXPONENT = {"USD": 2, "KHR": 2}


# --- pure rules -------------------------------------------------------------------------------------
def processor_amount(amount: int, currency: str) -> int:
    """Intent minor units → the processor's minor units (exact: our scale is never finer)."""
    asset = assets.get_asset(currency)
    exp = PROCESSOR_EXPONENT.get(asset.code)
    if exp is None:
        raise InvalidRequest(f"{asset.code} cannot be paid by card.",
                             code="currency_not_supported_for_card", param="currency")
    return amount * 10 ** (exp - asset.scale)


def from_processor_amount(amount: int, currency: str) -> int:
    """The processor's minor units → ledger units, rounded UP (a dispute holds at least what
    the processor will take)."""
    asset = assets.get_asset(currency)
    factor = 10 ** (PROCESSOR_EXPONENT[asset.code] - asset.scale)
    return -(-amount // factor)


def reference(processor_id: str) -> str:
    return f"card:{processor_id}"


def error_of(err: Any) -> dict[str, Any] | None:
    """The part of a processor's ``last_payment_error`` shown on the intent (never the card)."""
    if not isinstance(err, dict):
        return None
    keep = {k: err.get(k) for k in ("type", "code", "decline_code", "message", "charge")}
    return {k: str(v)[:300] for k, v in keep.items() if isinstance(v, (str, int)) and v != ""}


def next_action_of(na: Any) -> dict[str, Any] | None:
    """Only a redirect is something our payer can act on (``use_stripe_sdk`` needs the
    processor's own client library with its secret, which we never hand out)."""
    if not isinstance(na, dict) or na.get("type") != "redirect_to_url":
        return None
    target = na.get("redirect_to_url")
    if not isinstance(target, dict) or not isinstance(target.get("url"), str):
        return None
    return {"type": "redirect_to_url",
            "redirect_to_url": {"url": target["url"][:2000],
                                "return_url": str(target.get("return_url") or "")[:2000] or None}}


def paid_by_card(doc: dict[str, Any]) -> bool:
    return any(r.get("method") == METHOD and r.get("final") and not r.get("reorged")
               for r in doc.get("receipts") or [])


# --- shared writes -------------------------------------------------------------------------------------
def card_payment_ref(db, processor_id: str):
    return db.collection(CARD_PAYMENTS).document(processor_id)


def remember_payment(uow: UnitOfWork, doc: dict[str, Any], processor_id: str) -> None:
    """Which intent this processor payment belongs to (blind, idempotent: always the same)."""
    uow.set(card_payment_ref(uow.db, processor_id), {
        "id": processor_id, "processor": PROCESSOR, "intent_id": doc["id"],
        "tenant": doc["tenant"], "livemode": doc["livemode"], "currency": doc["currency"],
        "amount": doc["amount"], "processor_amount": processor_amount(doc["amount"], doc["currency"]),
        "updated_at": uow.now})


def emit_failed(uow: UnitOfWork, doc: dict[str, Any]) -> None:
    uow.emit(EVENTS["payment_failed"].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data={"object": intents.resource(doc).model_dump(mode="json")})


def record_failure(uow: UnitOfWork, ref, doc: dict[str, Any], card: dict[str, Any], *,
                   key: str, reason: str) -> tuple[dict[str, Any], bool]:
    """A confirmation attempt failed (declined, authentication failed). Writes ``card``; the
    first time ``key`` is seen the intent goes back to ``requires_payment_method`` (from
    ``processing``) or stays there, and ``payment_intent.payment_failed`` is emitted once.
    Returns (doc, whether this was news). The intent stays payable: another card may pay it."""
    failures = list(card.get("failures") or [])
    news = key not in failures
    if news:
        card["failures"] = (failures + [key])[-MAX_FAILURES:]
    if paid_by_card(doc) or doc["status"] in states.TERMINAL:
        news = False                               # a stale failure after the payment: no event
    elif news and doc["status"] == states.PROCESSING and not doc.get("amount_pending") \
            and not doc.get("amount_received"):
        return intents.transition(uow, ref, doc, states.REQUIRES_PAYMENT_METHOD,
                                  reason=reason, card=card), True
    fields = {"card": card, "updated_at": uow.now}
    uow.update(ref, fields)
    doc = {**doc, **fields}
    if news and doc["status"] == states.REQUIRES_PAYMENT_METHOD:
        emit_failed(uow, doc)
    return doc, news and doc["status"] == states.REQUIRES_PAYMENT_METHOD


# --- the inbox handler ---------------------------------------------------------------------------------
def _object(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def intent_id_of(obj: dict[str, Any]) -> str | None:
    md = obj.get("metadata")
    value = md.get(METADATA_KEY) if isinstance(md, dict) else None
    return value if isinstance(value, str) else None


def apply(uow: UnitOfWork, event: dict[str, Any]) -> str:
    """Apply a verified ``payment_intent.*`` event to the intent its metadata names. Returns
    what happened (kept on the inbox document): ok, already_received, amount_mismatch,
    unknown_intent, other_processor_payment, livemode_mismatch, failure_recorded,
    already_failed, received_in_<status>, ignored."""
    obj = _object(event)
    intent_id, pid = intent_id_of(obj), obj.get("id")
    if not intent_id or not isinstance(pid, str) or not is_doc_id(pid):
        return "ignored"
    try:
        ref, doc = intents.load_for_update(uow, intent_id)
    except NotFound:
        return "unknown_intent"
    card = dict(doc.get("card") or {})
    if card.get("processor_id") not in (None, pid):
        return "other_processor_payment"           # one processor payment per intent
    if (obj.get("livemode") is True) != bool(doc["livemode"]):
        return "livemode_mismatch"
    etype = event.get("type")
    if etype == "payment_intent.succeeded":
        return _succeeded(uow, ref, doc, card, obj, pid)
    if etype == "payment_intent.payment_failed":
        if paid_by_card(doc):
            return "ignored_after_payment"
        err = error_of(obj.get("last_payment_error")) or {}
        card.update(processor=PROCESSOR, processor_id=pid, status=states.REQUIRES_PAYMENT_METHOD,
                    last_payment_error=err or None, next_action=None, confirming_until=None)
        _, news = record_failure(uow, ref, doc, card, key=err.get("charge") or str(event.get("id")),
                                 reason=f"card:{err.get('decline_code') or err.get('code') or 'failed'}")
        return "failure_recorded" if news else "already_failed"
    # requires_action / processing / created / canceled: the synchronous answer already moved
    # the intent; applying them here out of order could move a settled or failed attempt back.
    return "ignored"


def _succeeded(uow: UnitOfWork, ref, doc: dict[str, Any], card: dict[str, Any],
               obj: dict[str, Any], pid: str) -> str:
    ref_name = reference(pid)
    if any(r["reference"] == ref_name and r.get("final") for r in doc.get("receipts") or []):
        return "already_received"
    amount, currency = obj.get("amount"), str(obj.get("currency") or "").lower()
    if doc.get("amount") is None or isinstance(amount, bool) or not isinstance(amount, int) or \
            amount != processor_amount(doc["amount"], doc["currency"]) or \
            currency != doc["currency"].lower():
        logs.log(_log, logging.WARNING, "card payment amount mismatch", intent_id=doc["id"],
                 processor_payment_id=pid)
        card.update(status="amount_mismatch", processor_id=pid)
        uow.update(ref, {"card": card, "updated_at": uow.now})
        return "amount_mismatch"
    charge = obj.get("latest_charge")
    card.update(processor=PROCESSOR, processor_id=pid, status="succeeded", next_action=None,
                last_payment_error=None, confirming_until=None,
                charge=charge if isinstance(charge, str) else None)
    remember_payment(uow, doc, pid)
    doc = intents.record_received(uow, ref, doc, doc["amount"], method=METHOD, final=True,
                                  reference=ref_name, extra={"card": card})
    return "ok" if doc["status"] in states.PAID else f"received_in_{doc['status']}"
