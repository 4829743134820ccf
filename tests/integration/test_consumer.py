"""Event consumers: a crash mid-way commits nothing, so the redelivery does the work once."""

import pytest

from shared.platform.consumer import EventConsumer
from shared.platform.outbox import Event



def test_crash_inside_the_handler_leaves_no_marker_and_the_retry_applies_once(deps):
    consumer = EventConsumer("counter")
    attempts = []

    @consumer.on("thing.happened")
    def count(deps_, event, txn):
        attempts.append(event.id)
        txn.set(deps_.db.collection("counters").document("c"), {"seen": event.id})
        if len(attempts) == 1:
            raise ConnectionError("instance died mid-way")

    event = Event(id="evt_crash1", type="thing.happened", created="2026-03-01T00:00:00Z", tenant="t", data={})
    with pytest.raises(ConnectionError):
        consumer.handle(deps, event)
    assert not deps.db.collection("counters").document("c").get().exists
    assert not deps.db.collection("processed_events").document("counter:evt_crash1").get().exists
    assert consumer.handle(deps, event) is True          # Pub/Sub redelivers
    assert consumer.handle(deps, event) is False         # and once more: a duplicate
    assert deps.db.collection("counters").document("c").get().get("seen") == "evt_crash1"
    assert len(attempts) == 2


def test_events_of_other_types_are_acknowledged_untouched(deps):
    consumer = EventConsumer("picky")
    event = Event(id="evt_other", type="other.thing", created="2026-03-01T00:00:00Z", tenant="t", data={})
    assert consumer.handle(deps, event) is False
    assert list(deps.db.collection("processed_events").stream()) == []
