"""The card processor's webhooks, as the inbox delivers them. One Stripe account serves wallet
top-ups and merchants' card payments, so ONE handler per event family routes each verified
event by what it is about:

- ``payment_intent.*``: metadata ``topup_id`` → the wallet's ``service.apply_card_event``;
  metadata ``payloom_intent_id`` → ``shared.payments.card_events.apply``; neither → ignored.
- ``charge.dispute.*``: ``shared.payments.disputes.apply`` (a dispute carries no metadata of
  ours; it names the processor's PaymentIntent, which the card payment recorded).

Imported by the ``inbound_tasks`` entry point so the handlers are registered before any event is
processed.
"""
from __future__ import annotations

from typing import Any

from shared.inbox.handlers import on
from shared.wallet import service

TOPUP_KEY = "topup_id"
INTENT_KEY = "payloom_intent_id"


def _metadata(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    md = obj.get("metadata") if isinstance(obj, dict) else None
    return md if isinstance(md, dict) else {}


def route_payment_intent(uow, event: dict[str, Any]) -> str:
    """Top-up or merchant payment, by the PaymentIntent's metadata (a top-up wins if both)."""
    md = _metadata(event)
    if TOPUP_KEY in md:
        return service.apply_card_event(uow, event)
    if INTENT_KEY in md:
        from shared.payments import card_events
        return card_events.apply(uow, event)
    return "ignored"


def route_dispute(uow, event: dict[str, Any]) -> str:
    from shared.payments import disputes
    return disputes.apply(uow, event)


on("stripe", "payment_intent.*")(route_payment_intent)
on("stripe", "charge.dispute.*")(route_dispute)
