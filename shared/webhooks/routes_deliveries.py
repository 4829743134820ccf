"""Routes of deliveries, attempts and replays (/v1/webhook_endpoints/...), the attempt task
and the sweeper. Another owner's endpoint, delivery or event is a 404, never a 403."""
from __future__ import annotations

from google.cloud import firestore

from shared.merchants.roles import require_if_member
from shared.platform.errors import NotFound
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context
from shared.webhooks import deliveries, delivery, endpoints, replay, sweeper_job
from shared.webhooks.api import api, sweeper, tasks
from shared.webhooks.deliveries import ATTEMPTS, COLLECTION
from shared.webhooks.delivery_models import (
    AttemptResult,
    AttemptTask,
    DeliveryListQuery,
    EventAttemptsQuery,
    RecoverRequest,
    Recovery,
    ResendRequest,
    SweepResult,
    WebhookAttempt,
    WebhookDelivery,
)

READERS = ("user", "api_key")
BASE = "/v1/webhook_endpoints"
# Counted per instance (no round trip): they bound what one caller can make us send.
REPLAY_LIMIT = Limit("webhooks.replay.principal", 120, 60)    # resend and test events
RECOVER_LIMIT = Limit("webhooks.recover.principal", 10, 60)   # each may resend 1,000 deliveries


def _endpoint(ctx: Context, endpoint_id: str) -> dict:
    return endpoints.owned(endpoints.ref(ctx.deps.db, endpoint_id).get(), ctx.principal, endpoint_id)


@api.get("/{endpoint_id}/deliveries", query=DeliveryListQuery,
         response=ListResponse[WebhookDelivery], auth=READERS, scopes=["webhooks:read"])
def list_deliveries(ctx: Context, endpoint_id: str):
    """The endpoint's deliveries, newest first; filter by status or event."""
    require_if_member(ctx.principal, "read")
    _endpoint(ctx, endpoint_id)
    q = ctx.query
    url = f"{BASE}/{endpoint_id}/deliveries"
    if q.event:  # the delivery id is derived from (event, endpoint): a get, not a query
        snap = deliveries.ref(ctx.deps.db, deliveries.delivery_id(q.event, endpoint_id)).get()
        docs = [snap.to_dict()] if snap.exists else []
        docs = [d for d in docs if q.status is None or d["status"] == q.status]
        return ListResponse[WebhookDelivery](data=[deliveries.to_resource(d) for d in docs],
                                             has_more=False, url=url)
    col = ctx.deps.db.collection(COLLECTION)
    query = col.where(filter=firestore.FieldFilter("endpoint_id", "==", endpoint_id))
    if q.status:
        query = query.where(filter=firestore.FieldFilter("status", "==", q.status))
    return paginate(query, col, q, url=url, to_resource=deliveries.to_resource,
                    belongs=lambda d: d.get("endpoint_id") == endpoint_id)


@api.get("/{endpoint_id}/deliveries/{delivery_id}", response=WebhookDelivery, auth=READERS,
         scopes=["webhooks:read"])
def get_delivery(ctx: Context, endpoint_id: str, delivery_id: str):
    """One delivery of the endpoint."""
    require_if_member(ctx.principal, "read")
    db = ctx.deps.db
    e_ref, d_ref = endpoints.ref(db, endpoint_id), deliveries.ref(db, delivery_id)
    snaps = {s.reference.path: s for s in db.get_all([e_ref, d_ref])}
    endpoints.owned(snaps[e_ref.path], ctx.principal, endpoint_id)
    d_snap = snaps[d_ref.path]
    if not d_snap.exists or d_snap.get("endpoint_id") != endpoint_id:
        raise NotFound(f"No such delivery: '{delivery_id}'", param="delivery_id")
    return deliveries.to_resource(d_snap.to_dict())


@api.get("/{endpoint_id}/attempts", query=ListQuery, response=ListResponse[WebhookAttempt],
         auth=READERS, scopes=["webhooks:read"])
def list_endpoint_attempts(ctx: Context, endpoint_id: str):
    """Every attempt made to the endpoint, newest first."""
    require_if_member(ctx.principal, "read")
    _endpoint(ctx, endpoint_id)
    col = ctx.deps.db.collection(ATTEMPTS)
    query = col.where(filter=firestore.FieldFilter("endpoint_id", "==", endpoint_id))
    return paginate(query, col, ctx.query, url=f"{BASE}/{endpoint_id}/attempts",
                    to_resource=deliveries.attempt_resource,
                    belongs=lambda d: d.get("endpoint_id") == endpoint_id)


@api.get("/attempts", query=EventAttemptsQuery, response=ListResponse[WebhookAttempt],
         auth=READERS, scopes=["webhooks:read"])
def list_event_attempts(ctx: Context):
    """Every attempt to deliver one event, across the caller's endpoints, newest first."""
    require_if_member(ctx.principal, "read")
    tenant, event_id = ctx.principal.tenant_id, ctx.query.event
    snap = ctx.deps.db.collection(EVENTS).document(event_id).get()
    if not snap.exists or snap.get("tenant") != tenant or \
            bool(snap.get("livemode")) != bool(ctx.principal.livemode):  # modes never mix
        raise NotFound(f"No such event: '{event_id}'", param="event")
    col = ctx.deps.db.collection(ATTEMPTS)
    query = col.where(filter=firestore.FieldFilter("event_id", "==", event_id))
    return paginate(query, col, ctx.query, url=f"{BASE}/attempts",
                    to_resource=deliveries.attempt_resource,
                    belongs=lambda d: d.get("event_id") == event_id and d.get("owner") == tenant)


@api.post("/{endpoint_id}/resend", body=ResendRequest, response=WebhookDelivery, status=202,
          auth=READERS, scopes=["webhooks:write"], rate_limits=[(REPLAY_LIMIT, "principal")])
def resend(ctx: Context, endpoint_id: str):
    """Send one event to the endpoint again, with the same webhook-id (a new run)."""
    require_if_member(ctx.principal, "manage_webhooks")
    return replay.resend(ctx.uow, ctx.principal, endpoint_id, ctx.body.event)


@api.post("/{endpoint_id}/recover", body=RecoverRequest, response=Recovery, status=202,
          auth=READERS, scopes=["webhooks:write"], atomic=False,
          rate_limits=[(RECOVER_LIMIT, "principal")])
def recover(ctx: Context, endpoint_id: str):
    """Send again every failed, dead-lettered or canceled delivery created in a time window."""
    require_if_member(ctx.principal, "manage_webhooks")
    return replay.recover(ctx.deps, ctx.principal, endpoint_id, ctx.body.since, ctx.body.until)


@api.post("/{endpoint_id}/test", response=WebhookDelivery, status=202, auth=READERS,
          scopes=["webhooks:write"], rate_limits=[(REPLAY_LIMIT, "principal")])
def send_test(ctx: Context, endpoint_id: str):
    """Send a ``webhook_endpoint.test`` event to this endpoint only."""
    require_if_member(ctx.principal, "manage_webhooks")
    return replay.send_test(ctx.uow, ctx.principal, endpoint_id)


@tasks.post("/attempts", body=AttemptTask, response=AttemptResult, auth=SERVICE, atomic=False,
            idempotent=False)
def run_attempt(ctx: Context):
    """Cloud Tasks target: one delivery attempt. Answers 200 for every handled outcome (a
    deferral included); only a failure of ours (5xx) makes Cloud Tasks retry the task."""
    b = ctx.body
    outcome = delivery.attempt(ctx.deps, b.delivery_id, b.run, b.attempt, endpoint_id=b.endpoint_id,
                               event_id=b.event_id, requeues=b.requeues)
    return AttemptResult(outcome=outcome)


@sweeper.post("/", response=SweepResult, auth=SERVICE, idempotent=False, atomic=False)
def run_sweeper(ctx: Context):
    """Cloud Scheduler target: recover lost attempts and re-enqueue late ones."""
    lost, requeued = sweeper_job.sweep(ctx.deps)
    return SweepResult(lost=lost, requeued=requeued)
