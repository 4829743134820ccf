"""API models of deliveries, attempts, replays, and the test event's declaration.

A delivery is one event on its way to one endpoint; each HTTP request it costs is an attempt.
``run`` counts the sends of that event to that endpoint: a replay (resend, recover) starts a new
run at attempt 1 and keeps the ``webhook-id`` (the event id), so receivers de-duplicate.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from shared.platform import catalog
from shared.platform.catalog import ObjectPayload
from shared.platform.models import DocId, RequestModel, ResourceModel
from shared.platform.pagination import ListQuery
from shared.webhooks.models import WebhookEndpoint

DeliveryStatus = Literal["pending", "sending", "retrying", "succeeded", "failed",
                         "dead_lettered", "canceled"]
AttemptOutcome = Literal["succeeded", "failed", "gone", "unsafe", "lost"]

TEST_EVENT = catalog.declare(
    "webhook_endpoint.test", ObjectPayload[WebhookEndpoint],
    description="A test event sent on request to one endpoint only (POST "
                "/v1/webhook_endpoints/{id}/test); data.object is that endpoint.")


class WebhookDelivery(ResourceModel):
    """One event on its way to one endpoint."""
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint: str = Field(description="The webhook endpoint's id.")
    event: str = Field(description="The event's id; also the webhook-id header of every attempt.")
    event_type: str
    livemode: bool = False
    status: DeliveryStatus = Field(description=(
        "pending (an attempt is queued), sending (an attempt is in flight), retrying (waiting "
        "for the next attempt), succeeded, failed (410 Gone or a permanent error), "
        "dead_lettered (every attempt of the schedule failed), canceled (the endpoint was "
        "disabled or deleted before it could be sent)."))
    reason: str | None = Field(None, description="Why a delivery ended without success.")
    run: int = Field(description="1 for the first send; each resend or recover adds one.")
    attempt_count: int = Field(description="Attempts made in the current run.")
    next_attempt_at: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    succeeded_at: str | None = None
    created: str


class WebhookAttempt(ResourceModel):
    """One HTTP request of a delivery, as the receiver answered it."""
    id: str
    object: Literal["webhook_attempt"] = "webhook_attempt"
    delivery: str
    endpoint: str
    event: str
    event_type: str
    livemode: bool = False
    run: int
    attempt: int = Field(description="1-based number of this attempt within its run.")
    created: str = Field(description="When the request started.")
    outcome: AttemptOutcome
    status_code: int | None = None
    latency_ms: float | None = None
    response_body: str | None = Field(None, description="The start of the receiver's answer.")
    error: str | None = None
    next_attempt_at: str | None = Field(None, description="When the next attempt is due, if any.")


class DeliveryListQuery(ListQuery):
    status: DeliveryStatus | None = Field(None, description="Only deliveries in this status.")
    event: DocId | None = Field(None, max_length=100, description="Only the delivery of this event.")


class EventAttemptsQuery(ListQuery):
    event: DocId = Field(max_length=100, description="Every attempt of this event, across the "
                                                     "caller's endpoints.")


class ResendRequest(RequestModel):
    event: DocId = Field(max_length=100, description="The event to send again (evt_…).")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class RecoverRequest(RequestModel):
    since: dt.datetime = Field(description="RFC 3339 time or Unix seconds: resend failures "
                                           "created at or after it.")
    until: dt.datetime | None = Field(None, description="Optional end of the window (exclusive).")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _aware(value)

    @model_validator(mode="after")
    def _window(self) -> "RecoverRequest":
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class Recovery(ResourceModel):
    object: Literal["webhook_recovery"] = "webhook_recovery"
    endpoint: str
    resent: int = Field(description="Failed, dead-lettered or canceled deliveries sent again.")
    has_more: bool = Field(description="More failures remain in the window: call again.")


class AttemptTask(RequestModel):
    """Body of a ``webhooks_tasks`` task: which attempt to make. ``endpoint`` and ``event``
    ride along so the claim reads everything in one batch get."""
    delivery_id: DocId = Field(max_length=100)
    endpoint_id: DocId = Field(max_length=100)
    event_id: DocId = Field(max_length=100)
    run: int = Field(ge=1, le=1_000_000_000)
    attempt: int = Field(ge=1, le=100)
    requeues: int = Field(0, ge=0, le=1_000_000)


class AttemptResult(ResourceModel):
    object: Literal["webhook_attempt_result"] = "webhook_attempt_result"
    outcome: str


class SweepResult(ResourceModel):
    object: Literal["webhook_sweep"] = "webhook_sweep"
    lost: int = Field(description="Attempts whose lease ran out, recorded as lost and retried.")
    requeued: int = Field(description="Waiting deliveries whose task was re-enqueued.")
