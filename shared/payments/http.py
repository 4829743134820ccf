"""``/v1/payment_intents``: merchants create and manage intents; payers pay them.

Merchant routes take a user in a merchant context (``Payloom-Merchant`` header, resolved by
``shared.merchants.context``) with a high enough role, or one of the merchant's API keys with
the ``payments:*`` scopes. The pay route takes the PAYER: any signed-in user holding the
intent's client secret. ``tasks`` serves the expiry timer; ``consume`` the chain events
(``crypto_events``).
"""
from __future__ import annotations

from pydantic import BaseModel

from shared.merchants.roles import require
from shared.payments import card_method, crypto_events, crypto_method, expiry, intents, wallet_method
from shared.payments.models import (
    CancelIntent,
    CreateIntent,
    IntentListQuery,
    PaymentIntent,
    PaymentIntentWithSecret,
    PayWithWallet,
    UpdateIntent,
)
from shared.platform.models import DocId, RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Router

MERCHANT = ("user", "api_key")
PAYER = ("user",)

api = Router("payments", public_prefix="payment_intents", tags=["payments"])
tasks = Router("payments_tasks")


@api.post("/", body=CreateIntent, response=PaymentIntentWithSecret, status=201,
          scopes=["payments:write"], auth=MERCHANT, secret_fields=("client_secret",),
          rate_limits=[(Limit("payments.create", 600, 60), "tenant")])
def create_intent(ctx: Context):
    """Create a payment intent (developer role or higher, or a key with payments:write)."""
    require(ctx.principal, "create_payments")
    return intents.create(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@api.get("/", query=IntentListQuery, response=ListResponse[PaymentIntent],
         scopes=["payments:read"], auth=MERCHANT)
def list_intents(ctx: Context):
    """The merchant's intents in the caller's mode, newest first; filter by status, created,
    customer_email."""
    require(ctx.principal, "read")
    return intents.list_intents(ctx.deps, ctx.principal, ctx.query)


@api.get("/{intent_id}", response=PaymentIntent, scopes=["payments:read"], auth=MERCHANT)
def get_intent(ctx: Context, intent_id: str):
    """One of the merchant's intents."""
    require(ctx.principal, "read")
    return intents.retrieve(ctx.uow, ctx.principal, intent_id)


@api.post("/{intent_id}", body=UpdateIntent, response=PaymentIntent,
          scopes=["payments:write"], auth=MERCHANT)
def update_intent(ctx: Context, intent_id: str):
    """Change description or metadata while the intent awaits payment."""
    require(ctx.principal, "create_payments")
    return intents.update(ctx.uow, ctx.principal, intent_id, ctx.body)


@api.post("/{intent_id}/cancel", body=CancelIntent, response=PaymentIntent,
          scopes=["payments:write"], auth=MERCHANT)
def cancel_intent(ctx: Context, intent_id: str):
    """Cancel an intent that awaits payment or is underpaid."""
    require(ctx.principal, "create_payments")
    reason = ctx.body.cancellation_reason if ctx.body else None
    return intents.cancel(ctx.uow, ctx.principal, intent_id, reason)


@api.post("/{intent_id}/pay", body=PayWithWallet, response=PaymentIntent, auth=PAYER,
          rate_limits=[(Limit("payments.pay", 30, 60), "principal")])
def pay_with_wallet(ctx: Context, intent_id: str):
    """The payer pays the intent from their Payloom wallet (client secret required)."""
    return wallet_method.pay(ctx.uow, ctx.principal, intent_id, ctx.body)


class ExpireIntent(RequestModel):
    intent_id: DocId


class TimerOutcome(BaseModel):
    intent_id: str
    outcome: str


@tasks.post("/expire", body=ExpireIntent, response=TimerOutcome, auth=SERVICE, idempotent=False)
def expire_intent(ctx: Context):
    """Cloud Tasks target: expire the intent if it is still open and due (idempotent)."""
    return TimerOutcome(intent_id=ctx.body.intent_id,
                        outcome=expiry.expire(ctx.uow, ctx.body.intent_id))


# How an intent is paid: each method's routes live with the method and join this router.
# The wallet method's route is above; the crypto and card methods register theirs here.
crypto_method.register(api)
card_method.register(api)

# payments_events: chain transfers (seen, confirmed, reorged) applied to intents.
consume = crypto_events.consumer
