"""Queue a message inside a unit of work: the ``outbound_messages`` record and its event.

Record ``outbound_messages/{msg_…}``: ``channel`` (email | sms | push), ``kind`` (what it is
for, e.g. ``password_reset``), ``status`` (queued → sending → sent | retrying | dead_lettered),
``content`` (sealed: recipient, subject, text, links and codes never sit in plain text),
``attempt_count``, ``attempts`` (one entry per try), ``last_error``, ``expires_at`` (TTL).
The event ``outbound_message.queued`` carries only the id, under tenant ``platform`` so it never
appears in a customer's ``/v1/events``.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

from pydantic import BaseModel

from shared.notify.settings import notify_settings
from shared.platform import catalog, secrets_at_rest
from shared.platform.ids import new_id

COLLECTION = "outbound_messages"
EVENT_QUEUED = "outbound_message.queued"
TENANT = "platform"
CHANNELS = ("email", "sms", "push")


class QueuedMessage(BaseModel):
    """``data`` of outbound_message.queued: the id only (the content is sealed at rest)."""
    message_id: str
    channel: Literal["email", "sms", "push"]


catalog.declare(EVENT_QUEUED, QueuedMessage, public=False,
                description="A message was queued; notify sends it after commit.")


def content_context(message_id: str) -> str:
    return secrets_at_rest.context(COLLECTION, message_id, "content")


def _queue(uow, channel: str, kind: str, content: dict[str, Any], user_id: str | None) -> str:
    if not kind or not isinstance(kind, str):
        raise ValueError("kind names what the message is for")
    settings = notify_settings(uow.deps)
    message_id = new_id("msg")
    sealed = secrets_at_rest.envelope(uow.deps).seal(
        json.dumps(content, separators=(",", ":")), context=content_context(message_id),
        reuse_key=True)  # one KMS call per instance every few minutes, not one per message
    now = uow.now
    uow.create(uow.db.collection(COLLECTION).document(message_id), {
        "id": message_id, "object": "outbound_message", "channel": channel, "kind": kind,
        "user_id": user_id, "status": "queued", "content": sealed, "attempt_count": 0,
        "attempts": [], "last_error": None, "created_at": now, "updated_at": now,
        "expires_at": now + dt.timedelta(seconds=settings.message_ttl_seconds)})
    uow.emit(EVENT_QUEUED, tenant=TENANT, data={"message_id": message_id, "channel": channel})
    return message_id


def queue_email(uow, *, to: str, subject: str, text: str, html: str | None = None,
                kind: str | None = None, category: str | None = None,
                user_id: str | None = None) -> str:
    """Send an email after ``uow`` commits. ``category`` is accepted as another name for kind."""
    if not to or "@" not in to:
        raise ValueError("to must be an email address")
    kind = kind if kind is not None else (category or "transactional")
    return _queue(uow, "email", kind, {"to": to, "subject": subject, "text": text, "html": html},
                  user_id)


def queue_sms(uow, *, to: str, text: str, kind: str, user_id: str | None = None) -> str:
    """Send an SMS (``to`` in E.164) after ``uow`` commits."""
    if not to.startswith("+"):
        raise ValueError("to must be an E.164 number")
    return _queue(uow, "sms", kind, {"to": to, "text": text}, user_id)


def queue_push(uow, *, token: str, data: dict[str, str], kind: str,
               user_id: str | None = None) -> str:
    """Send a data-only FCM push after ``uow`` commits."""
    if not token:
        raise ValueError("token is required")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("push data maps str to str")
    return _queue(uow, "push", kind, {"token": token, "data": dict(data)}, user_id)
