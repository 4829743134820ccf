"""Payloom's Python SDK.

Module-level configuration, as stripe-python::

    import payloom
    payloom.api_key = "sk_test_…"
    intent = payloom.PaymentIntent.create(amount=1500, currency="USD")

or explicit clients (several keys or merchants in one process)::

    client = payloom.Client(api_key="sk_test_…")
    client.PaymentIntent.retrieve("pi_…")
"""
from __future__ import annotations

import threading
from typing import Optional

from payloom._version import VERSION
from payloom.client import DEFAULT_API_BASE, Client, RequestOptions, Response, livemode_of_key
from payloom.errors import (APIConnectionError, APIError, AuthenticationError, IdempotencyError,
                            InvalidRequestError, PayloomError, PermissionDeniedError,
                            PermissionError, RateLimitError, SignatureVerificationError)
from payloom.objects import ListObject, PayloomObject
from payloom.resources import (
    ApiKey, Balance, ChainNetwork, Conversion, Event, Invoice, LineItem, Merchant, MerchantBranding,
    MerchantMember, MerchantSettings, PaymentAnalytics, PaymentIntent, PaymentLink, PaymentLinkButton,
    PaymentLinkCheckout, Project, Rate, Refund, Report, SettlementReport, WalletTransaction,
    WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery,
)
from payloom.webhook import Webhook, WebhookSignature

__version__ = VERSION

# Global configuration read by the module-level resources (payloom.PaymentIntent...).
api_key: Optional[str] = None
api_base: str = DEFAULT_API_BASE
merchant: Optional[str] = None
mode: Optional[str] = None
max_network_retries: int = 2
timeout: float = 30.0

_lock = threading.Lock()
_cached: "tuple[tuple, Client] | None" = None


def default_client() -> Client:
    """The client of the module-level settings (rebuilt when one of them changes)."""
    global _cached
    config = (api_key, api_base, merchant, mode, max_network_retries, timeout)
    with _lock:
        if _cached is None or _cached[0] != config:
            _cached = (config, Client(api_key, api_base=api_base, merchant=merchant, mode=mode,
                                      max_network_retries=max_network_retries, timeout=timeout))
        return _cached[1]


def livemode() -> bool:
    """Whether the module-level key is a live key."""
    return default_client().livemode


__all__ = [
    "VERSION", "Client", "RequestOptions", "Response", "default_client", "livemode",
    "livemode_of_key", "ListObject", "PayloomObject", "Webhook", "WebhookSignature",
    "PayloomError", "InvalidRequestError", "AuthenticationError", "PermissionError",
    "PermissionDeniedError", "IdempotencyError", "RateLimitError", "APIError",
    "APIConnectionError", "SignatureVerificationError",
    "ApiKey", "Balance", "ChainNetwork", "Conversion", "Event", "Invoice", "LineItem",
    "Merchant", "MerchantBranding", "MerchantMember", "MerchantSettings", "PaymentAnalytics", "PaymentIntent", "PaymentLink",
    "PaymentLinkButton", "PaymentLinkCheckout", "Project", "Rate", "Refund", "Report",
    "SettlementReport", "WalletTransaction", "WebhookAttempt", "WebhookDelivery",
    "WebhookEndpoint", "WebhookRecovery",
]
