"""The top-up state machine: which provider outcome may move a top-up where. Pure.

    pending ──► requires_action ──► succeeded
       │              │
       ├──────────────┴──► failed | canceled
       └──► succeeded

``succeeded`` is final (the wallet was credited exactly once); ``failed`` and ``canceled`` are
final too, except that a late ``payment_intent.succeeded`` after a failure still credits: the
money really arrived (Stripe can succeed a PaymentIntent after an earlier attempt failed).
Whatever arrives late or twice is ignored, never moves a top-up back.
"""
from __future__ import annotations

PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED = (
    "pending", "requires_action", "succeeded", "failed", "canceled")
STATES = (PENDING, REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED)
FINAL = frozenset({SUCCEEDED, CANCELED})

ALLOWED: dict[str, frozenset[str]] = {
    PENDING: frozenset({REQUIRES_ACTION, SUCCEEDED, FAILED, CANCELED}),
    REQUIRES_ACTION: frozenset({SUCCEEDED, FAILED, CANCELED}),
    FAILED: frozenset({SUCCEEDED}),
    SUCCEEDED: frozenset(),
    CANCELED: frozenset(),
}

# Stripe webhook event types → the state they ask for.
WEBHOOK_TARGET = {"payment_intent.succeeded": SUCCEEDED,
                  "payment_intent.payment_failed": FAILED,
                  "payment_intent.canceled": CANCELED}


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED.get(current, frozenset())


def next_state(current: str, target: str) -> str:
    """``target`` if allowed from ``current``, else ``current`` (late or duplicate news)."""
    return target if can_move(current, target) else current


def from_intent(status: str, has_error: bool) -> str:
    """A PaymentIntent's status right after creation → the top-up's state."""
    if status == "requires_action":
        return REQUIRES_ACTION
    if status == "canceled":
        return CANCELED
    if status == "succeeded":
        return PENDING        # credited only by the signed webhook, never by this answer
    if status == "requires_payment_method" and has_error:
        return FAILED
    return PENDING
