"""Dispatch-side routes: client messages, the phone's job fetch and reports, step deadlines (ADR 0044).

- ``messages`` (``/v1/messages``): clients, with an API key carrying ``sms:write``/``sms:read``
  (or a signed-in user for their own messages). The tenant is the key's owner; a user sending
  ``Payloom-Merchant`` acts for that merchant (ADR 0030): reading needs a membership, sending,
  cancelling, opt-outs and the callback secret need ``developer`` (``send_messages``).
- ``relay`` (``/v1/relay/jobs``): the provider's phone, signed in as the provider (``job_routes``).
- ``tasks`` (queue ``relay``): dispatch, step deadlines, push retries, callbacks.
- the sweeper's pass is a hook of the one sweeper route (``sweeper_hooks``).
"""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from shared.merchants.roles import require_if_member
from shared.platform.models import DocId, RequestModel
from shared.platform.pagination import ListQuery, ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context
from shared.relay import deadlines, dispatch, job_routes, messages as service, optout, sweeper_hooks  # noqa: F401
from shared.relay.dispatch_settings import DispatchSettings
from shared.relay.message_models import (CallbackSecret, CreateMessage, DeletedOptOut, Message,
                                         MessageListQuery, OptOut, OptOutRequest)
from shared.relay.routers import messages, tasks

CLIENT = ("user", "api_key")
_defaults = DispatchSettings()
CREATE_LIMIT = Limit("relay.messages.create", _defaults.per_minute, 60)


# --- the client's messages ------------------------------------------------------------------
def _sender(ctx: Context):
    """The client, allowed to send (a member acting for a merchant needs ``send_messages``)."""
    return require_if_member(ctx.principal, "send_messages")


def _reader(ctx: Context):
    return require_if_member(ctx.principal, "read")


@messages.post("/", body=CreateMessage, response=Message, status=202, auth=CLIENT,
               scopes=["sms:write"], rate_limits=[(CREATE_LIMIT, "tenant")])
def create_message(ctx: Context):
    """Queue an SMS for the relay network (202): checked, counted, then dispatched."""
    return service.create(ctx.uow, _sender(ctx), ctx.body, ctx.idempotency_key)


@messages.get("/", query=MessageListQuery, response=ListResponse[Message], auth=CLIENT,
              scopes=["sms:read"])
def list_messages(ctx: Context):
    """Your messages, newest first; filter by status, to or client_reference, and created."""
    return service.list_messages(ctx.deps, _reader(ctx), ctx.query)


@messages.get("/{message_id}", response=Message, auth=CLIENT, scopes=["sms:read"])
def get_message(ctx: Context, message_id: str):
    """One message with its status history."""
    return service.retrieve(ctx.uow, _reader(ctx), message_id)


@messages.post("/{message_id}/cancel", response=Message, auth=CLIENT, scopes=["sms:write"])
def cancel_message(ctx: Context, message_id: str):
    """Cancel a message no phone has yet (queued, or assigned and not fetched)."""
    return service.cancel(ctx.uow, _sender(ctx), message_id)


@messages.post("/opt_outs", body=OptOutRequest, response=OptOut, auth=CLIENT, scopes=["sms:write"])
def create_opt_out(ctx: Context):
    """Record that a number wants no more of your messages (STOP)."""
    return optout.opt_out(ctx.uow, _sender(ctx), ctx.body.to, ctx.body.source)


@messages.get("/opt_outs", query=ListQuery, response=ListResponse[OptOut], auth=CLIENT,
              scopes=["sms:read"])
def list_opt_outs(ctx: Context):
    """Numbers that opted out of your messages, newest first."""
    return optout.list_opt_outs(ctx.deps, _reader(ctx), ctx.query)


@messages.delete("/opt_outs/{opt_out_id}", response=DeletedOptOut, auth=CLIENT,
                 scopes=["sms:write"])
def delete_opt_out(ctx: Context, opt_out_id: str):
    """Remove an opt-out (the number asked to receive your messages again)."""
    return optout.opt_in(ctx.uow, _sender(ctx), opt_out_id)


@messages.post("/callback_secret", response=CallbackSecret, auth=CLIENT, scopes=["sms:write"],
               secret_fields=("secret",))
def rotate_callback_secret(ctx: Context):
    """Create or rotate the secret that signs your callback URLs (shown once)."""
    from shared.relay import callbacks
    return callbacks.rotate(ctx.uow, _sender(ctx))


# --- Cloud Tasks (queue relay) ----------------------------------------------------------------
class DispatchTask(RequestModel):
    message_id: DocId
    attempt: int | None = Field(None, ge=0, le=1000)
    wake: bool = False      # a freed SIM woke this waiting message


class DeadlineTask(RequestModel):
    message_id: DocId
    step: str = Field(..., pattern=r"^(ack|send|report|expiry)$")
    job_id: DocId | None = None


class PushTask(RequestModel):
    job_id: DocId
    attempt: int = Field(..., ge=2, le=20)


class CallbackTask(RequestModel):
    message_id: DocId
    event_id: DocId
    attempt: int = Field(..., ge=1, le=20)


class TaskOutcome(BaseModel):
    outcome: str


@tasks.post("/dispatch", body=DispatchTask, response=TaskOutcome, auth=SERVICE, idempotent=False)
def run_dispatch(ctx: Context):
    """Assign a queued message to a SIM and push the job (idempotent)."""
    return TaskOutcome(outcome=dispatch.assign(ctx.deps, ctx.body.message_id, woken=ctx.body.wake))


@tasks.post("/deadline", body=DeadlineTask, response=TaskOutcome, auth=SERVICE, idempotent=False)
def run_deadline(ctx: Context):
    """A step deadline or the expiry fell due: act if the message still waits for it."""
    if ctx.body.step != "expiry" and not ctx.body.job_id:
        return TaskOutcome(outcome="invalid")
    return TaskOutcome(outcome=deadlines.on_deadline(ctx.deps, ctx.body.message_id, ctx.body.step,
                                                     job_id=ctx.body.job_id))


@tasks.post("/push", body=PushTask, response=TaskOutcome, auth=SERVICE, idempotent=False)
def run_push(ctx: Context):
    """Retry a job's FCM push (FCM was unavailable)."""
    return TaskOutcome(outcome=dispatch.retry_push(ctx.deps, ctx.body.job_id, ctx.body.attempt))


@tasks.post("/callback", body=CallbackTask, response=TaskOutcome, auth=SERVICE, idempotent=False)
def run_callback(ctx: Context):
    """One attempt of a message's status callback."""
    from shared.relay import callbacks
    return TaskOutcome(outcome=callbacks.attempt(ctx.deps, ctx.body.message_id, ctx.body.event_id,
                                                 ctx.body.attempt))


# --- the sweeper's pass ------------------------------------------------------------------------
@sweeper_hooks.register
def overdue_messages(deps, now: dt.datetime) -> int:
    """Messages whose timer was lost (scheduled sends due, stuck jobs): advanced now."""
    return sum(deadlines.sweep(deps, now).values())
