"""Entry surfaces of notify: the Pub/Sub consumer (first attempt) and the Cloud Tasks target
(every retry). Both only call ``delivery.attempt``, which is idempotent per (message, attempt)."""
from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field

from shared.notify import delivery
from shared.notify.outbound import EVENT_QUEUED
from shared.platform import logs
from shared.platform.deps import Deps, get_deps
from shared.platform.errors import ServiceUnavailable
from shared.platform.models import DocId, RequestModel, ResourceModel, is_doc_id
from shared.platform.consumer import events_of
from shared.platform.outbox import Event
from shared.platform.router import SERVICE, Context, Router

_log = logs.get_logger(__name__)


def handle_events(deps: Deps, events: list[Event]) -> dict[str, str]:
    """Attempt 1 of every queued message in a commit's events. A Firestore failure raises, so
    Pub/Sub redelivers; an attempt already claimed is skipped."""
    outcomes = {}
    for event in events:
        if event.type != EVENT_QUEUED:
            continue
        message_id = event.data.get("message_id")
        if not isinstance(message_id, str) or not is_doc_id(message_id):
            logs.log(_log, logging.ERROR, "queued-message event without a valid id dropped",
                     event_id=event.id)
            continue
        outcomes[message_id] = delivery.attempt(deps, message_id, 1)
    return outcomes


def consume(cloud_event) -> None:
    """functions-framework ``@cloud_event`` entry: a Pub/Sub messagePublished CloudEvent."""
    handle_events(get_deps(), events_of(cloud_event, "notify_events"))


class AttemptDue(RequestModel):
    message_id: DocId
    attempt: int = Field(ge=1, le=100)


class AttemptOutcome(ResourceModel):
    object: Literal["notify_attempt"] = "notify_attempt"
    message_id: str
    attempt: int
    outcome: Literal["missing", "stale", "busy", "dead_lettered", "superseded", "sent",
                     "retrying", "already_sent", "already_dead_lettered"]


tasks = Router("notify_tasks")


@tasks.post("/attempts", body=AttemptDue, response=AttemptOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def attempt_due(ctx: Context):
    """Cloud Tasks target: the next attempt of a queued message (a no-op if it is not due)."""
    outcome = delivery.attempt(ctx.deps, ctx.body.message_id, ctx.body.attempt)
    if outcome == "busy":  # an attempt holds the lease: let the queue try again later
        raise ServiceUnavailable("Another attempt is in progress.", headers={"Retry-After": "5"})
    return AttemptOutcome(message_id=ctx.body.message_id, attempt=ctx.body.attempt,
                          outcome=outcome)
