"""The expiry timer of an intent: a named Cloud Task at ``expires_at`` (queue ``payments``).

Delivery is at least once and the emulator ignores task names, so the handler reloads the
intent and acts only while it is still expirable (requires_payment_method or underpaid):
the first delivery moves it to ``expired`` and emits ``payment_intent.expired``; every other
delivery reads it, finds it expired (or paid, canceled) and writes nothing. Two deliveries at
once: both read the same version, one commit wins, the other re-runs and finds it expired.
A task that arrives early (a clock skew, a manual retry) does nothing either: it checks
``expires_at`` against the unit's clock.
"""
from __future__ import annotations

from shared.payments import intents, states
from shared.platform.uow import UnitOfWork


def expire(uow: UnitOfWork, intent_id: str) -> str:
    """Returns what happened: expired, not_due, not_found or already_<status>."""
    try:
        ref, doc = intents.load_for_update(uow, intent_id)
    except intents.NotFound:
        return "not_found"
    if doc["status"] not in states.EXPIRABLE and not _abandoned_challenge(doc):
        return f"already_{doc['status']}"
    if uow.now < doc["expires_at"]:
        return "not_due"
    intents.transition(uow, ref, doc, states.EXPIRED, reason="expired")
    return "expired"


def _abandoned_challenge(doc) -> bool:
    """A card payment left at its 3-D Secure challenge keeps the intent ``processing`` with no
    money on the way: it expires like an unpaid intent (a late completion becomes paid_late)."""
    return (doc["status"] == states.PROCESSING
            and (doc.get("card") or {}).get("status") == "requires_action"
            and not doc.get("amount_pending") and not doc.get("amount_received"))
