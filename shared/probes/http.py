"""HTTP surfaces of probes: the public API and the Cloud Tasks target."""
from __future__ import annotations

from google.cloud import firestore

from shared.platform.consumer import EventConsumer
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Router
from shared.probes import service
from shared.probes.models import CreateProbe, Ping, Probe, ProbeDue

api = Router("platform", public_prefix="platform",
             rate_limits=[(Limit("platform.tenant", 6000, 60), "tenant")])


@api.get("/ping", response=Ping, auth="public", inherit_limits=False,
         summary="Liveness of this function, no I/O.")
def ping(ctx: Context):
    return Ping()


@api.post("/probes", body=CreateProbe, response=Probe, status=201, scopes=["platform:write"])
def create_probe(ctx: Context):
    """Start a probe through the outbox, Pub/Sub and Cloud Tasks."""
    return service.create_probe(ctx.uow, tenant=ctx.principal.tenant_id,
                                delay_seconds=ctx.body.delay_seconds, note=ctx.body.note,
                                idempotency_key=ctx.idempotency_key)


@api.get("/probes/{probe_id}", response=Probe, scopes=["platform:read"])
def get_probe(ctx: Context, probe_id: str):
    """Retrieve a probe and the time of each hop."""
    return service.get_probe(ctx.deps.db, tenant=ctx.principal.tenant_id, probe_id=probe_id)


@api.get("/probes", query=ListQuery, response=ListResponse[Probe], scopes=["platform:read"])
def list_probes(ctx: Context):
    """List probes, newest first."""
    col = ctx.deps.db.collection(service.COLLECTION)
    tenant = ctx.principal.tenant_id
    q = col.where(filter=firestore.FieldFilter("tenant", "==", tenant))
    return paginate(q, col, ctx.query, url="/v1/platform/probes", to_resource=service.to_resource,
                    belongs=lambda d: d.get("tenant") == tenant)


tasks = Router("platform_tasks")


@tasks.post("/probe-due", body=ProbeDue, response=Probe, auth=SERVICE, idempotent=False)
def probe_due(ctx: Context):
    """Cloud Tasks target: complete the probe (idempotent)."""
    return service.complete_probe(ctx.uow, probe_id=ctx.body.probe_id)


consumer = EventConsumer("platform_events")
consumer.on("probe.created")(service.on_probe_created)
