"""Pub/Sub consumers of domain events, delivered at least once.

A consumer registers one handler per event type. Each (consumer, event id) pair is processed
once: the handler's writes and a ``processed_events`` marker commit in one transaction, so a
redelivery finds the marker and does nothing. Side effects outside Firestore (enqueueing a task,
a push) must themselves be idempotent and happen before the marker commits.
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any, Callable

from google.cloud import firestore

from shared.platform import logs
from shared.platform.deps import Deps, get_deps
from shared.platform.outbox import Event, decode_message

COLLECTION = "processed_events"
MARKER_TTL = dt.timedelta(days=7)
_log = logs.get_logger(__name__)

# handler(deps, event, transaction) -> callable to run after commit, or None
Handler = Callable[[Deps, Event, Any], Any]


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
        logs.bind(function=self.name, request_id=cloud_event["id"] if "id" in cloud_event else None)
        message = (cloud_event.data or {}).get("message", {})
        raw = base64.b64decode(message.get("data", "") or b"")
        try:
            event = decode_message(raw)
        except Exception:  # noqa: BLE001 — a poison message is logged and acked, never retried forever
            logs.log(_log, logging.ERROR, "undecodable event message dropped",
                     message_id=message.get("messageId"))
            return
        self.handle(get_deps(), event)

    def handle(self, deps: Deps, event: Event) -> bool:
        """Process ``event`` once. Returns False if it was a duplicate or not ours."""
        handler = self.handlers.get(event.type)
        if handler is None:
            return False
        db = deps.db
        marker = db.collection(COLLECTION).document(f"{self.name}:{event.id}")
        now = deps.clock.now()

        @firestore.transactional
        def run(txn) -> tuple[bool, Any]:
            if marker.get(transaction=txn).exists:
                return False, None
            after = handler(deps, event, txn)
            txn.set(marker, {"consumer": self.name, "event_id": event.id, "type": event.type,
                             "processed_at": now, "expires_at": now + MARKER_TTL})
            return True, after

        fresh, after = run(db.transaction())
        if fresh and callable(after):
            after()
        if not fresh:
            logs.log(_log, logging.INFO, "duplicate event delivery ignored", event_id=event.id)
        return fresh
