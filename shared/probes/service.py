"""Rules for probes; every step is idempotent because each hop is delivered at least once."""
from __future__ import annotations

import datetime as dt

from shared.platform.clock import rfc3339
from shared.platform.errors import NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.outbox import Event
from shared.platform.tasks import task_name
from shared.platform.uow import UnitOfWork
from shared.probes.models import Probe

COLLECTION = "probes"
TASK_FUNCTION, TASK_QUEUE, TASK_PATH = "platform_tasks", "default", "/probe-due"


def to_resource(doc: dict) -> Probe:
    ts = lambda k: rfc3339(doc[k]) if doc.get(k) else None  # noqa: E731
    return Probe(id=doc["id"], created=rfc3339(doc["created_at"]), status=doc["status"],
                 delay_seconds=doc["delay_seconds"], note=doc.get("note"),
                 event_received=ts("event_received_at"), due=ts("due_at"),
                 completed=ts("completed_at"), livemode=False)


def create_probe(uow: UnitOfWork, *, tenant: str, delay_seconds: int, note: str | None,
                 idempotency_key: str | None) -> Probe:
    # With a key the id is derived from it: a retry after a crash re-finds the same probe.
    probe_id = derived_id("prb", tenant, idempotency_key) if idempotency_key else new_id("prb")
    ref = uow.db.collection(COLLECTION).document(probe_id)
    snap = uow.get(ref)
    if snap.exists:
        return to_resource(snap.to_dict())
    doc = {"id": probe_id, "tenant": tenant, "status": "pending", "delay_seconds": delay_seconds,
           "note": note, "created_at": uow.now}
    uow.create(ref, doc)
    resource = to_resource(doc)
    uow.emit("probe.created", tenant=tenant, data={"object": resource.model_dump(mode="json")})
    return resource


def get_probe(db, *, tenant: str, probe_id: str) -> Probe:
    snap = db.collection(COLLECTION).document(probe_id).get()
    if not snap.exists or snap.get("tenant") != tenant:  # Another tenant's probe does not exist.
        raise NotFound(f"No such probe: '{probe_id}'", param="id")
    return to_resource(snap.to_dict())


def on_probe_created(uow: UnitOfWork, event: Event) -> None:
    """Consumer step: mark the probe scheduled; the task hop leaves after commit."""
    probe_id = event.data["object"]["id"]
    ref = uow.db.collection(COLLECTION).document(probe_id)
    snap = uow.get(ref)
    if not snap.exists or snap.get("status") != "pending":
        return
    due = uow.now + dt.timedelta(seconds=snap.get("delay_seconds"))
    uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=TASK_PATH,
                      body={"probe_id": probe_id}, schedule_time=due,
                      name=task_name("probe", probe_id))
    uow.update(ref, {"status": "scheduled", "event_received_at": uow.now, "due_at": due})


def complete_probe(uow: UnitOfWork, *, probe_id: str) -> Probe:
    """Task step: complete a scheduled probe; anything else is a duplicate delivery."""
    ref = uow.db.collection(COLLECTION).document(probe_id)
    snap = uow.get(ref)
    if not snap.exists:
        raise NotFound(f"No such probe: '{probe_id}'", param="probe_id")
    doc = snap.to_dict()
    if doc["status"] != "scheduled":
        return to_resource(doc)
    doc.update(status="completed", completed_at=uow.now)
    uow.update(ref, {"status": "completed", "completed_at": uow.now})
    resource = to_resource(doc)
    uow.emit("probe.completed", tenant=doc["tenant"], data={"object": resource.model_dump(mode="json")})
    return resource
