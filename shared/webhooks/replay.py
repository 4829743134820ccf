"""Sending again: resend one event, recover an endpoint's failures, send a test event.

A replay starts a new ``run`` of the delivery (attempt 1, due now) and keeps its id and so the
``webhook-id`` (the event id): a receiver that already processed the event recognises it. The
older run's queued tasks become stale; an attempt of it still in flight is recorded and changes
nothing.

Decisions:
* resend works for any public event of the endpoint's owner and mode, subscribed or not (the
  merchant asks for it by id; another owner's or mode's event is a 404, as if it did not exist);
* an endpoint must be enabled to resend, recover or test (otherwise the attempt would only be
  canceled): a 400 ``endpoint_disabled`` says so;
* recover sends again the ``failed``, ``dead_lettered`` and ``canceled`` deliveries created in
  [since, until): canceled ones were never delivered either (the endpoint was disabled, e.g.
  after 5 days of failures, which is exactly when a merchant recovers). At most ``RECOVER_LIMIT``
  per call, in units of ``RECOVER_CHUNK``; ``has_more`` says to call again;
* the test event ``webhook_endpoint.test`` is a real event of the owner, delivered to that one
  endpoint only: its delivery is created here, and the fan-out skips the type.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud import firestore

from shared.platform.auth import Principal
from shared.platform.deps import Deps
from shared.platform.errors import InvalidRequest, NotFound
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.uow import UnitOfWork, run_unit
from shared.webhooks import deliveries, endpoints
from shared.webhooks.deliveries import COLLECTION, RECOVERABLE
from shared.webhooks.delivery_models import TEST_EVENT, Recovery, WebhookDelivery
from shared.webhooks.fanout import INTERNAL_TENANT, is_public
from shared.webhooks.settings import WebhookSettings, webhook_settings

RECOVER_LIMIT = 1000
RECOVER_CHUNK = 100


def _enabled(endpoint: dict[str, Any]) -> None:
    if endpoint.get("status") != "enabled":
        raise InvalidRequest("This webhook endpoint is disabled; enable it first.",
                             code="endpoint_disabled")


def _no_event(event_id: str) -> NotFound:
    return NotFound(f"No such event: '{event_id}'", param="event")


def resend(uow: UnitOfWork, principal: Principal, endpoint_id: str, event_id: str) -> WebhookDelivery:
    """Send ``event_id`` to the endpoint again (or for the first time), as a new run."""
    settings = webhook_settings(uow.deps)
    e_ref = endpoints.ref(uow.db, endpoint_id)
    ev_ref = uow.db.collection(EVENTS).document(event_id)
    d_ref = deliveries.ref(uow.db, deliveries.delivery_id(event_id, endpoint_id))
    snaps = uow.get_all([e_ref, ev_ref, d_ref])
    endpoint = endpoints.owned(snaps[e_ref.path], principal, endpoint_id)
    ev_snap = snaps[ev_ref.path]
    event = ev_snap.to_dict() if ev_snap.exists else None
    if (event is None or event.get("tenant") != endpoint["owner"]
            or bool(event.get("livemode")) != bool(endpoint.get("livemode"))
            or event.get("tenant") == INTERNAL_TENANT or not is_public(event.get("type", ""))):
        raise _no_event(event_id)
    _enabled(endpoint)
    if len(deliveries.event_body(event)) > settings.max_payload_bytes:
        raise InvalidRequest("This event is larger than a webhook may carry.", code="event_too_large",
                             param="event")
    d_snap = snaps[d_ref.path]
    if d_snap.exists:
        doc = d_snap.to_dict()
        return _restart(uow, settings, d_ref, doc)
    doc = deliveries.new_delivery(event=event, endpoint=endpoint, now=uow.now, settings=settings)
    uow.create(d_ref, doc)
    deliveries.schedule_attempt(uow, settings, doc, run=1, n=1)
    return deliveries.to_resource(doc)


def _restart(uow: UnitOfWork, settings: WebhookSettings, d_ref, doc: dict[str, Any]) -> WebhookDelivery:
    run = int(doc.get("run", 1)) + 1
    fields = deliveries.run_fields(run=run, now=uow.now, settings=settings)
    uow.update(d_ref, fields)
    doc = {**doc, **fields}
    deliveries.schedule_attempt(uow, settings, doc, run=run, n=1)
    return deliveries.to_resource(doc)


def recover(deps: Deps, principal: Principal, endpoint_id: str, since: dt.datetime,
            until: dt.datetime | None) -> Recovery:
    """Send again every failed, dead-lettered or canceled delivery of the endpoint created in
    [since, until), oldest first, at most ``RECOVER_LIMIT`` per call."""
    settings = webhook_settings(deps)
    endpoint = endpoints.owned(endpoints.ref(deps.db, endpoint_id).get(), principal, endpoint_id)
    _enabled(endpoint)
    col = deps.db.collection(COLLECTION)
    found = []
    for status in RECOVERABLE:  # one equality per query: served by (endpoint_id, status, created_at)
        q = (col.where(filter=firestore.FieldFilter("endpoint_id", "==", endpoint_id))
             .where(filter=firestore.FieldFilter("status", "==", status))
             .where(filter=firestore.FieldFilter("created_at", ">=", since)))
        if until is not None:
            q = q.where(filter=firestore.FieldFilter("created_at", "<", until))
        found += list(q.order_by("created_at").limit(RECOVER_LIMIT + 1).stream())
    found.sort(key=lambda s: s.get("created_at"))
    chosen, has_more = found[:RECOVER_LIMIT], len(found) > RECOVER_LIMIT
    resent = 0
    for start in range(0, len(chosen), RECOVER_CHUNK):
        chunk = [s.reference for s in chosen[start:start + RECOVER_CHUNK]]
        resent += run_unit(deps, lambda uow, refs=chunk: _restart_all(uow, settings, refs))
    return Recovery(endpoint=endpoint_id, resent=resent, has_more=has_more)


def _restart_all(uow: UnitOfWork, settings: WebhookSettings, refs: list) -> int:
    count = 0
    for snap in uow.get_all(refs).values():
        doc = snap.to_dict() if snap.exists else None
        if doc and doc.get("status") in RECOVERABLE:  # not resent meanwhile
            _restart(uow, settings, snap.reference, doc)
            count += 1
    return count


def send_test(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> WebhookDelivery:
    """Emit a ``webhook_endpoint.test`` event of the owner and deliver it to this endpoint."""
    settings = webhook_settings(uow.deps)
    e_ref = endpoints.ref(uow.db, endpoint_id)
    endpoint = endpoints.owned(uow.get(e_ref), principal, endpoint_id)
    _enabled(endpoint)
    event = uow.emit(TEST_EVENT.name, tenant=endpoint["owner"],
                     livemode=bool(endpoint.get("livemode")),
                     data={"object": endpoints.to_resource(endpoint).model_dump(mode="json")})
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=endpoint, now=uow.now,
                                  settings=settings)
    uow.create(deliveries.ref(uow.db, doc["id"]), doc)
    deliveries.schedule_attempt(uow, settings, doc, run=1, n=1)
    return deliveries.to_resource(doc)
