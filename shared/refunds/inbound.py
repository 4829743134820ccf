"""The card processor's refund webhooks, as the inbox delivers them: every verified Stripe
``refund.*`` event goes to ``card.on_processor_event``. Imported by the ``inbound_tasks`` entry
point so the handler is registered before any event is processed."""
from __future__ import annotations

from shared.inbox.handlers import on
from shared.refunds import card

on("stripe", "refund.*")(card.on_processor_event)
