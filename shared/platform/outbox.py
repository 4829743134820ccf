"""The transactional outbox: events are written with the state change, published after commit.

``record_event`` adds the event document inside the caller's transaction (or batch), so the
event exists if and only if the change committed. ``publish_events`` runs after commit and
marks each event published; if publishing fails the event stays ``published: false`` and the
scheduled sweeper (``sweep``) publishes it later. Delivery is at-least-once: consumers
de-duplicate by event id (``shared.platform.consumer``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Protocol

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

    def to_message(self) -> tuple[bytes, dict[str, str]]:
        body = self.model_dump_json().encode()
        return body, {"event_id": self.id, "type": self.type, "tenant": self.tenant}


def record_event(db, writer, *, type: str, tenant: str, data: dict[str, Any], now: dt.datetime,
                 livemode: bool = False, event_id: str | None = None, topic: str = "events") -> Event:
    """Add an event to ``writer`` (a Transaction or WriteBatch) — it commits with the change."""
    event = Event(id=event_id or new_id("evt"), type=type, created=rfc3339(now), tenant=tenant,
                  livemode=livemode, data=data)
    writer.create(db.collection(COLLECTION).document(event.id), {
        **event.model_dump(), "created_at": now, "topic": topic, "published": False,
        "publish_attempts": 0,
    })
    return event


def publish_events(db, publisher: Publisher, events: list[Event], *, topic: str = "events",
                   now: dt.datetime | None = None) -> int:
    """Publish committed events now; failures are left for the sweeper. Returns the count sent."""
    sent = 0
    for event in events:
        if _publish_one(db, publisher, event, topic, now):
            sent += 1
    return sent


def _publish_one(db, publisher: Publisher, event: Event, topic: str, now: dt.datetime | None) -> bool:
    ref = db.collection(COLLECTION).document(event.id)
    data, attributes = event.to_message()
    try:
        message_id = publisher.publish(topic, data, attributes)
    except Exception as exc:  # noqa: BLE001 — any failure leaves the event for the sweeper
        log(_log, logging.WARNING, "event publish failed; the sweeper will retry",
            event_id=event.id, event_type=event.type, error=type(exc).__name__)
        try:
            ref.update({"publish_attempts": firestore.Increment(1)})
        except Exception:  # noqa: BLE001
            pass
        return False
    ref.update({"published": True, "published_at": now or firestore.SERVER_TIMESTAMP,
                "message_id": message_id, "publish_attempts": firestore.Increment(1)})
    return True


def sweep(db, publisher: Publisher, *, now: dt.datetime, min_age_seconds: int = 10,
          batch_size: int = 200) -> int:
    """Publish events that stayed unpublished longer than ``min_age_seconds``.

    The age gate keeps the sweeper from racing the request that is about to publish its own
    events. Uses the (published, created_at) index.
    """
    cutoff = now - dt.timedelta(seconds=min_age_seconds)
    query = (db.collection(COLLECTION)
             .where(filter=firestore.FieldFilter("published", "==", False))
             .where(filter=firestore.FieldFilter("created_at", "<=", cutoff))
             .order_by("created_at").limit(batch_size))
    sent = 0
    for snap in query.stream():
        doc = snap.to_dict()
        event = Event(**{k: doc[k] for k in Event.model_fields if k in doc})
        if _publish_one(db, publisher, event, doc.get("topic", "events"), now):
            sent += 1
    if sent:
        log(_log, logging.INFO, "outbox sweeper republished events", count=sent)
    return sent


def decode_message(data: bytes) -> Event:
    return Event(**json.loads(data))
