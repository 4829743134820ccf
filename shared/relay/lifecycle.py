"""A message's statuses: the legal moves, the history, the event and callback of each change.

``relay_messages/{msg_…}`` (see ADR 0044 for every field). Statuses:

    queued → assigned → sending → sent → delivered
                 ↘ queued (reassigned)        ↘ failed (delivery report)
    queued | assigned | sending → failed | expired;  queued | assigned → canceled

plus the late report: a phone whose job was taken away (timeout, expiry) and that DID send
reports ``sent``/``delivered`` with its still valid token; the truth wins, so ``failed`` and
``expired`` may become ``sent``/``delivered`` and a reassigned message (``queued``/``assigned``/
``sending`` on another SIM) becomes ``sent`` by the old job (reason ``late_report``).

Every change appends ``{status, at, reason}`` to the history, emits ``message.<status>`` (the
client's webhooks) and, when the message has a ``callback_url``, queues its callback; all in
the caller's unit of work, so a change, its event and its callback exist together or not at all.
Repeating a move to the status the message already has is refused here; callers treat a
duplicate report as a no-op before calling ``transition``.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.platform.errors import Conflict, NotFound
from shared.platform.models import is_doc_id
from shared.platform.tasks import task_name
from shared.platform.uow import UnitOfWork
from shared.relay.dispatch_settings import DispatchSettings, dispatch_settings
from shared.relay.message_models import MESSAGE_EVENTS, Message

COLLECTION = "relay_messages"
JOBS = "relay_jobs"
QUEUED, ASSIGNED, SENDING, SENT, DELIVERED = "queued", "assigned", "sending", "sent", "delivered"
FAILED, EXPIRED, CANCELED = "failed", "expired", "canceled"
FINAL = (DELIVERED, FAILED, EXPIRED, CANCELED)
IN_FLIGHT = (QUEUED, ASSIGNED, SENDING)          # the network still owes the client an attempt
CANCELABLE = (QUEUED, ASSIGNED)                   # no phone has the text yet
TRANSITIONS: dict[str, set[str]] = {
    QUEUED: {ASSIGNED, FAILED, EXPIRED, CANCELED, SENT, DELIVERED},
    ASSIGNED: {SENDING, QUEUED, FAILED, EXPIRED, CANCELED, SENT, DELIVERED},
    SENDING: {SENT, DELIVERED, QUEUED, FAILED, EXPIRED},
    SENT: {DELIVERED, FAILED},
    FAILED: {SENT, DELIVERED},
    EXPIRED: {SENT, DELIVERED},
    DELIVERED: set(),
    CANCELED: set(),
}
MAX_HISTORY = 60
TASK_PATHS = {"dispatch": "/dispatch", "deadline": "/deadline", "push": "/push",
              "callback": "/callback"}


class MessageStateError(Conflict):
    code = "message_unexpected_state"


def message_ref(db, message_id: str):
    return db.collection(COLLECTION).document(message_id)


def job_ref(db, job_id: str):
    return db.collection(JOBS).document(job_id)


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def resource(doc: dict[str, Any]) -> Message:
    return Message(
        id=doc["id"], livemode=doc["livemode"], to=doc["to"], carrier=doc["carrier"],
        text=doc["text"], encoding=doc["encoding"], characters=doc["characters"],
        parts=doc["parts"], priority=doc["priority"], status=doc["status"],
        status_history=[{"status": h["status"], "at": _ts(h["at"]), "reason": h.get("reason")}
                        for h in doc.get("history") or []],
        attempts=int(doc.get("attempts") or 0), client_reference=doc.get("client_reference"),
        callback_url=doc.get("callback_url"), metadata=doc.get("metadata") or {},
        created=_ts(doc["created_at"]), updated=_ts(doc["updated_at"]),
        send_at=_ts(doc.get("send_at")), expires_at=_ts(doc["expiry_at"]),
        sent_at=_ts(doc.get("sent_at")), delivered_at=_ts(doc.get("delivered_at")),
        failure_code=doc.get("failure_code"), failure_message=doc.get("failure_message"),
        carrier_error=doc.get("carrier_error"))


def load(uow: UnitOfWork, message_id: str) -> tuple[Any, dict[str, Any] | None]:
    """The message read through the unit (its write is then conditional), or None."""
    if not is_doc_id(message_id) or not message_id.startswith("msg_"):
        return None, None
    ref = message_ref(uow.db, message_id)
    snap = uow.get(ref)
    return ref, (snap.to_dict() if snap.exists else None)


def owned(uow: UnitOfWork, principal, message_id: str) -> tuple[Any, dict[str, Any]]:
    """The caller's message or 404 (another client's, the other mode's, a bad id alike)."""
    ref, doc = load(uow, message_id)
    if doc is None or doc.get("tenant") != principal.tenant_id or \
            doc.get("livemode") != principal.livemode:
        raise NotFound("No such message.", code="resource_missing", param="id")
    return ref, doc


def history_entry(status: str, at: dt.datetime, reason: str | None) -> dict[str, Any]:
    return {"status": status, "at": at, "reason": reason[:120] if reason else None}


def transition(uow: UnitOfWork, ref, doc: dict[str, Any], status: str, *, reason: str | None,
               **fields: Any) -> dict[str, Any]:
    """Move ``doc`` to ``status``, buffer the write of ``fields`` too, emit the event and queue
    the callback. Returns the new document. An illegal move is a 409."""
    current = doc["status"]
    if status not in TRANSITIONS[current]:
        raise MessageStateError(f"A message that is {current} cannot become {status}.")
    now = uow.now
    history = list(doc.get("history") or [])[-(MAX_HISTORY - 1):]
    history.append(history_entry(status, now, reason))
    changes = {**fields, "status": status, "history": history, "updated_at": now}
    if status in FINAL:
        changes.update(due=None, due_at=None, active=False)
    if status != QUEUED:
        changes.setdefault("waiting", False)     # no longer waiting for a free SIM
    uow.update(ref, changes)
    doc = {**doc, **changes}
    announce(uow, doc, status)
    return doc


def announce(uow: UnitOfWork, doc: dict[str, Any], status: str) -> None:
    """The event of a change and, with a ``callback_url``, its callback task."""
    event = uow.emit(MESSAGE_EVENTS[status].name, tenant=doc["tenant"], livemode=doc["livemode"],
                     data={"object": resource(doc).model_dump(mode="json")})
    if doc.get("callback_url"):
        schedule(uow, dispatch_settings(uow.deps), "callback",
                 {"message_id": doc["id"], "event_id": event.id, "attempt": 1},
                 when=None, name=("relay-cb", event.id, "1"))


def schedule(uow: UnitOfWork, settings: DispatchSettings, kind: str, body: dict[str, Any], *,
             when: dt.datetime | None, name: tuple[str, ...]) -> None:
    """A relay task after commit, named from stable parts (the project keeps names apart
    between test projects sharing one emulator)."""
    uow.schedule_task(queue=settings.queue, function=settings.tasks_function,
                      path=TASK_PATHS[kind], body=body, schedule_time=when,
                      name=task_name(uow.deps.settings.project_id, *name))


def due(kind: str | None, at: dt.datetime | None = None) -> dict[str, Any]:
    """The fields that tell the sweeper what the message waits for, and until when."""
    return {"due": kind, "due_at": at, "active": kind is not None}
