"""``/v1/events``: a tenant's domain events, as Stripe's Events API; and the scheduled sweeper."""
from __future__ import annotations

from typing import Any, Literal

from google.cloud import firestore
from pydantic import Field

from shared.platform.errors import NotFound
from shared.platform.models import ResourceModel
from shared.platform.outbox import COLLECTION, sweep
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.router import SERVICE, Context, Router

api = Router("events", public_prefix="events")


class EventResource(ResourceModel):
    id: str
    object: Literal["event"] = "event"
    type: str
    created: str
    livemode: bool = False
    data: dict[str, Any]


class EventListQuery(ListQuery):
    type: str | None = Field(None, max_length=100, description="Only events of this type.")


def _resource(doc: dict) -> EventResource:
    return EventResource(id=doc["id"], type=doc["type"], created=doc["created"],
                         livemode=doc.get("livemode", False), data=doc["data"])


@api.get("/", query=EventListQuery, response=ListResponse[EventResource], scopes=["events:read"])
def list_events(ctx: Context):
    """List the caller's events of the caller's mode, newest first."""
    col = ctx.deps.db.collection(COLLECTION)
    tenant, livemode = ctx.principal.tenant_id, ctx.principal.livemode
    q = (col.where(filter=firestore.FieldFilter("tenant", "==", tenant))
            .where(filter=firestore.FieldFilter("livemode", "==", livemode)))
    if ctx.query.type:
        q = q.where(filter=firestore.FieldFilter("type", "==", ctx.query.type))
    return paginate(q, col, ctx.query, url="/v1/events", to_resource=_resource,
                    belongs=lambda d: _visible(d, tenant, livemode))


def _visible(doc: dict, tenant: str, livemode: bool) -> bool:
    """Test and live are apart: an event of the other mode does not exist for this caller."""
    return doc.get("tenant") == tenant and bool(doc.get("livemode", False)) == livemode


@api.get("/{event_id}", response=EventResource, scopes=["events:read"])
def get_event(ctx: Context, event_id: str):
    """Retrieve one event."""
    snap = ctx.deps.db.collection(COLLECTION).document(event_id).get()
    if not snap.exists or not _visible(snap.to_dict(), ctx.principal.tenant_id,
                                       ctx.principal.livemode):
        raise NotFound(f"No such event: '{event_id}'", param="id")
    return _resource(snap.to_dict())


class SweepResult(ResourceModel):
    object: Literal["sweep"] = "sweep"
    republished: int = Field(description="Outbox records delivered by this run.")


sweeper = Router("outbox_sweeper")


@sweeper.post("/", response=SweepResult, auth=SERVICE, idempotent=False)
def run_sweeper(ctx: Context):
    """Cloud Scheduler target: deliver outbox records whose delivery failed after commit."""
    sent = sweep(ctx.deps.db, ctx.deps.publisher, ctx.deps.tasks, now=ctx.now,
                 min_age_seconds=ctx.deps.settings.outbox_sweep_min_age_seconds)
    return SweepResult(republished=sent)
