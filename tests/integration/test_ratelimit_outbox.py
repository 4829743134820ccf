"""Rate limits and the outbox against the Firestore and Pub/Sub emulators."""
import datetime as dt
import json

import pytest
from google.cloud import firestore, pubsub_v1

from shared.platform.errors import RateLimited
from shared.platform.outbox import publish_events, record_event, sweep
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


def _commit_event(deps, now):
    batch = deps.db.batch()
    ev = record_event(deps.db, batch, type="thing.happened", tenant="t1", data={"n": 1}, now=now)
    batch.commit()
    return ev


def test_event_is_written_with_the_change_and_published_once(deps):
    sub, path = subscribe(deps)
    ev = _commit_event(deps, NOW)
    assert publish_events(deps.db, deps.publisher, [ev]) == 1
    doc = deps.db.collection("events").document(ev.id).get().to_dict()
    assert doc["published"] is True and doc["publish_attempts"] == 1
    assert sweep(deps.db, deps.publisher, now=NOW + dt.timedelta(minutes=5)) == 0
    msgs = drain(sub, path, 1)
    assert [m["id"] for m in msgs] == [ev.id]
    assert drain(sub, path, 1, attempts=2) == []


def test_failed_publish_after_commit_is_recovered_by_the_sweeper(deps):
    sub, path = subscribe(deps)
    ev = _commit_event(deps, NOW)
    flaky = FlakyPublisher(deps.publisher, fail=True)
    assert publish_events(deps.db, flaky, [ev]) == 0
    doc = deps.db.collection("events").document(ev.id).get().to_dict()
    assert doc["published"] is False and doc["publish_attempts"] == 1
    # Too young: the sweeper leaves it to the request that is still publishing.
    assert sweep(deps.db, deps.publisher, now=NOW + dt.timedelta(seconds=2)) == 0
    assert sweep(deps.db, deps.publisher, now=NOW + dt.timedelta(seconds=30)) == 1
    assert deps.db.collection("events").document(ev.id).get().get("published") is True
    assert [m["id"] for m in drain(sub, path, 1)] == [ev.id]


def test_rolled_back_change_leaves_no_event(deps):
    ref = deps.db.collection("things").document("a")

    @firestore.transactional
    def fail(txn):
        record_event(deps.db, txn, type="thing.happened", tenant="t1", data={}, now=NOW)
        txn.set(ref, {"x": 1})
        raise ValueError("domain refused")
    with pytest.raises(ValueError):
        fail(deps.db.transaction())
    assert list(deps.db.collection("events").stream()) == []
    assert not ref.get().exists
