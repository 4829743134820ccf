"""Entry surfaces of the inbox: ``POST /v1/inbound/{provider}`` (the providers' webhooks), the
Cloud Tasks target that processes what was received, and the scheduled sweep (``sweeper``, for
an ``inbound_sweeper`` function). Handlers are registered by the capabilities that own the
events (``shared.wallet.inbound`` for the card processor), imported by ``inbound_tasks``."""
from __future__ import annotations

from shared.inbox import service
from shared.inbox.models import (
    InboundReceipt,
    ProcessDue,
    ProcessOutcome,
    ProviderEvent,
    SweepOutcome,
)
from shared.platform.router import PUBLIC, SERVICE, Context, Router

api = Router("inbound", public_prefix="inbound", tags=["inbound"])
tasks = Router("inbound_tasks")
sweeper = Router("inbound_sweeper")


@api.post("/{provider}", body=ProviderEvent, response=InboundReceipt, auth=PUBLIC,
          idempotent=False)
def receive(ctx: Context, provider: str):
    """A provider's signed webhook: verified against the raw body, stored once per event id,
    acknowledged at once and processed from the inbox (a bad signature is a 400)."""
    return service.receive(ctx.uow, provider, ctx.raw_body,
                           ctx.request.headers)


@tasks.post("/process", body=ProcessDue, response=ProcessOutcome, auth=SERVICE, atomic=False,
            idempotent=False)
def process(ctx: Context):
    """Cloud Tasks target: attempt ``attempt`` of an inbox event (a no-op unless it is due)."""
    outcome = service.process(ctx.deps, ctx.body.key, ctx.body.attempt)
    return ProcessOutcome(key=ctx.body.key, attempt=ctx.body.attempt, outcome=outcome)


@sweeper.post("/", response=SweepOutcome, auth=SERVICE, atomic=False, idempotent=False)
def sweep(ctx: Context):
    """Cloud Scheduler target: schedule again the events whose task was lost."""
    return SweepOutcome(rescheduled=service.sweep(ctx.deps))
