"""A payment's story for its detail page: the events about it and every webhook attempt that
carried them.

Events are the outbox's ``events/{evt_…}`` documents; those about an intent name it as
``data.object.id`` (``payment_intent.*``) or ``data.object.payment_intent`` (``refund.*``,
``invoice.*``). Two equality-only queries (tenant + that field: Firestore merges single-field
indexes, no composite index needed), the mode filtered in memory as every service does. The
attempts of those events are one ``event_id in [...]`` query per 30 events (a single-field
index), kept only when they are the merchant's own (``owner``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from google.cloud.firestore import FieldFilter

from shared.platform.auth import Principal
from shared.platform.outbox import COLLECTION as EVENTS
from shared.webhooks.deliveries import ATTEMPTS, attempt_resource
from shared.webhooks.delivery_models import WebhookAttempt

OBJECT_FIELDS = ("data.object.id", "data.object.payment_intent")
MAX_EVENTS = 50          # per field: an intent's life has a handful; refunds add a few each
IN_LIMIT = 30            # Firestore's bound on the values of one "in" filter


@dataclasses.dataclass(frozen=True)
class Entry:
    id: str
    type: str
    created: str
    object_id: str | None
    attempts: list[WebhookAttempt]

    @property
    def endpoints(self) -> list[str]:
        """The endpoints this event went to (each may be replayed), in first-attempt order."""
        return list(dict.fromkeys(a.endpoint for a in self.attempts))


def _events(db, principal: Principal, object_id: str) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    col = db.collection(EVENTS)
    for field in OBJECT_FIELDS:
        query = (col.where(filter=FieldFilter("tenant", "==", principal.tenant_id))
                 .where(filter=FieldFilter(field, "==", object_id)).limit(MAX_EVENTS))
        for snap in query.stream():
            doc = snap.to_dict() or {}
            if bool(doc.get("livemode")) == bool(principal.livemode):
                found[doc["id"]] = doc
    return sorted(found.values(), key=lambda d: (d.get("created_at"), d["id"]))


def _attempts(db, principal: Principal, event_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    out: dict[str, list[WebhookAttempt]] = {}
    col = db.collection(ATTEMPTS)
    for i in range(0, len(event_ids), IN_LIMIT):
        chunk = event_ids[i:i + IN_LIMIT]
        for snap in col.where(filter=FieldFilter("event_id", "in", chunk)).stream():
            doc = snap.to_dict() or {}
            if doc.get("owner") == principal.tenant_id and \
                    bool(doc.get("livemode")) == bool(principal.livemode):
                out.setdefault(doc["event_id"], []).append(doc)
    return {k: [attempt_resource(d) for d in sorted(v, key=lambda d: d["created_at"])]
            for k, v in out.items()}


def of_payment(deps, principal: Principal, intent_id: str) -> list[Entry]:
    """Oldest first: every event about the intent with its webhook attempts."""
    events = _events(deps.db, principal, intent_id)
    attempts = _attempts(deps.db, principal, [e["id"] for e in events])
    return [Entry(id=e["id"], type=e["type"], created=e["created"],
                  object_id=((e.get("data") or {}).get("object") or {}).get("id"),
                  attempts=attempts.get(e["id"], [])) for e in events]
