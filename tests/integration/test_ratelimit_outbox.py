"""Rate limits and the outbox against the Firestore and Pub/Sub emulators."""
import datetime as dt
import json

import pytest
from google.cloud import pubsub_v1

import tests.support.declared_test_events  # noqa: F401  (the test event types)
from shared.platform.errors import RateLimited
from shared.platform.errors import InvalidRequest
from shared.platform.outbox import OUTBOX, sweep
from shared.platform.uow import run_unit
from shared.platform.ratelimit import Limit, enforce, hit

NOW = dt.datetime(2026, 3, 1, 12, 0, 5, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("shared", [True, False], ids=["firestore", "local"])
def test_rate_limit_counts_exactly_and_resets_next_window(deps, shared):
    import uuid
    rule = Limit(f"test.{uuid.uuid4().hex[:8]}.ip", 3, 60, shared=shared)
    decisions = [hit(deps.db, rule, "1.2.3.4", NOW) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[2].remaining == 0
    assert hit(deps.db, rule, "5.6.7.8", NOW).allowed  # another key, own budget
    assert hit(deps.db, rule, "1.2.3.4", NOW + dt.timedelta(seconds=60)).allowed
    with pytest.raises(RateLimited) as exc:
        enforce(deps.db, rule, "1.2.3.4", NOW)
    assert exc.value.status == 429 and int(exc.value.headers["Retry-After"]) == 55
    stored = list(deps.db.collection("rate_limits").stream())
    assert bool(stored) is shared  # a local limit costs no Firestore write


def test_auth_limits_are_counted_across_instances_and_others_locally():
    assert Limit("auth.login.ip", 10, 60).counted_in_firestore
    assert not Limit("wallet.p2p", 60, 60).counted_in_firestore
    assert Limit("wallet.p2p", 60, 60, shared=True).counted_in_firestore


class FlakyPublisher:
    def __init__(self, inner, fail: bool):
        self.inner, self.fail, self.calls = inner, fail, 0

    def publish(self, topic, data, attributes):
        self.calls += 1
        if self.fail:
            raise ConnectionError("pubsub down")
        return self.inner.publish(topic, data, attributes)


def subscribe(deps):
    sub = pubsub_v1.SubscriberClient()
    path = sub.subscription_path(deps.settings.project_id, "test-events")
    sub.create_subscription(request={"name": path, "topic": deps.publisher.topic_path("events")})
    return sub, path


def drain(sub, path, want: int, attempts: int = 20) -> list[dict]:
    got = []
    for _ in range(attempts):
        resp = sub.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
        if resp.received_messages:
            sub.acknowledge(request={"subscription": path,
                                     "ack_ids": [m.ack_id for m in resp.received_messages]})
        got += [json.loads(m.message.data) for m in resp.received_messages]
        if len(got) >= want:
            break
    return got


def _emit(deps, now, publisher=None):
    """One unit of work that changes a document and emits one event."""
    if publisher is not None:
        deps._cache["publisher"], real = publisher, deps.publisher
    try:
        def change(uow):
            uow.set(deps.db.collection("things").document("a"), {"n": 1})
            return uow.emit("thing.happened", tenant="t1", data={"n": 1})
        return run_unit(deps, change, now=now)
    finally:
        if publisher is not None:
            deps._cache["publisher"] = real


def _record(deps):
    [doc] = [d.to_dict() for d in deps.db.collection(OUTBOX).stream()]
    return doc


def test_event_is_written_with_the_change_and_published_once(deps):
    sub, path = subscribe(deps)
    ev = _emit(deps, NOW)
    assert deps.db.collection("events").document(ev.id).get().get("type") == "thing.happened"
    record = _record(deps)
    assert record["published"] is True and record["attempts"] == 1
    assert sweep(deps.db, deps.publisher, deps.tasks, now=NOW + dt.timedelta(minutes=5)) == 0
    msgs = drain(sub, path, 1)
    assert [e["id"] for m in msgs for e in m["events"]] == [ev.id]
    assert drain(sub, path, 1, attempts=2) == []


def test_failed_publish_after_commit_is_recovered_by_the_sweeper(deps):
    sub, path = subscribe(deps)
    ev = _emit(deps, NOW, publisher=FlakyPublisher(deps.publisher, fail=True))
    record = _record(deps)
    assert record["published"] is False and record["attempts"] == 1
    # Too young: the sweeper leaves it to the request that is still publishing.
    assert sweep(deps.db, deps.publisher, deps.tasks, now=NOW + dt.timedelta(seconds=2)) == 0
    assert sweep(deps.db, deps.publisher, deps.tasks, now=NOW + dt.timedelta(seconds=30)) == 1
    assert _record(deps)["published"] is True
    assert [e["id"] for m in drain(sub, path, 1) for e in m["events"]] == [ev.id]


def test_refused_change_leaves_no_event(deps):
    ref = deps.db.collection("things").document("a")

    def fail(uow):
        uow.emit("thing.happened", tenant="t1", data={})
        uow.set(ref, {"x": 1})
        raise InvalidRequest("domain refused")
    with pytest.raises(InvalidRequest):
        run_unit(deps, fail)
    assert list(deps.db.collection("events").stream()) == []
    assert list(deps.db.collection(OUTBOX).stream()) == []
    assert not ref.get().exists
