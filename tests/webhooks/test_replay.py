"""Resend, recover, the test event, and the deliveries/attempts API (/v1/webhook_endpoints).

Through the ``webhooks`` function (functions-framework's test client) with real users' tokens;
attempts run as Cloud Tasks dispatched to the in-process gateway and land in the loopback
receiver; signatures are checked with the PyPI ``standardwebhooks`` receiver.
"""
from __future__ import annotations

import datetime as dt

import pytest
from standardwebhooks.webhooks import Webhook

from shared.platform.clock import rfc3339
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, delivery, endpoints, fanout
from tests.support.identity import auth_headers, create_user_with_token
from tests.support.polling import wait_for
from tests.support.webhooks import start_hooks

BASE = "/v1/webhook_endpoints"


@pytest.fixture
def hooks(deps):
    h = start_hooks(deps)
    yield h
    h.sim.stop()


@pytest.fixture
def api(hooks, function_client):
    return function_client("webhooks")


class Merchant:
    """A signed-in user with the HTTP client of the webhooks function."""

    def __init__(self, hooks, api):
        self.hooks, self.api = hooks, api
        self.id, token = create_user_with_token(hooks.deps)
        self.headers = auth_headers(token)

    def post(self, path, json=None, **headers):
        return self.api.post(BASE + path, json=json, headers={**self.headers, **headers})

    def get(self, path, **params):
        return self.api.get(BASE + path, query_string=params, headers=self.headers)

    def endpoint(self, path, events=("probe.*",)):
        resp = self.post("", {"url": self.hooks.url(path), "enabled_events": list(events)})
        assert resp.status_code == 201, resp.get_json()
        body = resp.get_json()
        return body["id"], body["secret"]

    def emit(self, type_="probe.created"):
        return self.hooks.emit(type_, owner=self.id)


@pytest.fixture
def merchant(hooks, api):
    return Merchant(hooks, api)


@pytest.fixture
def stranger(hooks, api):
    return Merchant(hooks, api)


def _delivered(hooks, event_id, endpoint_id, status="succeeded", run=1, timeout=20):
    return wait_for(lambda: (d := hooks.delivery(event_id, endpoint_id)) and d["status"] == status
                    and d["run"] == run and d, timeout=timeout)


def test_resend_keeps_the_webhook_id_and_starts_a_new_run(merchant, hooks, inprocess_gateway):
    endpoint_id, secret = merchant.endpoint("/shop")
    event = merchant.emit()
    fanout.fan_out(hooks.deps, event)
    _delivered(hooks, event.id, endpoint_id)

    resp = merchant.post(f"/{endpoint_id}/resend", {"event": event.id})
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["object"] == "webhook_delivery" and body["run"] == 2 and body["status"] == "pending"
    assert body["event"] == event.id and body["endpoint"] == endpoint_id
    _delivered(hooks, event.id, endpoint_id, run=2)
    first, second = hooks.sim.wait_for(2, "/shop")
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.id
    assert first["body"] == second["body"]
    for request in (first, second):
        assert Webhook(secret).verify(request["body"], request["headers"])["id"] == event.id
    attempts = merchant.get(f"/{endpoint_id}/attempts").get_json()["data"]
    assert [(a["run"], a["attempt"], a["outcome"]) for a in attempts] == [
        (2, 1, "succeeded"), (1, 1, "succeeded")]  # newest first


def test_resend_sends_an_event_the_endpoint_never_got(merchant, hooks, inprocess_gateway):
    endpoint_id, _ = merchant.endpoint("/narrow", ["topup.*"])
    event = merchant.emit("probe.created")  # not subscribed: fan-out skips it
    assert fanout.fan_out(hooks.deps, event) == 0
    resp = merchant.post(f"/{endpoint_id}/resend", {"event": event.id})
    assert resp.status_code == 202 and resp.get_json()["run"] == 1
    _delivered(hooks, event.id, endpoint_id)
    [got] = hooks.sim.inbox("/narrow")
    assert got["headers"]["webhook-id"] == event.id


def test_resend_refuses_what_is_not_the_callers(merchant, stranger, hooks):
    endpoint_id, _ = merchant.endpoint("/mine")
    theirs_endpoint, _ = stranger.endpoint("/theirs")
    theirs_event, internal = stranger.emit(), hooks.emit(owner="platform")
    mine = merchant.emit()
    cases = [(f"/{endpoint_id}/resend", {"event": theirs_event.id}, 404, "event"),
             (f"/{endpoint_id}/resend", {"event": internal.id}, 404, "event"),
             (f"/{endpoint_id}/resend", {"event": "evt_doesnotexist000000"}, 404, "event"),
             (f"/{theirs_endpoint}/resend", {"event": mine.id}, 404, "endpoint_id"),
             (f"/{endpoint_id}/resend", {"event": "a/b"}, 400, "event"),
             (f"/{endpoint_id}/resend", {"event": mine.id, "extra": 1}, 400, "extra"),
             (f"/{endpoint_id}/resend", {}, 400, "event")]
    for path, body, status, param in cases:
        resp = merchant.post(path, body)
        assert resp.status_code == status, (path, body, resp.get_json())
        assert resp.get_json()["error"]["param"] == param, resp.get_json()
    assert merchant.post(f"/{endpoint_id}/disable").status_code == 200
    resp = merchant.post(f"/{endpoint_id}/resend", {"event": mine.id})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "endpoint_disabled"
    assert list(hooks.deps.db.collection(deliveries.COLLECTION).stream()) == []


def _delivery_in(hooks, merchant, endpoint_id, status, created_at):
    """A delivery of a fresh event in ``status``, created at ``created_at`` (as if long ago)."""
    event = merchant.emit()
    doc = deliveries.new_delivery(event=event.model_dump(), endpoint=hooks.endpoint_doc(endpoint_id),
                                  now=created_at, settings=hooks.settings)
    doc.update(status=status, attempt_count=5 if status != "succeeded" else 1, next_attempt_at=None,
               reason={"failed": "gone", "dead_lettered": "attempts_exhausted",
                       "canceled": "endpoint_disabled"}.get(status))
    deliveries.ref(hooks.deps.db, doc["id"]).create(doc)
    return event, doc["id"]


def test_recover_resends_only_the_windows_failures(merchant, hooks, inprocess_gateway):
    endpoint_id, _ = merchant.endpoint("/recover")
    now = hooks.deps.clock.now()
    at = lambda hours: now - dt.timedelta(hours=hours)
    before = _delivery_in(hooks, merchant, endpoint_id, "dead_lettered", at(10))
    failed = _delivery_in(hooks, merchant, endpoint_id, "failed", at(5))
    dead = _delivery_in(hooks, merchant, endpoint_id, "dead_lettered", at(4))
    canceled = _delivery_in(hooks, merchant, endpoint_id, "canceled", at(3))
    ok = _delivery_in(hooks, merchant, endpoint_id, "succeeded", at(3))
    after = _delivery_in(hooks, merchant, endpoint_id, "dead_lettered", at(1))
    resp = merchant.post(f"/{endpoint_id}/recover", {"since": rfc3339(at(6)), "until": rfc3339(at(2))})
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json() == {"object": "webhook_recovery", "endpoint": endpoint_id, "resent": 3,
                               "has_more": False}
    for event, _ in (failed, dead, canceled):
        _delivered(hooks, event.id, endpoint_id, run=2)
    for event, d_id in (before, ok, after):
        assert hooks.delivery(event.id, endpoint_id)["run"] == 1
    got = {r["headers"]["webhook-id"] for r in hooks.sim.wait_for(3, "/recover")}
    assert got == {failed[0].id, dead[0].id, canceled[0].id}
    # unix seconds work too; the window's failures were sent again: only `after` is left
    resp = merchant.post(f"/{endpoint_id}/recover", {"since": int(at(6).timestamp())})
    assert resp.get_json()["resent"] == 1
    _delivered(hooks, after[0].id, endpoint_id, run=2)
    bad = merchant.post(f"/{endpoint_id}/recover", {"since": rfc3339(at(1)), "until": rfc3339(at(2))})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "parameter_invalid"
    assert merchant.post(f"/{endpoint_id}/recover", {"since": "yesterday"}).status_code == 400
    assert merchant.post(f"/{endpoint_id}/recover", {}).status_code == 400


def test_recover_is_bounded_per_call(merchant, hooks, monkeypatch):
    from shared.webhooks import replay
    monkeypatch.setattr(replay, "RECOVER_LIMIT", 3)
    monkeypatch.setattr(replay, "RECOVER_CHUNK", 2)
    endpoint_id, _ = merchant.endpoint("/bounded")
    now = hooks.deps.clock.now()
    for i in range(5):
        _delivery_in(hooks, merchant, endpoint_id, "dead_lettered", now - dt.timedelta(minutes=10 - i))
    since = rfc3339(now - dt.timedelta(hours=1))
    first = merchant.post(f"/{endpoint_id}/recover", {"since": since}).get_json()
    assert (first["resent"], first["has_more"]) == (3, True)
    second = merchant.post(f"/{endpoint_id}/recover", {"since": since}).get_json()
    assert (second["resent"], second["has_more"]) == (2, False)


def test_the_test_event_goes_to_that_endpoint_only(merchant, hooks, inprocess_gateway):
    endpoint_id, secret = merchant.endpoint("/tested", ["topup.*"])
    everything, _ = merchant.endpoint("/everything", ["*"])
    resp = merchant.post(f"/{endpoint_id}/test")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    event_id = body["event"]
    assert body["event_type"] == "webhook_endpoint.test" and body["endpoint"] == endpoint_id
    _delivered(hooks, event_id, endpoint_id)
    [got] = hooks.sim.inbox("/tested")
    payload = Webhook(secret).verify(got["body"], got["headers"])
    assert payload["type"] == "webhook_endpoint.test" and payload["data"]["object"]["id"] == endpoint_id
    assert "whsec_" not in got["body"] and "\"secret\"" not in got["body"]
    # the event also reaches Pub/Sub like any other: the fan-out leaves it alone
    event = hooks.deps.db.collection(EVENTS).document(event_id).get().to_dict()
    from shared.platform.outbox import Event
    assert fanout.fan_out(hooks.deps, Event(**{k: event[k] for k in Event.model_fields})) == 0
    assert hooks.delivery(event_id, everything) is None and hooks.sim.inbox("/everything") == []


def test_deliveries_and_attempts_api(merchant, stranger, hooks):
    endpoint_id, _ = merchant.endpoint("/api")
    other_endpoint, _ = merchant.endpoint("/api2")
    hooks.sim.configure("/api", mode="fail", status=500, fail_times=1)
    events = [merchant.emit() for _ in range(3)]
    for event in events:
        fanout.fan_out(hooks.deps, event)
    ids = [deliveries.delivery_id(e.id, endpoint_id) for e in events]
    assert delivery.attempt(hooks.deps, ids[0], 1, 1) == "retrying"
    assert delivery.attempt(hooks.deps, ids[0], 1, 2) == "succeeded"
    assert delivery.attempt(hooks.deps, ids[1], 1, 1) == "succeeded"

    page = merchant.get(f"/{endpoint_id}/deliveries").get_json()
    assert [d["id"] for d in page["data"]] == ids[::-1] and page["has_more"] is False
    one = merchant.get(f"/{endpoint_id}/deliveries", limit=1).get_json()
    assert one["has_more"] is True
    two = merchant.get(f"/{endpoint_id}/deliveries", limit=1, starting_after=one["data"][0]["id"]).get_json()
    assert two["data"][0]["id"] == ids[1]
    pending = merchant.get(f"/{endpoint_id}/deliveries", status="pending").get_json()["data"]
    assert [d["id"] for d in pending] == [ids[2]]
    by_event = merchant.get(f"/{endpoint_id}/deliveries", event=events[0].id).get_json()["data"]
    assert [(d["id"], d["status"], d["attempt_count"]) for d in by_event] == [(ids[0], "succeeded", 2)]
    assert merchant.get(f"/{endpoint_id}/deliveries", event=events[0].id,
                        status="pending").get_json()["data"] == []
    got = merchant.get(f"/{endpoint_id}/deliveries/{ids[0]}").get_json()
    assert got["status"] == "succeeded" and got["last_status_code"] == 200 and got["next_attempt_at"] is None

    attempts = merchant.get(f"/{endpoint_id}/attempts").get_json()["data"]
    assert [(a["delivery"], a["attempt"], a["status_code"]) for a in attempts] == [
        (ids[1], 1, 200), (ids[0], 2, 200), (ids[0], 1, 500)]
    assert attempts[2]["next_attempt_at"] is not None and attempts[2]["error"] == "HTTP 500"
    of_event = merchant.get("/attempts", event=events[0].id).get_json()
    assert [a["attempt"] for a in of_event["data"]] == [2, 1]
    assert all(a["endpoint"] == endpoint_id for a in of_event["data"])
    second_endpoint = deliveries.delivery_id(events[0].id, other_endpoint)
    assert delivery.attempt(hooks.deps, second_endpoint, 1, 1) == "succeeded"
    across = merchant.get("/attempts", event=events[0].id).get_json()["data"]
    assert {a["endpoint"] for a in across} == {endpoint_id, other_endpoint} and len(across) == 3
    paged = merchant.get("/attempts", event=events[0].id, limit=2).get_json()
    rest = merchant.get("/attempts", event=events[0].id, limit=2,
                        starting_after=paged["data"][-1]["id"]).get_json()
    assert paged["has_more"] and len(rest["data"]) == 1 and not rest["has_more"]

    # errors: unknown ids, other endpoints' deliveries, bad queries
    assert merchant.get(f"/{other_endpoint}/deliveries/{ids[0]}").status_code == 404
    assert merchant.get(f"/{endpoint_id}/deliveries/whd_nope").status_code == 404
    assert merchant.get(f"/{endpoint_id}/deliveries", status="lost").status_code == 400
    assert merchant.get(f"/{endpoint_id}/deliveries", starting_after="whd_x").status_code == 400
    assert merchant.get("/attempts").status_code == 400  # event is required
    assert merchant.get("/attempts", event="evt_unknown000000").status_code == 404


def test_another_tenant_gets_404_on_every_route(merchant, stranger, hooks):
    endpoint_id, _ = merchant.endpoint("/private")
    event = merchant.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    assert delivery.attempt(hooks.deps, d_id, 1, 1) == "succeeded"
    reads = [f"/{endpoint_id}/deliveries", f"/{endpoint_id}/deliveries/{d_id}",
             f"/{endpoint_id}/attempts"]
    for path in reads:
        assert merchant.get(path).status_code == 200, path
        resp = stranger.get(path)
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "resource_missing", path
    assert stranger.get("/attempts", event=event.id).status_code == 404
    writes = [(f"/{endpoint_id}/resend", {"event": event.id}),
              (f"/{endpoint_id}/recover", {"since": 0}), (f"/{endpoint_id}/test", None)]
    for path, body in writes:
        resp = stranger.post(path, body)
        assert resp.status_code == 404, (path, resp.get_json())
    assert hooks.delivery(event.id, endpoint_id)["run"] == 1
    unauthenticated = merchant.api.get(f"{BASE}/{endpoint_id}/deliveries")
    assert unauthenticated.status_code == 401


def test_the_attempt_task_route_takes_only_service_calls_and_valid_bodies(hooks, function_client,
                                                                          service_headers):
    tasks = function_client("webhooks_tasks")
    good = {"delivery_id": "whd_x", "endpoint_id": "we_x", "event_id": "evt_x", "run": 1, "attempt": 1}
    assert tasks.post("/attempts", json=good).status_code == 401
    resp = tasks.post("/attempts", json=good, headers=service_headers)
    assert resp.status_code == 200 and resp.get_json()["outcome"] == "missing"
    for bad in ({**good, "delivery_id": "a/b"}, {**good, "attempt": 0}, {**good, "run": "x"},
                {k: v for k, v in good.items() if k != "event_id"}):
        assert tasks.post("/attempts", json=bad, headers=service_headers).status_code == 400, bad
    sweeper = function_client("webhooks_sweeper")
    swept = sweeper.post("/", headers=service_headers)
    assert swept.status_code == 200 and swept.get_json() == {"object": "webhook_sweep", "lost": 0,
                                                             "requeued": 0}


def test_a_replay_during_an_attempt_in_flight_keeps_both_runs_apart(merchant, hooks):
    endpoint_id, _ = merchant.endpoint("/inflight")
    event = merchant.emit()
    fanout.fan_out(hooks.deps, event)
    d_id = deliveries.delivery_id(event.id, endpoint_id)
    settings = hooks.settings
    doc, endpoint, event_doc, k = run_unit(hooks.deps, lambda uow: delivery._claim(
        uow, settings, d_id, endpoint_id, event.id, 1, 1, 0))
    assert merchant.post(f"/{endpoint_id}/resend", {"event": event.id}).get_json()["run"] == 2
    sent = delivery._send(hooks.deps, settings, endpoint, event_doc)
    assert run_unit(hooks.deps, lambda uow: delivery._record(uow, settings, doc, endpoint, k, 1, 1,
                                                             sent)) == "superseded"
    now = hooks.delivery(event.id, endpoint_id)
    assert (now["run"], now["status"], now["attempt_count"]) == (2, "pending", 0)
    assert delivery.attempt(hooks.deps, d_id, 1, 2) == "stale"  # the old run's next task
    assert delivery.attempt(hooks.deps, d_id, 2, 1) == "succeeded"
    runs = [(a["run"], a["n"], a["outcome"]) for a in hooks.attempts(d_id)]
    assert runs == [(1, 1, "succeeded"), (2, 1, "succeeded")]
    assert endpoints.ref(hooks.deps.db, endpoint_id).get().exists


def test_a_live_event_is_invisible_to_a_test_mode_caller_of_the_same_tenant(merchant, hooks):
    live = hooks.emit(owner=merchant.id, livemode=True)
    resp = merchant.get("/attempts", event=live.id)   # a user session works in test mode
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "resource_missing"
    test_mode = merchant.emit()
    assert merchant.get("/attempts", event=test_mode.id).status_code == 200
    endpoint_id, _ = merchant.endpoint("/mode")
    resp = merchant.post(f"/{endpoint_id}/resend", {"event": live.id})
    assert resp.status_code == 404
