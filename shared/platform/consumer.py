"""Pub/Sub consumers of domain events, delivered at least once.

A message carries every event of one commit (``shared.platform.outbox``). A consumer registers
one handler per event type, ``handler(uow, event)``; each (consumer, event id) pair is processed
once: the handler's writes and a ``processed_events`` marker commit in one unit of work, so a
redelivery finds the marker and does nothing. Timers and further events go through the unit
(``uow.schedule_task``, ``uow.emit``) and leave after commit. Cost per event: the handler's reads (the
marker rides along with the first) and one commit.
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any, Callable

from shared.platform import logs
from shared.platform.deps import Deps, get_deps
from shared.platform.outbox import Event, decode_message
from shared.platform.uow import UnitOfWork, run_unit

COLLECTION = "processed_events"
MARKER_TTL = dt.timedelta(days=7)
_log = logs.get_logger(__name__)

# handler(uow, event): reads and writes through the unit of work
Handler = Callable[[UnitOfWork, Event], Any]


def events_of(cloud_event, function: str) -> list[Event]:
    """The events of a Pub/Sub messagePublished CloudEvent (a commit's batch). A poison message
    is logged and acknowledged (an empty list), never retried forever."""
    logs.bind(function=function, request_id=cloud_event["id"] if "id" in cloud_event else None)
    message = (cloud_event.data or {}).get("message", {})
    try:
        return decode_message(base64.b64decode(message.get("data", "") or b""))
    except Exception:  # noqa: BLE001
        logs.log(_log, logging.ERROR, "undecodable event message dropped",
                 message_id=message.get("messageId"))
        return []


class _Processed(BaseException):
    """This consumer already processed the event (a BaseException: no handler swallows it)."""


def _stop_if_processed(snap) -> None:
    if snap.exists:
        raise _Processed()


class EventConsumer:
    def __init__(self, name: str):
        self.name = name
        self.handlers: dict[str, Handler] = {}

    def on(self, event_type: str):
        def register(fn: Handler) -> Handler:
            self.handlers[event_type] = fn
            return fn
        return register

    def __call__(self, cloud_event) -> None:
        """functions-framework ``@cloud_event`` entry: a Pub/Sub messagePublished CloudEvent."""
        events = events_of(cloud_event, self.name)
        deps = get_deps()
        for event in events:  # a failure raises: Pub/Sub redelivers, done events are skipped
            self.handle(deps, event)

    def handle(self, deps: Deps, event: Event) -> bool:
        """Process ``event`` once. Returns False if it was a duplicate or not ours."""
        handler = self.handlers.get(event.type)
        if handler is None:
            return False
        marker = deps.db.collection(COLLECTION).document(f"{self.name}:{event.id}")

        def run(uow: UnitOfWork) -> bool:
            # The marker rides along with the handler's first read: a duplicate stops there.
            uow.prefetch(marker, _stop_if_processed)
            try:
                handler(uow, event)
                uow.flush_prefetch()
            except _Processed:
                uow.discard()
                return False
            uow.create(marker, {"consumer": self.name, "event_id": event.id, "type": event.type,
                                "processed_at": uow.now, "expires_at": uow.now + MARKER_TTL})
            return True

        fresh = run_unit(deps, run)
        if not fresh:
            logs.log(_log, logging.INFO, "duplicate event delivery ignored", event_id=event.id)
        return fresh
