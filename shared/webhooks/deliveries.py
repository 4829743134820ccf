"""The delivery document, the bytes a receiver gets, and the task of each attempt.

``webhook_deliveries/{derived_id("whd", event_id, endpoint_id)}``: one event to one endpoint.
The id is derived, so a redelivered event, a resend and the fan-out all find the same document
and nothing is sent to an endpoint twice by accident. Fields: id, object, event_id, event_type,
endpoint_id, owner, livemode, status (see ``WebhookDelivery``), reason, run, attempt_count,
next_attempt_at, lease_until, slot, requeues, last_status_code, last_error, succeeded_at,
created_at, updated_at, expires_at (TTL: a month after the last run started).

Attempts are ``webhook_attempts/{wha_…}`` (written by ``shared.webhooks.delivery``); endpoint
concurrency slots are ``webhook_slots/{endpoint_id}:{k}``.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any, Mapping

from shared.platform.clock import rfc3339
from shared.platform.ids import derived_id
from shared.platform.tasks import task_name
from shared.webhooks.delivery_models import WebhookAttempt, WebhookDelivery
from shared.webhooks.settings import WebhookSettings

COLLECTION = "webhook_deliveries"
ATTEMPTS = "webhook_attempts"
SLOTS = "webhook_slots"
TASKS_FUNCTION = "webhooks_tasks"
TASK_PATH = "/attempts"
FINAL = ("succeeded", "failed", "dead_lettered", "canceled")
WAITING = ("pending", "retrying")
RECOVERABLE = ("failed", "dead_lettered", "canceled")  # what ``recover`` sends again


def delivery_id(event_id: str, endpoint_id: str) -> str:
    return derived_id("whd", event_id, endpoint_id)


def ref(db, delivery_id_: str):
    return db.collection(COLLECTION).document(delivery_id_)


def event_body(event: Mapping[str, Any]) -> bytes:
    """The JSON a receiver gets: ``{id, object, type, created, livemode, data}``, compact, with
    ``data``'s keys sorted so the bytes (and so the signature) are the same on every attempt
    however Firestore orders a map."""
    return json.dumps({"id": event["id"], "object": "event", "type": event["type"],
                       "created": event["created"], "livemode": bool(event.get("livemode")),
                       "data": _sorted(event.get("data") or {})},
                      separators=(",", ":"), ensure_ascii=False).encode()


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    if isinstance(value, dt.datetime):  # never in a declared payload; keep it serialisable
        return rfc3339(value)
    return value


def new_delivery(*, event: Mapping[str, Any], endpoint: Mapping[str, Any], now: dt.datetime,
                 settings: WebhookSettings) -> dict[str, Any]:
    """A delivery waiting for attempt 1 of run 1 (schedule it with ``schedule_attempt``)."""
    return {"id": delivery_id(event["id"], endpoint["id"]), "object": "webhook_delivery",
            "event_id": event["id"], "event_type": event["type"], "endpoint_id": endpoint["id"],
            "owner": endpoint["owner"], "livemode": bool(endpoint.get("livemode")),
            **run_fields(run=1, now=now, settings=settings),
            "last_status_code": None, "last_error": None, "succeeded_at": None,
            "created_at": now}


def run_fields(*, run: int, now: dt.datetime, settings: WebhookSettings) -> dict[str, Any]:
    """The fields that (re)start a run at attempt 1, due now."""
    return {"status": "pending", "reason": None, "run": run, "attempt_count": 0,
            "next_attempt_at": now, "lease_until": None, "slot": None, "requeues": 0,
            "updated_at": now,
            "expires_at": now + dt.timedelta(seconds=settings.attempt_ttl_seconds)}


def schedule_attempt(uow, settings: WebhookSettings, doc: Mapping[str, Any], *, run: int, n: int,
                     when: dt.datetime | None = None, requeues: int = 0) -> None:
    """Queue the task of attempt ``n`` of ``run`` (after commit). ``requeues`` counts the times
    this attempt was queued again (a deferral, the sweeper): the delivery keeps the latest and
    only that task may run the attempt. The name is derived from all three, so a redone unit
    cannot queue it twice; the handler is idempotent anyway (the emulator ignores names)."""
    parts = ["whk", doc["id"], str(run), str(n)] + ([f"r{requeues}"] if requeues else [])
    uow.schedule_task(queue=settings.queue, function=TASKS_FUNCTION, path=TASK_PATH,
                      body={"delivery_id": doc["id"], "endpoint_id": doc["endpoint_id"],
                            "event_id": doc["event_id"], "run": run, "attempt": n,
                            "requeues": requeues},
                      schedule_time=when, name=task_name(*parts))


def jittered(seconds: float, settings: WebhookSettings) -> float:
    j = max(0.0, min(settings.jitter, 0.9))
    return seconds * random.uniform(1 - j, 1 + j)


def _time(value) -> str | None:
    return rfc3339(value) if isinstance(value, dt.datetime) else None


def to_resource(doc: Mapping[str, Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=doc["id"], endpoint=doc["endpoint_id"], event=doc["event_id"],
        event_type=doc["event_type"], livemode=bool(doc.get("livemode")), status=doc["status"],
        reason=doc.get("reason"), run=doc.get("run", 1), attempt_count=doc.get("attempt_count", 0),
        next_attempt_at=_time(doc.get("next_attempt_at")) if doc["status"] not in FINAL else None,
        last_status_code=doc.get("last_status_code"), last_error=doc.get("last_error"),
        succeeded_at=_time(doc.get("succeeded_at")), created=rfc3339(doc["created_at"]))


def attempt_resource(doc: Mapping[str, Any]) -> WebhookAttempt:
    return WebhookAttempt(
        id=doc["id"], delivery=doc["delivery_id"], endpoint=doc["endpoint_id"],
        event=doc["event_id"], event_type=doc["event_type"], livemode=bool(doc.get("livemode")),
        run=doc["run"], attempt=doc["n"], created=rfc3339(doc["created_at"]),
        outcome=doc["outcome"], status_code=doc.get("status_code"),
        latency_ms=doc.get("latency_ms"), response_body=doc.get("response_body"),
        error=doc.get("error"), next_attempt_at=_time(doc.get("next_attempt_at")))
