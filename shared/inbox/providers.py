"""The inbound providers: who may post to ``/v1/inbound/<name>`` and how each one is checked.

A provider is its signature scheme, the setting that holds its secret(s), its tolerance, and
where its verified event keeps the event id (what de-duplicates its retries) and the type (what
picks the handler). Adding a provider is one entry here, its secret in the settings (and the
manifest), and its handlers registered with ``shared.inbox.handlers.on``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from shared.inbox import schemes
from shared.inbox.settings import InboxSettings, secret_list


@dataclasses.dataclass(frozen=True)
class InboundProvider:
    name: str
    verify: schemes.Verifier
    secret: Callable[[InboxSettings], str]
    event_id: Callable[[schemes.Verified, dict[str, Any]], Any]
    event_type: Callable[[dict[str, Any]], Any] = lambda event: event.get("type")
    tolerance_seconds: int = schemes.TOLERANCE_SECONDS

    def secrets(self, settings: InboxSettings) -> tuple[str, ...]:
        return secret_list(self.secret(settings))


def _stripe_event_id(_verified: schemes.Verified, event: dict[str, Any]) -> Any:
    """Stripe: the body is an Event object; its ``id`` is stable across Stripe's retries."""
    return event.get("id") if event.get("object") == "event" else None


def _message_id(verified: schemes.Verified, _event: dict[str, Any]) -> Any:
    """Standard Webhooks: ``webhook-id`` is the sender's idempotency key (stable across retries)."""
    return verified.message_id


PROVIDERS: dict[str, InboundProvider] = {p.name: p for p in (
    # The card processor (wallet top-ups): Stripe's own scheme.
    InboundProvider("stripe", schemes.stripe, lambda s: s.stripe_webhook_secret, _stripe_event_id),
    # KYC and payouts providers speaking Standard Webhooks (payload ``{type, timestamp, data}``).
    InboundProvider("kyc", schemes.standard_webhooks, lambda s: s.kyc_webhook_secret, _message_id),
    InboundProvider("payouts", schemes.standard_webhooks, lambda s: s.payouts_webhook_secret,
                    _message_id),
)}


def get_provider(name: str) -> InboundProvider | None:
    return PROVIDERS.get(name)
