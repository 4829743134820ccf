"""``/v1/refunds``: merchants refund captured payment intents; ``tasks`` serves the refund
timers (card submission, crypto send and confirmation polling; queue ``payments``).

Merchant routes take a user in a merchant context (``Payloom-Merchant``) with the
``refund_payments`` role (support or higher: support answers customers, ADR 0030's matrix) or
one of the merchant's API keys with ``payments:write`` (create) / ``payments:read`` (read).
"""
from __future__ import annotations

from pydantic import BaseModel

from shared.merchants.roles import require
from shared.platform.models import DocId, RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Router
from shared.refunds import service
from shared.refunds.models import CreateRefund, Refund, RefundListQuery

MERCHANT = ("user", "api_key")

api = Router("refunds", public_prefix="refunds", tags=["refunds"])
tasks = Router("refunds_tasks")


@api.post("/", body=CreateRefund, response=Refund, status=201, scopes=["payments:write"],
          auth=MERCHANT, rate_limits=[(Limit("refunds.create", 300, 60), "tenant")])
def create_refund(ctx: Context):
    """Refund all or part of a captured payment intent (idempotent with Idempotency-Key)."""
    require(ctx.principal, "refund_payments")
    return service.create(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@api.get("/", query=RefundListQuery, response=ListResponse[Refund], scopes=["payments:read"],
         auth=MERCHANT)
def list_refunds(ctx: Context):
    """The merchant's refunds in the caller's mode, newest first; filter by payment_intent."""
    require(ctx.principal, "read")
    return service.list_refunds(ctx.deps, ctx.principal, ctx.query)


@api.get("/{refund_id}", response=Refund, scopes=["payments:read"], auth=MERCHANT)
def get_refund(ctx: Context, refund_id: str):
    require(ctx.principal, "read")
    return service.retrieve(ctx.uow, ctx.principal, refund_id)


class RefundTask(RequestModel):
    refund_id: DocId


class TaskOutcome(BaseModel):
    refund_id: str
    outcome: str


@tasks.post(service.CRYPTO_SEND_PATH, body=RefundTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def crypto_send(ctx: Context):
    """Sign (once) and broadcast a crypto refund from the hot wallet."""
    from shared.refunds import crypto
    return TaskOutcome(refund_id=ctx.body.refund_id, outcome=crypto.send(ctx.deps, ctx.body.refund_id))


@tasks.post(service.CRYPTO_POLL_PATH, body=RefundTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def crypto_poll(ctx: Context):
    """Follow a crypto refund's transaction to its confirmations (rebroadcasts the same bytes)."""
    from shared.refunds import crypto
    return TaskOutcome(refund_id=ctx.body.refund_id, outcome=crypto.poll(ctx.deps, ctx.body.refund_id))


@tasks.post(service.CARD_SUBMIT_PATH, body=RefundTask, response=TaskOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def card_submit(ctx: Context):
    """Ask the card processor for the refund (its idempotency key is the refund id)."""
    from shared.refunds import card
    return TaskOutcome(refund_id=ctx.body.refund_id, outcome=card.submit(ctx.deps, ctx.body.refund_id))
