"""The transactional outbox: events and timers commit with the state change, leave after commit.

A unit of work (``shared.platform.uow``) writes, in its one commit, each event's document (the
``events`` collection, which the events API lists) and ONE ``outbox`` record per commit holding
the events and the Cloud Tasks timers of that commit. After commit, ``deliver`` enqueues the
timers (named, so a redo is refused), publishes all the events of the commit as ONE Pub/Sub
message, and marks the record published: one publish and one Firestore write per commit, however
many events or owners it has. A crash or a failed publish leaves the record unpublished; the
scheduled sweeper (``sweep``) delivers it later. Delivery is at-least-once: consumers de-duplicate
by event id (``shared.platform.consumer``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import firestore
from pydantic import BaseModel

from shared.platform.clock import rfc3339
from shared.platform.ids import new_id
from shared.platform.logs import get_logger, log

COLLECTION = "events"
_log = get_logger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str: ...


class Event(BaseModel):
    id: str
    object: str = "event"
    type: str
    created: str
    tenant: str
    livemode: bool = False
    data: dict[str, Any]



OUTBOX = "outbox"
RECORD_TTL = dt.timedelta(days=7)


def new_event(*, type: str, tenant: str, data: dict[str, Any], now: dt.datetime,
              livemode: bool = False, event_id: str | None = None) -> Event:
    return Event(id=event_id or new_id("evt"), type=type, created=rfc3339(now), tenant=tenant,
                 livemode=livemode, data=data)


def _event_doc(event: Event, now: dt.datetime, topic: str) -> dict[str, Any]:
    return {**event.model_dump(), "created_at": now, "topic": topic}


@dataclasses.dataclass
class OutboxRecord:
    """What one commit must do after it commits: publish its events, enqueue its timers."""
    id: str
    events: list[Event]
    tasks: list[dict[str, Any]]
    topic: str
    created_at: dt.datetime

    @classmethod
    def build(cls, db, events: list[Event], tasks: list[dict[str, Any]], now: dt.datetime, *,
              topic: str = "events") -> "OutboxRecord":
        record = cls(new_id("obx"), list(events), list(tasks), topic, now)
        record._db = db
        return record

    def add_to(self, writer) -> None:
        """Add the event documents and the record itself to ``writer`` (a batch)."""
        db = self._db
        for event in self.events:
            writer.create(db.collection(COLLECTION).document(event.id),
                          _event_doc(event, self.created_at, self.topic))
        writer.create(db.collection(OUTBOX).document(self.id), {
            "id": self.id, "events": [e.model_dump() for e in self.events], "tasks": self.tasks,
            "topic": self.topic, "published": False, "attempts": 0,
            "created_at": self.created_at, "expires_at": self.created_at + RECORD_TTL})

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "OutboxRecord":
        return cls(doc["id"], [Event(**e) for e in doc.get("events") or []],
                   list(doc.get("tasks") or []), doc.get("topic", "events"), doc["created_at"])


def encode_batch(record: OutboxRecord) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"events": [e.model_dump() for e in record.events]},
                      separators=(",", ":")).encode()
    types = ",".join(sorted({e.type for e in record.events}))
    ids = ",".join(e.id for e in record.events)
    return body, {"outbox_id": record.id, "event_types": types[:1024], "event_ids": ids[:1024],
                  "count": str(len(record.events))}


def deliver(db, publisher: Publisher, tasks, record: OutboxRecord, *,
            now: dt.datetime | None = None) -> bool:
    """Enqueue the record's timers, publish its events as one message, mark it published.

    Returns False (and leaves the record for the sweeper) if any step failed."""
    ref = db.collection(OUTBOX).document(record.id)
    try:
        for task in record.tasks:
            try:
                tasks.enqueue(**task)
            except gexc.AlreadyExists:  # enqueued by an earlier delivery
                pass
        message_id = None
        if record.events:
            data, attributes = encode_batch(record)
            message_id = publisher.publish(record.topic, data, attributes)
    except Exception as exc:  # noqa: BLE001 — any failure leaves the record for the sweeper
        log(_log, logging.WARNING, "outbox delivery failed; the sweeper will retry",
            outbox_id=record.id, error=type(exc).__name__)
        try:
            ref.update({"attempts": firestore.Increment(1)})
        except Exception:  # noqa: BLE001
            pass
        return False
    ref.update({"published": True, "published_at": now or firestore.SERVER_TIMESTAMP,
                "message_id": message_id, "attempts": firestore.Increment(1)})
    return True


def sweep(db, publisher: Publisher, tasks=None, *, now: dt.datetime, min_age_seconds: int = 10,
          batch_size: int = 200) -> int:
    """Deliver outbox records left undelivered longer than ``min_age_seconds``.

    The age gate keeps the sweeper from racing the request that is about to deliver its own
    record. Uses the (published, created_at) index. Returns the number of records delivered.
    """
    cutoff = now - dt.timedelta(seconds=min_age_seconds)
    query = (db.collection(OUTBOX)
             .where(filter=firestore.FieldFilter("published", "==", False))
             .where(filter=firestore.FieldFilter("created_at", "<=", cutoff))
             .order_by("created_at").limit(batch_size))
    sent = 0
    for snap in query.stream():
        record = OutboxRecord.from_doc(snap.to_dict())
        if record.tasks and tasks is None:
            continue
        if deliver(db, publisher, tasks, record, now=now):
            sent += 1
    if sent:
        log(_log, logging.INFO, "outbox sweeper delivered records", count=sent)
    return sent


def decode_message(data: bytes) -> list[Event]:
    """The events of one message: a commit's batch, or a single event (legacy format)."""
    payload = json.loads(data)
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return [Event(**e) for e in payload["events"]]
    return [Event(**payload)]
