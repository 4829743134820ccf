"""Payment intent statuses, the transitions between them, and how a received amount is judged.

Pure: no I/O, property-tested (tests/payments/test_states.py).

Statuses follow Stripe's PaymentIntent where a card-like flow fits (``requires_payment_method`` →
``processing`` → ``succeeded`` or ``canceled``) and add BTCPay's invoice exceptions for pushed
payments (crypto) whose amount the payer chooses: ``underpaid`` (PaidPartial), ``overpaid``
(PaidOver: captured and settled in full, flagged for the merchant to refund the excess),
``paid_late`` (PaidLate: received after expiry inside the late window, settled) and ``expired``.

- open (money may still arrive and change the status): requires_payment_method, processing,
  underpaid, expired (only inside its late window: a late payment turns it into paid_late);
- terminal: succeeded, overpaid, paid_late, canceled. A terminal intent never changes status;
  money that still arrives is recorded and settled but leaves the status alone.
"""
from __future__ import annotations

REQUIRES_PAYMENT_METHOD = "requires_payment_method"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
CANCELED = "canceled"
EXPIRED = "expired"
UNDERPAID = "underpaid"
OVERPAID = "overpaid"
PAID_LATE = "paid_late"

STATUSES = (REQUIRES_PAYMENT_METHOD, PROCESSING, SUCCEEDED, CANCELED, EXPIRED, UNDERPAID,
            OVERPAID, PAID_LATE)
TERMINAL = frozenset({SUCCEEDED, OVERPAID, PAID_LATE, CANCELED})
# Captured: the merchant has the money (settlement posted).
PAID = frozenset({SUCCEEDED, OVERPAID, PAID_LATE})
# What a cancel may stop: nothing is on its way yet, or only part of it arrived.
CANCELABLE = frozenset({REQUIRES_PAYMENT_METHOD, UNDERPAID})
# What the expiry timer acts on (processing means paid in full and confirming: it never expires).
EXPIRABLE = frozenset({REQUIRES_PAYMENT_METHOD, UNDERPAID})

# status -> statuses it may move to. Self-loops mean "more money arrived, same status" (the
# timeline records it); a status not listed as a key (terminal) moves nowhere.
TRANSITIONS: dict[str, frozenset[str]] = {
    # paid_late directly: a late payment may arrive before the expiry timer has run
    REQUIRES_PAYMENT_METHOD: frozenset({PROCESSING, SUCCEEDED, OVERPAID, UNDERPAID, CANCELED,
                                        EXPIRED, PAID_LATE}),
    # a reorg or a failed method sends a processing intent back (Stripe: "a failed method sends
    # it back to requires_payment_method"; BTCPay: a reorged payment is no longer counted)
    PROCESSING: frozenset({PROCESSING, SUCCEEDED, OVERPAID, UNDERPAID, PAID_LATE,
                           REQUIRES_PAYMENT_METHOD, EXPIRED}),
    UNDERPAID: frozenset({UNDERPAID, PROCESSING, SUCCEEDED, OVERPAID, PAID_LATE, CANCELED,
                          EXPIRED}),
    # expired: only a late payment (inside the late window) moves it on
    EXPIRED: frozenset({PROCESSING, PAID_LATE, UNDERPAID}),
}

SPEED_POLICIES = {"high": 0, "medium": 1, "lowmedium": 2, "low": 6}
MAX_TOLERANCE_BPS = 10_000


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def allowance(amount_due: int, tolerance_bps: int) -> int:
    """How far from ``amount_due`` a payment may be and still count as exact. Rounded DOWN so
    the merchant never receives less than the tolerance it chose."""
    return amount_due * tolerance_bps // 10_000


def classify(amount_due: int | None, received: int, tolerance_bps: int, *, expired: bool,
             in_late_window: bool) -> str:
    """The status an intent should have once ``received`` (final, in the intent's minor units)
    has arrived.

    - nothing received: ``requires_payment_method`` (``expired`` after expiry);
    - after expiry: outside the late window nothing counts (``expired``: the money is recorded
      for a refund but the intent is not paid); inside it a full payment is ``paid_late``, a
      short one ``underpaid``;
    - ``amount_due`` None (a top-up, BTCPay's invoice without amount): any positive amount pays it;
    - otherwise within ``allowance`` of the amount: ``succeeded``; below: ``underpaid``; above:
      ``overpaid`` (captured in full, flagged).
    """
    if received < 0:
        raise ValueError("received must not be negative")
    if not 0 <= tolerance_bps <= MAX_TOLERANCE_BPS:
        raise ValueError("tolerance_bps must be within 0..10000")
    if amount_due is not None and amount_due <= 0:
        raise ValueError("amount_due must be positive (or None for a top-up)")
    if received == 0:
        return EXPIRED if expired else REQUIRES_PAYMENT_METHOD
    if expired and not in_late_window:
        return EXPIRED
    slack = 0 if amount_due is None else allowance(amount_due, tolerance_bps)
    short = amount_due is not None and received < amount_due - slack
    if expired:
        return UNDERPAID if short else PAID_LATE
    if amount_due is None:
        return SUCCEEDED
    if short:
        return UNDERPAID
    if received > amount_due + slack:
        return OVERPAID
    return SUCCEEDED


def required_confirmations(speed_policy: str | int) -> int:
    """Confirmations a chain payment needs before it is final (BTCPay's speed policy):
    high 0, medium 1, lowmedium 2, low 6. An int is taken as the count itself (0..100)."""
    if isinstance(speed_policy, bool):
        raise ValueError("speed policy must be a name or a count")
    if isinstance(speed_policy, int):
        if not 0 <= speed_policy <= 100:
            raise ValueError("confirmations must be within 0..100")
        return speed_policy
    key = str(speed_policy).lower().replace("-", "").replace("_", "")
    if key not in SPEED_POLICIES:
        raise ValueError(f"unknown speed policy {speed_policy!r}")
    return SPEED_POLICIES[key]
