"""Every resource class, and the names a ``Client`` exposes them under."""
from __future__ import annotations

from payloom.resources.billing import (Invoice, LineItem, PaymentLink, PaymentLinkButton,
                                       PaymentLinkCheckout)
from payloom.resources.chain import ChainNetwork
from payloom.resources.merchants import (ApiKey, Merchant, MerchantBranding, MerchantMember,
                                         MerchantSettings, Project)
from payloom.resources.messages import Message
from payloom.resources.payments import PaymentIntent, Refund
from payloom.resources.rates import Conversion, Rate
from payloom.resources.reports import PaymentAnalytics, Report, SettlementReport
from payloom.resources.wallet import Balance, WalletTransaction
from payloom.resources.webhooks import (Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint,
                                        WebhookRecovery)

# client.<attr> -> the class bound to that client (also reachable as client.<ClassName>)
NAMESPACES = {
    "payment_intents": PaymentIntent,
    "refunds": Refund,
    "invoices": Invoice,
    "payment_links": PaymentLink,
    "webhook_endpoints": WebhookEndpoint,
    "events": Event,
    "rates": Rate,
    "reports": Report,
    "merchants": Merchant,
    "projects": Project,
    "api_keys": ApiKey,
    "balances": Balance,
    "wallet_transactions": WalletTransaction,
    "chain_networks": ChainNetwork,
    "messages": Message,
}

__all__ = ["ApiKey", "Balance", "ChainNetwork", "Conversion", "Event", "Invoice", "LineItem", "Merchant",
           "MerchantBranding", "MerchantMember", "MerchantSettings", "Message", "PaymentAnalytics", "PaymentIntent",
           "PaymentLink", "PaymentLinkButton", "PaymentLinkCheckout", "Project", "Rate", "Refund",
           "Report", "SettlementReport", "WalletTransaction", "WebhookAttempt", "WebhookDelivery",
           "WebhookEndpoint", "WebhookRecovery", "NAMESPACES"]
