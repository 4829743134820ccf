"""Outbound delivery: fan-out, attempts on the retry schedule, the attempts log, the sweeper.

Real pieces only: the Firestore and Cloud Tasks emulators (Cloud Tasks dispatches each attempt to
the in-process gateway), the loopback receiver ``infra/local/webhook_sim`` speaking HTTP, the
endpoints service creating real (sealed) signing secrets. Signatures are checked with the PyPI
``standardwebhooks`` receiver, never with our own code. The retry schedule is compressed to
[0, 0.5, 0.5, 1, 1] seconds through ``WebhookSettings``.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from standardwebhooks.webhooks import Webhook

from bench.harness import RpcCounter
from infra.local.simserver import start_in_thread
from infra.local.stack import free_port
from infra.local.webhook_sim import WebhookSimServer
from shared.notify.outbound import COLLECTION as OUTBOUND
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, delivery, endpoints, fanout, sweeper_job
from shared.webhooks.deliveries import SLOTS
from tests.support.polling import wait_for
from tests.support.webhooks import new_owner, start_hooks


@pytest.fixture
def hooks(deps):
    h = start_hooks(deps)
    yield h
    h.sim.stop()


def _verify(secret: str, request: dict) -> dict:
    """The reference receiver's verdict on one received request (raises when invalid)."""
    return Webhook(secret).verify(request["body"], request["headers"])


def _status(hooks, event_id, endpoint_id, *wanted, timeout=20):
    return wait_for(lambda: (d := hooks.delivery(event_id, endpoint_id)) and d["status"] in wanted and d,
                    timeout=timeout)


def _held_slots(deps, endpoint_id):
    return [s.id for s in deps.db.collection(SLOTS).stream()
            if s.id.startswith(endpoint_id + ":") and s.get("holder")]


# ---- fan-out --------------------------------------------------------------------------------
def test_fan_out_creates_one_delivery_per_subscribed_endpoint_and_a_redelivery_nothing(hooks):
    a, _ = hooks.endpoint("/a", ["probe.*"])
    b, _ = hooks.endpoint("/b", ["probe.created"])
    c, _ = hooks.endpoint("/c", ["topup.*"])                 # not subscribed
    d, _ = hooks.endpoint("/d", ["*"], owner=new_owner())     # another owner
    live, _ = hooks.endpoint("/live", ["*"])
    run_unit(hooks.deps, lambda uow: endpoints.set_disabled(    # disabled: gets nothing
        uow, endpoints.ref(uow.db, live), uow.get(endpoints.ref(uow.db, live)).to_dict(), "manual"))
    event = hooks.emit("probe.created")
    fanout.fan_out(hooks.deps, hooks.emit(owner=new_owner()))  # warm-up: clients

    with RpcCounter() as rpcs:
        assert fanout.fan_out(hooks.deps, event) == 2
    # the endpoints query, one commit (deliveries + outbox record), the record marked done
    assert rpcs.counts == {"run_query": 1, "commit": 2}, rpcs.counts
    for endpoint_id in (a, b):
        doc = hooks.delivery(event.id, endpoint_id)
        assert doc["run"] == 1 and doc["attempt_count"] == 0 and doc["owner"] == hooks.owner
        assert doc["id"] == deliveries.delivery_id(event.id, endpoint_id)
        assert doc["expires_at"] > doc["created_at"]
    assert hooks.delivery(event.id, c) is None and hooks.delivery(event.id, d) is None
    assert hooks.delivery(event.id, live) is None
    with RpcCounter() as again:
        assert fanout.fan_out(hooks.deps, event) == 0  # a Pub/Sub redelivery
    assert again.counts == {"run_query": 1, "commit": 1, "batch_get_documents": 1}, again.counts
    assert fanout.fan_out(hooks.deps, event) == 0
    assert len(list(hooks.deps.db.collection(deliveries.COLLECTION).stream())) == 2


def test_an_event_nobody_subscribed_to_costs_one_query_and_no_write(hooks):
    hooks.endpoint("/a", ["topup.*"])
    fanout.fan_out(hooks.deps, hooks.emit("probe.created"))  # warm-up (clients)
    event = hooks.emit("probe.created")
    with RpcCounter() as rpcs:
        assert fanout.fan_out(hooks.deps, event) == 0
    assert rpcs.counts == {"run_query": 1}, rpcs.counts


def test_internal_private_oversized_and_test_events_are_never_fanned_out(hooks):
    hooks.endpoint("/a", ["*"])
    hooks.configure(max_payload_bytes=600)
    internal = hooks.emit("probe.created", owner="platform")
    test_event = _event_of_type(hooks, "webhook_endpoint.test")
    with RpcCounter() as rpcs:
        assert fanout.fan_out(hooks.deps, internal) == 0
        assert fanout.fan_out(hooks.deps, _private(hooks)) == 0
        assert fanout.fan_out(hooks.deps, test_event) == 0
        assert fanout.fan_out(hooks.deps, _event_of_type(hooks, "no_such.type")) == 0
    assert rpcs.total == 0, rpcs.counts  # decided without reading anything
    big = hooks.emit("probe.created", note="x" * 500)
    assert len(deliveries.event_body(big.model_dump())) > 600
    assert fanout.fan_out(hooks.deps, big) == 0
    assert list(hooks.deps.db.collection(deliveries.COLLECTION).stream()) == []
    small = hooks.emit("probe.created")
    assert fanout.fan_out(hooks.deps, small) == 1


def _event_of_type(hooks, type_):
    from shared.platform.outbox import new_event
    return new_event(type=type_, tenant=hooks.owner, now=hooks.deps.clock.now(), data={"object": {}})


def _private(hooks):
    from shared.platform.outbox import new_event
    return new_event(type="outbound_message.queued", tenant=hooks.owner, now=hooks.deps.clock.now(),
                     data={"message_id": "msg_1", "channel": "email"})


def test_consume_reads_the_outbox_message_of_a_commit(hooks):
    import base64

    from cloudevents.http import CloudEvent

    from shared.platform.outbox import OutboxRecord, encode_batch
    a, _ = hooks.endpoint("/a", ["probe.*"])
    first, second = hooks.emit("probe.created"), hooks.emit("probe.completed")
    data, _ = encode_batch(OutboxRecord("obx_1", [first, second], [], "events", hooks.deps.clock.now()))
    cloud_event = CloudEvent({"id": "m1", "source": "//pubsub", "type": "google.cloud.pubsub.topic.v1.messagePublished"},
                             {"message": {"data": base64.b64encode(data).decode(), "messageId": "m1"}})
    fanout.consume(cloud_event)
    assert hooks.delivery(first.id, a) and hooks.delivery(second.id, a)


# ---- attempts -------------------------------------------------------------------------------
def test_receiver_down_for_a_stretch_then_up_is_delivered_once_attempts_in_order(deps, inprocess_gateway):
    port = free_port()
    hooks = start_hooks(deps)
    hooks.sim.stop()  # nothing listens on `port` yet: connection refused
    hooks.configure(retry_schedule_seconds=[0, 0.5, 0.5, 1, 1, 1, 1])
    url = f"http://127.0.0.1:{port}/hooks/a"
    endpoint_id, secret = hooks.endpoint("", url=url)
    event = hooks.emit("probe.created")
    assert fanout.fan_out(deps, event) == 1
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    wait_for(lambda: len(hooks.attempts(d_id)) >= 2, timeout=20)
    assert hooks.endpoint_doc(endpoint_id)["failing_since"] is not None

    sim, _ = start_in_thread(WebhookSimServer(port), "webhook-sim")
    try:
        done = _status(hooks, event.id, endpoint_id, "succeeded")
        [received] = sim.wait_for(1, "/hooks/a")
        time.sleep(1.5)  # nothing else arrives: no duplicate, no late retry
        assert len(sim.inbox("/hooks/a")) == 1
    finally:
        sim.stop()
    assert received["headers"]["webhook-id"] == event.id
    assert received["headers"]["user-agent"].startswith("Payloom-Webhooks/1")
    assert json.loads(received["body"]) == {"id": event.id, "object": "event", "type": "probe.created",
                                            "created": event.created, "livemode": False,
                                            "data": event.data}
    assert received["body"].encode() == deliveries.event_body(event.model_dump())
    assert _verify(secret, received)["id"] == event.id

    attempts = hooks.attempts(d_id)
    assert [a["n"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert [a["outcome"] for a in attempts] == ["failed"] * (len(attempts) - 1) + ["succeeded"]
    assert all(a["error"].startswith("connection_error") and a["status_code"] is None
               for a in attempts[:-1])
    assert attempts[-1]["status_code"] == 200 and attempts[-1]["response_body"] == '{"received":true}'
    for before, after in zip(attempts, attempts[1:]):
        assert after["created_at"] >= before["next_attempt_at"] - dt.timedelta(milliseconds=50)
    assert done["attempt_count"] == len(attempts) and done["run"] == 1
    assert done["last_status_code"] == 200 and done["succeeded_at"] is not None
    ep = hooks.endpoint_doc(endpoint_id)
    assert ep["failing_since"] is None and ep["last_success_at"] is not None
    assert _held_slots(deps, endpoint_id) == []


def test_410_disables_the_endpoint_and_stops(hooks):
    endpoint_id, _ = hooks.endpoint("/gone")
    hooks.sim.configure("/gone", mode="gone")
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "gone"
    doc = hooks.delivery(event.id, endpoint_id)
    assert doc["status"] == "failed" and doc["reason"] == "gone" and doc["last_status_code"] == 410
    ep = hooks.endpoint_doc(endpoint_id)
    assert ep["status"] == "disabled" and ep["disabled_reason"] == "gone"
    [att] = hooks.attempts(d_id)
    assert att["outcome"] == "gone" and att["next_attempt_at"] is None
    announced = [s.to_dict() for s in hooks.deps.db.collection(EVENTS).stream()
                 if s.get("type") == "webhook_endpoint.disabled"]
    assert [e["data"]["object"]["disabled_reason"] for e in announced] == ["gone"]
    later = hooks.emit()
    assert fanout.fan_out(hooks.deps, later) == 0  # a disabled endpoint subscribes to nothing


@pytest.mark.parametrize("status", [429, 502, 504])
def test_retry_after_is_honoured_on_429_502_504(hooks, status):
    endpoint_id, _ = hooks.endpoint("/slow")
    if status == 429:
        hooks.sim.configure("/slow", mode="throttle", retry_after="3", fail_times=1)
    else:
        hooks.sim.configure("/slow", mode="fail", status=status, retry_after="3", fail_times=1)
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "retrying"  # the schedule says 0.5 s
    [att] = hooks.attempts(d_id)
    assert att["status_code"] == status and att["outcome"] == "failed"
    assert (att["next_attempt_at"] - att["finished_at"]).total_seconds() >= 3 - 0.01
    doc = hooks.delivery(event.id, endpoint_id)
    assert doc["status"] == "retrying" and doc["next_attempt_at"] == att["next_attempt_at"]
    assert delivery.attempt(hooks.deps, d_id, 2, 2) == "stale"  # no such run
    assert delivery.attempt(hooks.deps, d_id, 1, 3) == "stale"  # not the attempt it waits for


def test_retry_after_http_date_and_cap_and_other_statuses_ignore_it(hooks):
    import email.utils
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert delivery._retry_after(later, now) == pytest.approx(90)
    assert delivery._retry_after("7", now) == 7 and delivery._retry_after("soon", now) is None
    assert delivery._retry_after(None, now) is None
    hooks.configure(retry_after_cap_seconds=2)
    endpoint_id, _ = hooks.endpoint("/cap")
    hooks.sim.configure("/cap", mode="throttle", retry_after="86400", fail_times=1)
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    delivery.attempt(hooks.deps, d_id, 1, 1)
    [att] = hooks.attempts(d_id)
    assert 2 - 0.01 <= (att["next_attempt_at"] - att["finished_at"]).total_seconds() <= 2.5
    endpoint2, _ = hooks.endpoint("/plain500")
    hooks.sim.configure("/plain500", mode="fail", status=500, retry_after="60", fail_times=1)
    event2 = hooks.emit("probe.completed")
    fanout.fan_out(hooks.deps, event2)
    d2 = deliveries.delivery_id(event2.id, endpoint2)
    delivery.attempt(hooks.deps, d2, 1, 1)
    [att2] = hooks.attempts(d2)
    assert (att2["next_attempt_at"] - att2["finished_at"]).total_seconds() < 1  # schedule: 0.5 s


def test_dead_lettered_after_the_last_attempt(hooks, inprocess_gateway):
    hooks.configure(retry_schedule_seconds=[0, 0.3, 0.3])
    endpoint_id, _ = hooks.endpoint("/down")
    hooks.sim.configure("/down", mode="fail", status=500)
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    doc = _status(hooks, event.id, endpoint_id, "dead_lettered")
    assert doc["attempt_count"] == 3 and doc["reason"] == "attempts_exhausted"
    assert doc["last_status_code"] == 500 and doc["last_error"] == "HTTP 500"
    time.sleep(1.0)
    attempts = hooks.attempts(doc["id"])
    assert [(a["n"], a["outcome"], a["status_code"]) for a in attempts] == [
        (1, "failed", 500), (2, "failed", 500), (3, "failed", 500)]
    assert attempts[-1]["next_attempt_at"] is None
    assert len(hooks.sim.inbox("/down")) == 3
    assert delivery.attempt(hooks.deps, doc["id"], 1, 4) == "already_dead_lettered"


def test_redirects_timeouts_and_4xx_are_failures_and_the_response_is_truncated(hooks):
    hooks.configure(request_timeout_seconds=0.5, response_body_limit=16)
    cases = {"/redir": dict(mode="redirect"), "/hang": dict(mode="hang", hang_seconds=2),
             "/bad": dict(mode="fail", status=400, body="no thanks " * 20)}
    made = {}
    for path, cfg in cases.items():
        endpoint_id, _ = hooks.endpoint(path)
        hooks.sim.configure(path, **cfg)
        event = hooks.emit()
        fanout.fan_out(hooks.deps, event)
        made[path] = deliveries.delivery_id(event.id, endpoint_id)
        assert delivery.attempt(hooks.deps, made[path], 1, 1) == "retrying", path
    [redir] = hooks.attempts(made["/redir"])
    assert redir["status_code"] == 302 and "redirects are not followed" in redir["error"]
    assert hooks.sim.inbox("/redirect-target") == []
    [hang] = hooks.attempts(made["/hang"])
    assert hang["status_code"] is None and hang["error"].startswith("timeout") and hang["latency_ms"] < 1500
    [bad] = hooks.attempts(made["/bad"])
    assert bad["status_code"] == 400 and bad["response_body"] == "no thanks no tha"


def test_dns_rebinding_at_delivery_is_refused_without_a_request(hooks):
    answers = {"hooks.example.com": ["93.184.216.34"]}
    hooks.deps.extras["webhooks.resolver"] = lambda host, port: answers[host]
    endpoint_id, _ = hooks.endpoint("", url="https://hooks.example.com/in")
    answers["hooks.example.com"] = ["10.0.0.7"]  # re-pointed after creation
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "retrying"
    [att] = hooks.attempts(d_id)
    assert att["outcome"] == "unsafe" and "private" in att["error"] and att["status_code"] is None


def test_failing_for_the_disable_window_disables_and_emails_the_owner(hooks):
    hooks.configure(disable_after_seconds=1)
    owner = hooks.owner
    hooks.deps.db.collection("users").document(owner).set({"id": owner, "email": "ops@merchant.test"})
    endpoint_id, _ = hooks.endpoint("/broken")
    hooks.sim.configure("/broken", mode="fail", status=503)
    first, second = hooks.emit(), hooks.emit()
    fanout.fan_out(hooks.deps, first)
    fanout.fan_out(hooks.deps, second)
    assert delivery.attempt(hooks.deps, deliveries.delivery_id(first.id, endpoint_id), 1, 1) == "retrying"
    since = hooks.endpoint_doc(endpoint_id)["failing_since"]
    assert since is not None and hooks.endpoint_doc(endpoint_id)["status"] == "enabled"
    time.sleep(1.1)
    d2 = deliveries.delivery_id(second.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d2, 1, 1) == "endpoint_disabled"
    ep = hooks.endpoint_doc(endpoint_id)
    assert ep["status"] == "disabled" and ep["disabled_reason"] == "failing"
    assert ep["failing_since"] == since  # set once, at the first failure
    assert hooks.delivery(second.id, endpoint_id)["status"] == "canceled"
    [mail] = [s.to_dict() for s in hooks.deps.db.collection(OUTBOUND).stream()]
    assert mail["kind"] == "webhook_endpoint_disabled" and mail["user_id"] == owner
    # the first delivery's scheduled retry finds the endpoint disabled: canceled, not sent
    assert delivery.attempt(hooks.deps, deliveries.delivery_id(first.id, endpoint_id), 1, 2) == "canceled"
    assert len(hooks.sim.inbox("/broken")) == 2


def test_a_failure_on_our_side_is_retried_but_not_held_against_the_endpoint(hooks):
    from shared.adapters.kms import LocalKms
    from shared.platform.secrets_at_rest import Envelope
    endpoint_id, _ = hooks.endpoint("/fine")
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    hooks.deps.extras["platform.envelope"] = Envelope(LocalKms.generate())  # the wrong key ring
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "retrying"
    [att] = hooks.attempts(d_id)
    assert att["error"].startswith("internal_error") and att["status_code"] is None
    assert hooks.endpoint_doc(endpoint_id)["failing_since"] is None
    assert hooks.sim.inbox() == [] and _held_slots(hooks.deps, endpoint_id) == []


def test_a_success_writes_the_endpoint_only_when_its_health_changes(hooks):
    endpoint_id, _ = hooks.endpoint("/ok")
    ids = []
    for _ in range(3):
        event = hooks.emit()
        fanout.fan_out(hooks.deps, event)
        ids.append(deliveries.delivery_id(event.id, endpoint_id))
    assert delivery.attempt(hooks.deps, ids[0], 1, 1) == "succeeded"
    ref = endpoints.ref(hooks.deps.db, endpoint_id)
    after_first = ref.get().update_time
    assert delivery.attempt(hooks.deps, ids[1], 1, 1) == "succeeded"
    assert delivery.attempt(hooks.deps, ids[2], 1, 1) == "succeeded"
    assert ref.get().update_time == after_first


def test_a_successful_attempt_costs_four_round_trips_and_a_failed_one_five(hooks):
    endpoint_id, _ = hooks.endpoint("/rt")
    events = [hooks.emit() for _ in range(3)]
    for event in events:
        fanout.fan_out(hooks.deps, event)
    ids = [deliveries.delivery_id(e.id, endpoint_id) for e in events]
    delivery.attempt(hooks.deps, ids[0], 1, 1)  # warm-up: clients, data-key cache
    with RpcCounter() as ok:
        assert delivery.attempt(hooks.deps, ids[1], 1, 1, endpoint_id=endpoint_id,
                                event_id=events[1].id) == "succeeded"
    assert ok.counts == {"batch_get_documents": 2, "commit": 2}, ok.counts
    hooks.sim.configure("/rt", mode="fail", status=500)
    with RpcCounter() as failed:
        assert delivery.attempt(hooks.deps, ids[2], 1, 1, endpoint_id=endpoint_id,
                                event_id=events[2].id) == "retrying"
    assert failed.total == 5, failed.counts


# ---- duplicates, crashes, the sweeper ---------------------------------------------------------
def test_duplicate_tasks_and_duplicate_events_send_once(hooks):
    endpoint_id, _ = hooks.endpoint("/dup")
    event = hooks.emit()
    results = []
    barrier = threading.Barrier(4)

    def fan():
        barrier.wait()
        results.append(fanout.fan_out(hooks.deps, event))
    threads = [threading.Thread(target=fan) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [0, 0, 0, 1]
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    outcomes, barrier = [], threading.Barrier(4)

    def go():
        barrier.wait()
        outcomes.append(delivery.attempt(hooks.deps, d_id, 1, 1))
    threads = [threading.Thread(target=go) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("succeeded") == 1, outcomes
    assert set(outcomes) <= {"succeeded", "busy", "already_succeeded", "stale"}, outcomes
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "already_succeeded"
    assert len(hooks.sim.inbox("/dup")) == 1 and len(hooks.attempts(d_id)) == 1


def test_a_forged_task_for_another_endpoint_sends_nothing(hooks):
    endpoint_id, _ = hooks.endpoint("/mine")
    other, _ = hooks.endpoint("/other", owner=new_owner())
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1, endpoint_id=other, event_id=event.id) == "mismatch"
    assert delivery.attempt(hooks.deps, "whd_nope", 1, 1, endpoint_id=other, event_id=event.id) == "missing"
    assert hooks.sim.inbox() == []


def _claim_only(hooks, d_id, endpoint_id, event_id, run=1, n=1):
    """The first half of an attempt: what a worker that dies right after its claim leaves."""
    settings = hooks.settings
    claimed = run_unit(hooks.deps, lambda uow: delivery._claim(uow, settings, d_id, endpoint_id,
                                                               event_id, run, n, 0))
    assert isinstance(claimed, tuple), claimed
    return claimed


def test_a_crash_between_claim_and_record_is_recovered_by_the_sweeper(hooks, inprocess_gateway):
    hooks.configure(lease_seconds=1.0)
    endpoint_id, secret = hooks.endpoint("/crash")
    event = hooks.emit()
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    # the fan-out's own task would run attempt 1 at once: create the delivery and claim it here
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                  now=hooks.deps.clock.now(), settings=hooks.settings)
    deliveries.ref(hooks.deps.db, d_id).create(doc)
    _claim_only(hooks, d_id, endpoint_id, event.id)
    assert hooks.delivery(event.id, endpoint_id)["status"] == "sending"
    assert len(_held_slots(hooks.deps, endpoint_id)) == 1
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "busy"  # a duplicate while the lease holds
    assert sweeper_job.sweep(hooks.deps) == (0, 0)
    time.sleep(1.1)
    assert sweeper_job.sweep(hooks.deps) == (1, 0)
    assert sweeper_job.sweep(hooks.deps) == (0, 0)
    done = _status(hooks, event.id, endpoint_id, "succeeded")
    attempts = hooks.attempts(d_id)
    assert [(a["n"], a["outcome"]) for a in attempts] == [(1, "lost"), (2, "succeeded")]
    assert done["attempt_count"] == 2
    [received] = hooks.sim.inbox("/crash")
    assert _verify(secret, received)["id"] == event.id
    assert _held_slots(hooks.deps, endpoint_id) == []


def test_a_crash_is_also_recovered_when_cloud_tasks_runs_the_same_task_again(hooks, inprocess_gateway):
    hooks.configure(lease_seconds=0.5)
    endpoint_id, _ = hooks.endpoint("/again")
    event = hooks.emit()
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                  now=hooks.deps.clock.now(), settings=hooks.settings)
    deliveries.ref(hooks.deps.db, d_id).create(doc)
    _claim_only(hooks, d_id, endpoint_id, event.id)
    time.sleep(0.6)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "lost"   # Cloud Tasks' own retry
    _status(hooks, event.id, endpoint_id, "succeeded")
    assert len(hooks.sim.inbox("/again")) == 1


def test_a_record_after_the_lease_was_lost_writes_only_its_attempt(hooks):
    hooks.configure(lease_seconds=0.3)
    endpoint_id, _ = hooks.endpoint("/late")
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    doc, endpoint, event_doc, k = _claim_only(hooks, d_id, endpoint_id, event.id)
    time.sleep(0.4)
    assert sweeper_job.sweep(hooks.deps)[0] == 1          # attempt 1 recorded as lost
    sent = delivery._send(hooks.deps, hooks.settings, endpoint, event_doc)  # ...but it did arrive
    before = hooks.delivery(event.id, endpoint_id)
    outcome = run_unit(hooks.deps, lambda uow: delivery._record(uow, hooks.settings, doc, endpoint,
                                                                k, 1, 1, sent))
    assert outcome == "superseded"
    after = hooks.delivery(event.id, endpoint_id)
    assert {k: v for k, v in after.items()} == before  # the delivery did not change
    assert sorted(a["outcome"] for a in hooks.attempts(d_id)) == ["lost", "succeeded"]


def test_the_sweeper_requeues_a_delivery_whose_task_was_lost(hooks, inprocess_gateway):
    endpoint_id, _ = hooks.endpoint("/lost-task")
    event = hooks.emit()
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                  now=hooks.deps.clock.now() - dt.timedelta(minutes=3),
                                  settings=hooks.settings)
    deliveries.ref(hooks.deps.db, d_id).create(doc)  # no task was ever enqueued
    assert sweeper_job.sweep(hooks.deps) == (0, 1)
    _status(hooks, event.id, endpoint_id, "succeeded")
    assert delivery.attempt(hooks.deps, d_id, 1, 1, requeues=0) == "already_succeeded"
    assert len(hooks.sim.inbox("/lost-task")) == 1
    assert sweeper_job.sweep(hooks.deps) == (0, 0)


def test_an_old_task_of_a_requeued_attempt_is_stale(hooks):
    endpoint_id, _ = hooks.endpoint("/old")
    event = hooks.emit()
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                  now=hooks.deps.clock.now() - dt.timedelta(minutes=3),
                                  settings=hooks.settings)
    deliveries.ref(hooks.deps.db, d_id).create(doc)
    assert sweeper_job.sweep(hooks.deps) == (0, 1)
    assert delivery.attempt(hooks.deps, d_id, 1, 1, requeues=0) == "stale"
    assert delivery.attempt(hooks.deps, d_id, 1, 1, requeues=1) == "succeeded"


def test_a_deleted_endpoint_or_event_ends_the_delivery(hooks):
    endpoint_id, _ = hooks.endpoint("/soon-gone")
    event = hooks.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    run_unit(hooks.deps, lambda uow: endpoints.delete(uow, hooks.principal(), endpoint_id))
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "endpoint_deleted"
    assert hooks.delivery(event.id, endpoint_id)["status"] == "canceled"
    other, _ = hooks.endpoint("/no-event")
    event2 = hooks.emit()
    fanout.fan_out(hooks.deps, event2)
    hooks.deps.db.collection(EVENTS).document(event2.id).delete()
    d2 = deliveries.delivery_id(event2.id, other)
    assert delivery.attempt(hooks.deps, d2, 1, 1) == "event_missing"
    assert hooks.delivery(event2.id, other)["status"] == "failed"
    assert hooks.sim.inbox() == []


# ---- concurrency --------------------------------------------------------------------------------
def test_a_burst_fans_out_and_delivers_every_event_once_per_endpoint(hooks, inprocess_gateway):
    """Events committed in a burst, fanned out from 4 consumers at once (Pub/Sub pushes in
    parallel), each delivered exactly once to each of 3 endpoints through Cloud Tasks."""
    n_events = 150
    paths = ["/burst/a", "/burst/b", "/burst/c"]
    for path in paths:
        hooks.endpoint(path)
    events = [hooks.emit() for _ in range(n_events)]
    started = time.time()
    created, lock = [], threading.Lock()

    def consumer(chunk):
        for event in chunk:
            made = fanout.fan_out(hooks.deps, event)
            with lock:
                created.append(made)
    threads = [threading.Thread(target=consumer, args=(events[i::4],)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    fanned = time.time()
    assert sum(created) == n_events * len(paths)
    for event in events[:10]:  # a redelivered slice creates nothing
        assert fanout.fan_out(hooks.deps, event) == 0
    for path in paths:
        hooks.sim.wait_for(n_events, path, timeout=120)
    done = time.time()
    time.sleep(1)
    expected = sorted(e.id for e in events)
    for path in paths:
        got = sorted(r["headers"]["webhook-id"] for r in hooks.sim.inbox(path))
        assert got == expected, path  # every event, none twice
    statuses = {s.get("status") for s in hooks.deps.db.collection(deliveries.COLLECTION).stream()}
    assert statuses == {"succeeded"}
    print(f"\nburst: {n_events} events x {len(paths)} endpoints: fan-out {fanned - started:.1f} s "
          f"({n_events / (fanned - started):.0f} events/s), all delivered after {done - started:.1f} s "
          f"({n_events * len(paths) / (done - started):.0f} deliveries/s)")


def test_slots_bound_the_attempts_in_flight_per_endpoint(hooks, inprocess_gateway):
    hooks.configure(endpoint_concurrency=2, request_timeout_seconds=5, defer_seconds=0.5)
    endpoint_id, _ = hooks.endpoint("/narrow")
    hooks.sim.configure("/narrow", mode="hang", hang_seconds=1.0)
    events = [hooks.emit() for _ in range(5)]
    ids = []
    for event in events:
        doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                      now=hooks.deps.clock.now(), settings=hooks.settings)
        deliveries.ref(hooks.deps.db, doc["id"]).create(doc)  # no task: the threads below run them
        ids.append(doc["id"])
    outcomes, barrier = {}, threading.Barrier(5)

    def go(d_id):
        barrier.wait()
        outcomes[d_id] = delivery.attempt(hooks.deps, d_id, 1, 1)
    threads = [threading.Thread(target=go, args=(d,)) for d in ids]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes.values()) == ["deferred"] * 3 + ["succeeded"] * 2, outcomes
    # the deferred attempts come back as new tasks and are delivered, still two at a time
    for event in events:
        _status(hooks, event.id, endpoint_id, "succeeded", timeout=30)
    inbox = hooks.sim.inbox("/narrow")
    assert len(inbox) == 5
    spans = [(r["received_at"], r["answered_at"]) for r in inbox]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2, spans
    assert _held_slots(hooks.deps, endpoint_id) == []


def test_a_slow_endpoint_does_not_delay_another(hooks, inprocess_gateway):
    """Two endpoints of one owner; one hangs 3 s (timeout 1 s). Both attempts are Cloud Tasks of
    the same queue: the fast endpoint's request arrives long before the slow one times out."""
    hooks.configure(request_timeout_seconds=1.0)
    slow, _ = hooks.endpoint("/slow", ["probe.*"])
    fast, _ = hooks.endpoint("/fast", ["probe.*"])
    hooks.sim.configure("/slow", mode="hang", hang_seconds=3)
    events = [hooks.emit() for _ in range(3)]
    started = time.time()
    for event in events:
        fanout.fan_out(hooks.deps, event)
    for event in events:
        _status(hooks, event.id, fast, "succeeded", timeout=20)
    fast_done = max(r["answered_at"] for r in hooks.sim.inbox("/fast"))
    assert fast_done - started < 1.5, fast_done - started
    slow_first = wait_for(lambda: [a for a in hooks.attempts(deliveries.delivery_id(events[0].id, slow))
                                   if a["outcome"] == "failed"], timeout=20)
    assert slow_first[0]["error"].startswith("timeout")
