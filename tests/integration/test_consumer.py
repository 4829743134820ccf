"""Event consumers: a crash mid-way commits nothing, so the redelivery does the work once."""

import pytest
from google.cloud import firestore

import tests.support.declared_test_events  # noqa: F401  (the test event types)
from shared.platform.consumer import EventConsumer
from shared.platform.outbox import Event



def test_crash_inside_the_handler_leaves_no_marker_and_the_retry_applies_once(deps):
    consumer = EventConsumer("counter")
    attempts = []

    @consumer.on("thing.happened")
    def count(uow, event):
        attempts.append(event.id)
        uow.set(uow.db.collection("counters").document("c"),
                {"seen": event.id, "applied": firestore.Increment(1)}, merge=True)
        if len(attempts) == 1:
            raise ConnectionError("instance died mid-way")

    event = Event(id="evt_crash1", type="thing.happened", created="2026-03-01T00:00:00Z", tenant="t", data={})
    with pytest.raises(ConnectionError):
        consumer.handle(deps, event)
    assert not deps.db.collection("counters").document("c").get().exists
    assert not deps.db.collection("processed_events").document("counter:evt_crash1").get().exists
    assert consumer.handle(deps, event) is True          # Pub/Sub redelivers
    assert consumer.handle(deps, event) is False         # and once more: a duplicate
    counter = deps.db.collection("counters").document("c").get()
    assert counter.get("seen") == "evt_crash1" and counter.get("applied") == 1  # once


def test_events_of_other_types_are_acknowledged_untouched(deps):
    consumer = EventConsumer("picky")
    event = Event(id="evt_other", type="other.thing", created="2026-03-01T00:00:00Z", tenant="t", data={})
    assert consumer.handle(deps, event) is False
    assert list(deps.db.collection("processed_events").stream()) == []


def test_one_message_carries_every_event_of_a_commit_and_each_is_handled_once(deps):
    """A unit of work that emits two events publishes ONE message; the consumer handles both,
    and a redelivery of that message changes nothing."""
    import base64
    from google.cloud import firestore as fs
    from shared.platform import outbox
    from shared.platform.uow import run_unit

    consumer = EventConsumer("summer")
    total = deps.db.collection("counters").document("sum")

    @consumer.on("amount.added")
    def add(uow, event):
        uow.set(total, {"n": fs.Increment(event.data["n"])}, merge=True)

    def emit_two(uow):
        uow.emit("amount.added", tenant="t", data={"n": 2})
        uow.emit("amount.added", tenant="t", data={"n": 5})
    run_unit(deps, emit_two)
    records = [d.to_dict() for d in deps.db.collection(outbox.OUTBOX).stream()]
    assert len(records) == 1 and records[0]["published"] is True
    assert len(records[0]["events"]) == 2
    data, _ = outbox.encode_batch(outbox.OutboxRecord.from_doc(records[0]))

    class CloudEvent(dict):
        pass
    cloud_event = CloudEvent(id="ce1")
    cloud_event.data = {"message": {"data": base64.b64encode(data).decode(), "messageId": "m1"}}
    consumer(cloud_event)
    consumer(cloud_event)  # Pub/Sub redelivers the whole message
    assert total.get().get("n") == 7


def test_a_failed_publish_leaves_the_record_for_the_sweeper(deps):
    from shared.platform import outbox
    from shared.platform.uow import run_unit

    class Down:
        def publish(self, *a, **k):
            raise ConnectionError("pubsub down")

    real = deps.publisher
    deps._cache["publisher"] = Down()
    try:
        run_unit(deps, lambda uow: uow.emit("x.happened", tenant="t", data={}))
    finally:
        deps._cache["publisher"] = real
    [record] = [d.to_dict() for d in deps.db.collection(outbox.OUTBOX).stream()]
    assert record["published"] is False and record["attempts"] == 1
    later = record["created_at"] + __import__("datetime").timedelta(seconds=30)
    assert outbox.sweep(deps.db, deps.publisher, deps.tasks, now=later) == 1
    assert outbox.sweep(deps.db, deps.publisher, deps.tasks, now=later) == 0
