"""The card processor's webhooks, as the inbox delivers them: every verified Stripe
``payment_intent.*`` event goes to ``service.apply_card_event`` (top-ups). Imported by the
``inbound_tasks`` entry point so the handler is registered before any event is processed."""
from __future__ import annotations

from shared.inbox.handlers import on
from shared.wallet import service

on("stripe", "payment_intent.*")(service.apply_card_event)
