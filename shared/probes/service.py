"""Rules for probes; every step is idempotent because each hop is delivered at least once."""
from __future__ import annotations

import datetime as dt

from google.cloud import firestore

from shared.platform.clock import rfc3339
from shared.platform.deps import Deps
from shared.platform.errors import NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.outbox import Event, publish_events, record_event
from shared.platform.tasks import task_name

COLLECTION = "probes"
TASK_FUNCTION, TASK_QUEUE, TASK_PATH = "platform_tasks", "default", "/probe-due"


def to_resource(doc: dict) -> dict:
    ts = lambda k: rfc3339(doc[k]) if doc.get(k) else None  # noqa: E731
    return {"id": doc["id"], "object": "probe", "created": rfc3339(doc["created_at"]),
            "status": doc["status"], "delay_seconds": doc["delay_seconds"], "note": doc.get("note"),
            "event_received": ts("event_received_at"), "due": ts("due_at"),
            "completed": ts("completed_at"), "livemode": False}


def create_probe(deps: Deps, *, tenant: str, delay_seconds: int, note: str | None,
                 idempotency_key: str | None) -> dict:
    db, now = deps.db, deps.clock.now()
    # With a key the id is derived from it: a retry after a crash re-finds the same probe.
    probe_id = derived_id("prb", tenant, idempotency_key) if idempotency_key else new_id("prb")
    ref = db.collection(COLLECTION).document(probe_id)

    @firestore.transactional
    def write(txn) -> tuple[dict, list[Event]]:
        snap = ref.get(transaction=txn)
        if snap.exists:
            return snap.to_dict(), []
        doc = {"id": probe_id, "tenant": tenant, "status": "pending", "delay_seconds": delay_seconds,
               "note": note, "created_at": now}
        txn.create(ref, doc)
        event = record_event(db, txn, type="probe.created", tenant=tenant, now=now,
                             data={"object": to_resource(doc)})
        return doc, [event]

    doc, events = write(db.transaction())
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic)
    return to_resource(doc)


def get_probe(deps: Deps, *, tenant: str, probe_id: str) -> dict:
    snap = deps.db.collection(COLLECTION).document(probe_id).get()
    if not snap.exists or snap.get("tenant") != tenant:  # Another tenant's probe does not exist.
        raise NotFound(f"No such probe: '{probe_id}'", param="id")
    return to_resource(snap.to_dict())


def on_probe_created(deps: Deps, event: Event, txn) -> None:
    """Consumer step: schedule the task hop, then mark the probe scheduled."""
    db, now = deps.db, deps.clock.now()
    probe_id = event.data["object"]["id"]
    ref = db.collection(COLLECTION).document(probe_id)
    snap = ref.get(transaction=txn)
    if not snap.exists or snap.get("status") != "pending":
        return None
    due = now + dt.timedelta(seconds=snap.get("delay_seconds"))
    # Enqueued before the marker commits: a crash here means a redelivery enqueues again, and
    # the task handler ignores a probe that is no longer "scheduled".
    deps.tasks.enqueue(queue=TASK_QUEUE, function=TASK_FUNCTION, path=TASK_PATH,
                       body={"probe_id": probe_id}, schedule_time=due,
                       name=task_name("probe", probe_id))
    txn.update(ref, {"status": "scheduled", "event_received_at": now, "due_at": due})
    return None


def complete_probe(deps: Deps, *, probe_id: str) -> dict:
    """Task step: complete a scheduled probe; anything else is a duplicate delivery."""
    db, now = deps.db, deps.clock.now()
    ref = db.collection(COLLECTION).document(probe_id)

    @firestore.transactional
    def write(txn) -> tuple[dict, list[Event]]:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            raise NotFound(f"No such probe: '{probe_id}'", param="probe_id")
        doc = snap.to_dict()
        if doc["status"] != "scheduled":
            return doc, []
        doc.update(status="completed", completed_at=now)
        txn.update(ref, {"status": "completed", "completed_at": now})
        event = record_event(db, txn, type="probe.completed", tenant=doc["tenant"], now=now,
                             data={"object": to_resource(doc)})
        return doc, [event]

    doc, events = write(db.transaction())
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic)
    return to_resource(doc)
