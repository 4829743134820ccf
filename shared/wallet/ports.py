"""Ports of the wallet: the top-up payment provider.

``TopUpProvider`` is what the service needs; the production adapter speaking Stripe's protocol
is ``shared.adapters.stripe_cards.StripeTopUpProvider`` (tests point it at the local simulator).
"""
from __future__ import annotations

from typing import Any, Protocol

from shared.adapters.stripe_cards import (PaymentIntent, ProviderDeclined,  # noqa: F401  (port types)
                                          StripeTopUpProvider, compute_signature,
                                          verify_stripe_signature)


class TopUpProvider(Protocol):
    name: str

    def create_payment_intent(self, *, amount: int, currency: str, payment_method: str | None,
                              metadata: dict[str, str], idempotency_key: str,
                              confirm: bool = True) -> PaymentIntent: ...

    def confirm_payment_intent(self, intent_id: str, *, payment_method: str | None = None,
                               idempotency_key: str | None = None) -> PaymentIntent: ...

    def retrieve_payment_intent(self, intent_id: str) -> PaymentIntent: ...

    def verify_webhook(self, payload: bytes, signature_header: str | None, now_unix: int) -> dict[str, Any]: ...
