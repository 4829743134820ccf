"""The inbox: receive a provider's webhook (verify, store once, acknowledge) and process it from a
Cloud Task with retries.

Receive is one unit: the signature is checked over the raw bytes before anything is read, then
``inbound_events/{provider}:{event id}`` is created together with the task of attempt 1. The
document id is the de-duplication: a provider retry, a replay or a concurrent copy finds it (or
loses the create race and re-runs to find it) and is acknowledged without storing or scheduling
anything. No provider call and no business rule runs while the provider waits.

Process (attempt ``n``) needs no claim: one unit reads the document, runs the registered handler
and marks the document ``processed`` in the same commit, guarded by the document's update time.
A duplicate task, a crash before the commit, or a concurrent copy can therefore never apply an
event twice nor lose it: whatever did not commit is re-done by the next task. A handler failure
discards the handler's writes and, in that same commit, records the failure and schedules
attempt ``n+1`` after a back-off (one task per attempt; Cloud Tasks' own retries are only a
safety net); after ``max_attempts`` the event is dead-lettered. ``sweep`` re-schedules the rare
event whose task was lost (the function died every time the queue tried it).

Cost: receive, 1 batch get + 1 commit (+ the task enqueue after commit); a duplicate, 1 batch
get. Process: 1 batch get + the handler's reads + 1 commit.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
from collections.abc import Mapping
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.inbox import handlers
from shared.inbox.models import (
    DEAD_LETTERED,
    FINAL,
    IGNORED,
    PROCESSED,
    RECEIVED,
    RETRYING,
    InboundReceipt,
)
from shared.inbox.providers import InboundProvider, get_provider
from shared.inbox.schemes import SignatureRejected
from shared.inbox.settings import InboxSettings, inbox_settings
from shared.platform import jsonbody, logs
from shared.platform.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PayloomError,
)
from shared.platform.tasks import task_name
from shared.platform.uow import Contention, UnitOfWork, run_unit

COLLECTION = "inbound_events"
TASKS_FUNCTION = "inbound_tasks"
TASK_PATH = "/process"
# Provider event ids become part of a document id: a conservative alphabet, bounded.
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
MAX_TYPE_LENGTH = 200
MAX_TEXT_LENGTH = 300
_log = logs.get_logger(__name__)


def inbox_key(provider: str, event_id: str) -> str:
    return f"{provider}:{event_id}"


# --- receive -------------------------------------------------------------------------------------
def receive(uow: UnitOfWork, provider_name: str, raw: bytes,
            headers: Mapping[str, str]) -> InboundReceipt:
    """Verify ``raw`` with the provider's scheme, then store it once and schedule attempt 1."""
    settings = inbox_settings(uow.deps)
    provider = _provider(provider_name, settings)
    if len(raw) > settings.raw_body_limit:
        raise PayloadTooLarge(f"Webhook bodies are limited to {settings.raw_body_limit} bytes.")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        verified = provider.verify(raw, lowered, provider.secrets(settings),
                                   int(uow.now.timestamp()), provider.tolerance_seconds)
    except SignatureRejected as exc:
        # Never the body nor the header: a forged request must not write into our logs.
        logs.log(_log, logging.WARNING, "inbound webhook refused", provider=provider.name,
                 reason=exc.reason, size=len(raw))
        raise InvalidRequest(f"The webhook signature was refused: {exc.reason}.",
                             code="invalid_signature") from None
    text, event = _parse(raw)
    event_id = provider.event_id(verified, event)
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        raise InvalidRequest("The webhook carries no usable event id.", code="invalid_event")
    event_type = provider.event_type(event)
    if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_TYPE_LENGTH:
        event_type = None   # stored all the same; no handler matches it
    key = inbox_key(provider.name, event_id)
    ref = uow.db.collection(COLLECTION).document(key)
    duplicate = uow.get(ref).exists
    # Logged when verified (a conflict may re-run this unit: the commit, not this line, decides).
    logs.log(_log, logging.INFO, "inbound webhook verified", provider=provider.name,
             event_id=event_id, type=event_type, size=len(raw), duplicate=duplicate)
    if duplicate:
        return InboundReceipt(duplicate=True)
    now = uow.now
    uow.create(ref, {
        "key": key, "provider": provider.name, "event_id": event_id, "type": event_type,
        "raw": text, "size": len(raw),
        "signed_at": dt.datetime.fromtimestamp(verified.timestamp, dt.UTC),
        "received_at": now, "updated_at": now, "status": RECEIVED, "attempts": 0,
        "next_attempt_at": now, "errors": [], "sweeps": 0,
        "expires_at": now + dt.timedelta(seconds=settings.event_ttl_seconds)})
    _schedule(uow, settings, key, 1, None)
    return InboundReceipt(duplicate=False)


def _provider(name: str, settings: InboxSettings) -> InboundProvider:
    provider = get_provider(name)
    if provider is None:
        raise NotFound(f"No inbound provider is named {name[:40]!r}.", code="unknown_provider",
                       param="provider")
    if not provider.secrets(settings):   # not enabled here: nothing can be verified
        logs.log(_log, logging.WARNING, "inbound provider has no webhook secret configured",
                 provider=provider.name)
        raise NotFound(f"No inbound provider is named {name[:40]!r}.", code="unknown_provider",
                       param="provider")
    return provider


def _parse(raw: bytes) -> tuple[str, dict[str, Any]]:
    try:
        text = raw.decode("utf-8")
        event = jsonbody.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("The webhook body is not a JSON object in UTF-8.",
                             code="invalid_event") from None
    if not isinstance(event, dict):
        raise InvalidRequest("The webhook body is not a JSON object in UTF-8.",
                             code="invalid_event")
    return text, event


def _schedule(uow: UnitOfWork, settings: InboxSettings, key: str, attempt: int,
              at: dt.datetime | None, *, suffix: str = "") -> None:
    uow.schedule_task(queue=settings.queue, function=TASKS_FUNCTION, path=TASK_PATH,
                      body={"key": key, "attempt": attempt}, schedule_time=at,
                      name=task_name("inbound", key, str(attempt), *([suffix] if suffix else [])))


# --- process -------------------------------------------------------------------------------------
def retry_delay(settings: InboxSettings, attempt: int) -> dt.timedelta:
    """The wait after failed attempt ``attempt``: exponential, capped, jittered."""
    base = min(settings.backoff_cap_seconds,
               settings.backoff_base_seconds * settings.backoff_factor ** (attempt - 1))
    return dt.timedelta(seconds=base * random.uniform(0.75, 1.25))


def process(deps, key: str, attempt: int) -> str:
    """Run attempt ``attempt`` of inbox event ``key``; returns the outcome (for logs and tests).

    A ``BaseException`` that is not an ``Exception`` (the worker being killed) propagates:
    nothing commits and the task is delivered again."""
    settings = inbox_settings(deps)
    ref = deps.db.collection(COLLECTION).document(key)
    failure: list[Exception] = []

    def run(uow: UnitOfWork) -> str:
        failure.clear()
        doc = _due(uow, ref, attempt)
        if isinstance(doc, str):
            return doc
        handler = handlers.handler_for(doc["provider"], doc.get("type"))
        done = {"attempts": attempt, "updated_at": uow.now, "next_attempt_at": None}
        if handler is None:
            uow.update(ref, {**done, "status": IGNORED, "processed_at": uow.now})
            return IGNORED
        try:
            result = handler(uow, json.loads(doc["raw"]))
        except Exception as exc:  # noqa: BLE001 — a failed attempt is recorded, never lost
            uow.discard()         # none of the handler's writes, events or tasks
            failure.append(exc)
            return _failed(uow, ref, doc, attempt, exc, settings)
        uow.update(ref, {**done, "status": PROCESSED, "processed_at": uow.now,
                         "result": None if result is None else str(result)[:MAX_TEXT_LENGTH]})
        return PROCESSED

    try:
        outcome = run_unit(deps, run)
    except Contention as exc:
        # The handler's documents stayed contended through every re-run: count it as a failed
        # attempt and schedule the next one (if even that contends, the queue retries the task).
        contention = exc

        def contended(uow: UnitOfWork) -> str:
            doc = _due(uow, ref, attempt)
            return doc if isinstance(doc, str) else _failed(uow, ref, doc, attempt, contention,
                                                             settings)
        failure[:] = [contention]
        outcome = run_unit(deps, contended)
    fields = {"key": key, "attempt": attempt, "outcome": outcome}
    if outcome in (RETRYING, DEAD_LETTERED) and failure:
        logs.log(_log, logging.WARNING, "inbound event attempt failed",
                 error=type(failure[0]).__name__, **fields)
    else:
        logs.log(_log, logging.INFO, "inbound event attempt", **fields)
    return outcome


def _due(uow: UnitOfWork, ref, attempt: int) -> dict[str, Any] | str:
    """The document if attempt ``attempt`` is what it waits for, else why not (a no-op)."""
    snap = uow.get(ref)
    if not snap.exists:
        return "missing"
    doc = snap.to_dict()
    if doc["status"] in FINAL:
        return f"already_{doc['status']}"
    if doc.get("attempts", 0) != attempt - 1:
        return "stale"   # a duplicate of an attempt that already recorded its outcome
    return doc


def _failed(uow: UnitOfWork, ref, doc: dict[str, Any], attempt: int, exc: Exception,
            settings: InboxSettings) -> str:
    """Record the failed attempt; schedule the next one, or dead-letter the event."""
    error = _describe(exc)
    errors = list(doc.get("errors") or [])[-(settings.max_attempts - 1):]
    errors.append({"attempt": attempt, "at": uow.now, "error": error})
    update = {"attempts": attempt, "updated_at": uow.now, "last_error": error, "errors": errors}
    if _permanent(exc) or attempt >= settings.max_attempts:
        uow.update(ref, {**update, "status": DEAD_LETTERED, "dead_lettered_at": uow.now,
                         "next_attempt_at": None})
        return DEAD_LETTERED
    at = uow.now + retry_delay(settings, attempt)
    _schedule(uow, settings, doc["key"], attempt + 1, at)
    uow.update(ref, {**update, "status": RETRYING, "next_attempt_at": at})
    return RETRYING


def _permanent(exc: Exception) -> bool:
    return isinstance(exc, handlers.PermanentFailure) or (
        isinstance(exc, PayloomError) and exc.status < 500)


def _describe(exc: Exception) -> str:
    """Kept on the document (never logged: a message may quote the provider's data)."""
    code = getattr(exc, "code", None)
    text = f"{type(exc).__name__}{f' [{code}]' if isinstance(code, str) else ''}: {exc}"
    return text[:MAX_TEXT_LENGTH]


# --- sweep ---------------------------------------------------------------------------------------
def sweep(deps, *, limit: int = 100) -> int:
    """Schedule again the due attempt of every event that waited ``stale_after_seconds`` past
    its due time (its task was lost); returns how many. Each is pushed ``stale_after`` later, so
    a sweep every few minutes re-schedules an event at most once per period."""
    settings = inbox_settings(deps)
    stale = dt.timedelta(seconds=settings.stale_after_seconds)
    query = (deps.db.collection(COLLECTION)
             .where(filter=FieldFilter("status", "in", [RECEIVED, RETRYING]))
             .where(filter=FieldFilter("next_attempt_at", "<", deps.clock.now() - stale))
             .limit(limit))
    count = 0
    for snap in query.stream():
        def again(uow: UnitOfWork, ref=snap.reference) -> bool:
            current = uow.get(ref)
            doc = current.to_dict() if current.exists else None
            if not doc or doc["status"] in FINAL or not doc.get("next_attempt_at") or \
                    doc["next_attempt_at"] >= uow.now - stale:
                return False
            sweeps = doc.get("sweeps", 0) + 1
            _schedule(uow, settings, doc["key"], doc.get("attempts", 0) + 1, None,
                      suffix=f"sweep{sweeps}")
            uow.update(ref, {"sweeps": sweeps, "next_attempt_at": uow.now + stale,
                             "updated_at": uow.now})
            return True
        if run_unit(deps, again):
            count += 1
            logs.log(_log, logging.WARNING, "inbound event rescheduled by the sweep",
                     key=snap.id, status=snap.get("status"))
    return count
