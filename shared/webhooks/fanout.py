"""Fan-out: each public event becomes one delivery per subscribed endpoint.

Why no ``processed_events`` marker: the delivery ids are derived from (event, endpoint), so the
deliveries ARE the marker. A redelivered event's creates are refused; it reads them, finds
them and writes nothing; of two concurrent deliveries of one event one commit wins and the
other re-runs and finds its deliveries. That saves a write per event and makes an event nobody subscribed to cost exactly one
query (the owner's endpoints) and no write at all.

Cost per fresh event with subscribers: one query, one commit (deliveries + the outbox record of
their first attempts' tasks, created blindly), then one task enqueue per endpoint and the outbox
record marked done: 3 Firestore round trips. A redelivered event costs the query, a refused
commit and one batch get. The endpoints do not wait on each other: each attempt is its own task
(``shared.webhooks.delivery``).

Events that are never delivered: tenant ``platform`` (internal), types the catalogue does not
declare public, ``webhook_endpoint.test`` (the test route creates its single delivery itself),
and payloads over ``max_payload_bytes`` (logged as an error: the catalogue keeps events thin, so
this is a bug in the emitting capability, not something to truncate).
"""
from __future__ import annotations

import logging

from shared.platform import catalog, logs
from shared.platform.consumer import events_of
from shared.platform.deps import Deps, get_deps
from shared.platform.outbox import Event
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, endpoints
from shared.webhooks.delivery_models import TEST_EVENT
from shared.webhooks.settings import webhook_settings

FUNCTION = "webhooks_events"
INTERNAL_TENANT = "platform"
_log = logs.get_logger(__name__)


def consume(cloud_event) -> None:
    """functions-framework ``@cloud_event`` entry: every event of one outbox commit. A failure
    raises, so Pub/Sub redelivers the message; events already fanned out write nothing again."""
    deps = get_deps()
    for event in events_of(cloud_event, FUNCTION):
        fan_out(deps, event)


def fan_out(deps: Deps, event: Event) -> int:
    """Create the deliveries of ``event`` and queue their first attempts; returns how many were
    created now (0 for a redelivery)."""
    if event.tenant == INTERNAL_TENANT or event.type == TEST_EVENT.name or not is_public(event.type):
        return 0
    settings = webhook_settings(deps)
    doc = event.model_dump()
    size = len(deliveries.event_body(doc))
    if size > settings.max_payload_bytes:
        logs.log(_log, logging.ERROR, "webhook payload too large; event not delivered",
                 event_id=event.id, event_type=event.type, size=size,
                 limit=settings.max_payload_bytes)
        return 0
    targets = endpoints.matching(deps.db, event.tenant, event.livemode, event.type)
    if not targets:
        return 0

    def unit(uow) -> int:
        refs = {t["id"]: deliveries.ref(uow.db, deliveries.delivery_id(event.id, t["id"]))
                for t in targets}
        # First try: create blindly (a fresh event has no delivery yet). If one exists (a
        # redelivery, or a resend that came first) the commit fails as a whole and the unit
        # runs again, this time reading which deliveries exist.
        snaps = uow.get_all(refs.values()) if uow.attempt else {}
        created = 0
        for target in targets:
            snap = snaps.get(refs[target["id"]].path)
            if snap is not None and snap.exists:
                continue
            delivery = deliveries.new_delivery(event=doc, endpoint=target, now=uow.now,
                                               settings=settings)
            uow.create(refs[target["id"]], delivery)
            deliveries.schedule_attempt(uow, settings, delivery, run=1, n=1)
            created += 1
        return created

    created = run_unit(deps, unit)
    logs.log(_log, logging.INFO, "event fanned out", event_id=event.id, event_type=event.type,
             endpoints=len(targets), created=created)
    return created


def is_public(event_type: str) -> bool:
    if catalog.is_public(event_type):
        return True
    if event_type not in catalog.CATALOG:
        logs.log(_log, logging.WARNING, "undeclared event type not delivered", event_type=event_type)
    return False
