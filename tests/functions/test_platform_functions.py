"""The platform slice through functions-framework's test client: HTTP, CloudEvent, task, schedule."""
import base64
import concurrent.futures
import json
import time
import uuid

import pytest
from google.cloud import pubsub_v1



@pytest.fixture
def api(function_client, deps):
    return function_client("platform")


@pytest.fixture
def events_sub(deps):
    sub = pubsub_v1.SubscriberClient()
    path = sub.subscription_path(deps.settings.project_id, "t-" + uuid.uuid4().hex[:8])
    sub.create_subscription(request={"name": path, "topic": deps.publisher.topic_path("events")})
    return sub, path


def pull(sub_path, want, attempts=10):
    sub, path = sub_path
    out = []
    for _ in range(attempts):
        resp = sub.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
        if resp.received_messages:
            sub.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in resp.received_messages]})
        out += resp.received_messages
        if len(out) >= want:
            break
    return out


def cloud_event(message_data: bytes, attributes: dict, message_id: str = "1"):
    body = {"message": {"data": base64.b64encode(message_data).decode(), "attributes": attributes,
                        "messageId": message_id}, "subscription": "projects/p/subscriptions/s"}
    headers = {"ce-id": message_id, "ce-specversion": "1.0",
               "ce-source": "//pubsub.googleapis.com/projects/p/topics/events",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
               "Content-Type": "application/json"}
    return json.dumps(body), headers


def create(api, headers, body=None, key=None):
    h = dict(headers)
    if key:
        h["Idempotency-Key"] = key
    return api.post("/v1/platform/probes", json=body if body is not None else {"delay_seconds": 0}, headers=h)


# --- bad input -------------------------------------------------------------------------------

def err(resp):
    assert resp.is_json, resp.data
    e = resp.get_json()["error"]
    assert set(e) == {"type", "code", "message", "param"}
    assert "Traceback" not in e["message"]
    return e


def test_malformed_json_is_400(api, service_headers):
    r = api.post("/v1/platform/probes", data="{nope", content_type="application/json", headers=service_headers)
    assert r.status_code == 400 and err(r)["code"] == "invalid_json"


def test_json_array_body_is_400(api, service_headers):
    r = api.post("/v1/platform/probes", data="[1]", content_type="application/json", headers=service_headers)
    assert r.status_code == 400 and err(r)["code"] == "invalid_json"


def test_wrong_content_type_is_415(api, service_headers):
    r = api.post("/v1/platform/probes", data="delay_seconds=1", content_type="application/x-www-form-urlencoded",
                 headers=service_headers)
    assert r.status_code == 415 and err(r)["type"] == "invalid_request_error"


def test_extra_field_is_400_naming_it(api, service_headers):
    r = create(api, service_headers, {"delay_seconds": 1, "amount": 5})
    assert r.status_code == 400
    assert err(r)["param"] == "amount" and err(r)["code"] == "parameter_unknown"


def test_wrong_type_is_400_naming_the_field(api, service_headers):
    r = create(api, service_headers, {"delay_seconds": "soon"})
    assert r.status_code == 400 and err(r)["param"] == "delay_seconds"
    r = create(api, service_headers, {"delay_seconds": -1})
    assert r.status_code == 400 and err(r)["code"] == "parameter_invalid"


def test_missing_field_is_400(function_client, deps, service_headers):
    tasks = function_client("platform_tasks")
    r = tasks.post("/probe-due", json={}, headers=service_headers)
    assert r.status_code == 400 and err(r)["code"] == "parameter_missing" and err(r)["param"] == "probe_id"


def test_body_over_1mb_is_413(api, service_headers):
    r = api.post("/v1/platform/probes", data=b'{"note":"' + b"x" * (1024 * 1024) + b'"}',
                 content_type="application/json", headers=service_headers)
    assert r.status_code == 413 and err(r)["code"] == "payload_too_large"


def test_unknown_route_404_and_wrong_method_405(api, service_headers):
    r = api.get("/v1/platform/nothing-here", headers=service_headers)
    assert r.status_code == 404 and err(r)["code"] == "unknown_route"
    r = api.delete("/v1/platform/probes", headers=service_headers)
    assert r.status_code == 405 and "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]


def test_missing_or_bad_credentials_401(api):
    assert api.post("/v1/platform/probes", json={}).status_code == 401
    r = api.post("/v1/platform/probes", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and err(r)["type"] == "authentication_error"


def test_service_routes_reject_anyone_else(function_client, deps):
    tasks = function_client("platform_tasks")
    r = tasks.post("/probe-due", json={"probe_id": "prb_x"}, headers={"Authorization": "Bearer guess"})
    assert r.status_code == 401


def test_unexpected_errors_are_500_without_internals(api, deps, service_headers, monkeypatch):
    from shared.probes import service
    monkeypatch.setattr(service, "get_probe", lambda *a, **k: 1 / 0)
    r = api.get("/v1/platform/probes/prb_x", headers=service_headers)
    assert r.status_code == 500
    e = err(r)
    assert e["type"] == "api_error" and "ZeroDivision" not in e["message"]


# --- idempotency through HTTP ------------------------------------------------------------------

def test_idempotent_replay_is_byte_identical(api, service_headers):
    first = create(api, service_headers, {"delay_seconds": 3, "note": "a"}, key="key-1")
    again = create(api, service_headers, {"delay_seconds": 3, "note": "a"}, key="key-1")
    assert first.status_code == again.status_code == 201
    assert first.data == again.data
    assert again.headers.get("Idempotent-Replayed") == "true"
    listed = api.get("/v1/platform/probes", headers=service_headers).get_json()
    assert [p["id"] for p in listed["data"]] == [first.get_json()["id"]]


def test_same_key_different_body_is_409(api, service_headers):
    assert create(api, service_headers, {"delay_seconds": 3}, key="key-2").status_code == 201
    r = create(api, service_headers, {"delay_seconds": 4}, key="key-2")
    assert r.status_code == 409 and err(r)["type"] == "idempotency_error"
    # The refusal is about the key: it never replaces the stored first response.
    again = create(api, service_headers, {"delay_seconds": 3}, key="key-2")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_validation_failures_are_not_cached(api, service_headers):
    assert create(api, service_headers, {"delay_seconds": "x"}, key="key-3").status_code == 400
    assert create(api, service_headers, {"delay_seconds": 1}, key="key-3").status_code == 201


def test_concurrent_duplicates_have_one_effect_and_the_same_answer(function_client, deps,
                                                                   service_headers):
    """Stripe's atomic phase: the key's record commits with the probe and its event, so of
    eight concurrent requests with one key exactly one has an effect; the others replay it
    (or are told it is in progress) — never a second probe, never a 5xx."""
    clients = [function_client("platform") for _ in range(8)]

    def go(i):
        return create(clients[i], service_headers, {"delay_seconds": 1}, key="key-concurrent")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(go, range(8)))
    assert all(r.status_code in (201, 409) for r in responses), [r.status_code for r in responses]
    ok = [r for r in responses if r.status_code == 201]
    assert len({r.get_json()["id"] for r in ok}) == 1
    assert sum(1 for r in ok if r.headers.get("Idempotent-Replayed") != "true") == 1
    probes = clients[0].get("/v1/platform/probes", headers=service_headers).get_json()["data"]
    assert len(probes) == 1
    events = [d.to_dict() for d in deps.db.collection("events").stream()]
    assert [e["type"] for e in events] == ["probe.created"]


def test_crash_after_commit_then_retry_finds_the_same_probe(api, deps, service_headers):
    """The first attempt committed but died before storing its response; its lease expires and
    the retry re-derives the same probe id instead of creating a second probe."""
    from shared.platform.idempotency import COLLECTION
    first = create(api, service_headers, {"delay_seconds": 5}, key="key-crash").get_json()
    for snap in deps.db.collection(COLLECTION).stream():  # simulate: response never stored
        snap.reference.delete()
    retry = create(api, service_headers, {"delay_seconds": 5}, key="key-crash").get_json()
    assert retry["id"] == first["id"]
    assert len(api.get("/v1/platform/probes", headers=service_headers).get_json()["data"]) == 1


# --- outbox, consumer, tasks -------------------------------------------------------------------

def test_event_published_exactly_once_after_commit(api, deps, service_headers, events_sub):
    probe = create(api, service_headers, {"delay_seconds": 0}).get_json()
    msgs = pull(events_sub, 1)
    assert len(msgs) == 1
    [event] = json.loads(msgs[0].message.data)["events"]
    assert event["type"] == "probe.created" and event["data"]["object"]["id"] == probe["id"]
    assert msgs[0].message.attributes["event_ids"] == event["id"]
    assert pull(events_sub, 1, attempts=2) == []


def test_sweeper_function_publishes_after_a_failed_publish(function_client, deps, service_headers, events_sub):
    class Down:
        def publish(self, *a):
            raise ConnectionError("down")
    real = deps.publisher
    deps._cache["publisher"] = Down()
    probe = create(function_client("platform"), service_headers, {"delay_seconds": 0}).get_json()
    deps._cache["publisher"] = real
    assert pull(events_sub, 1, attempts=2) == []
    deps.settings.outbox_sweep_min_age_seconds = 0
    r = function_client("outbox_sweeper").post("/", json={}, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["republished"] == 1
    msgs = pull(events_sub, 1)
    assert json.loads(msgs[0].message.data)["events"][0]["data"]["object"]["id"] == probe["id"]
    again = function_client("outbox_sweeper").post("/", json={}, headers=service_headers)
    assert again.get_json()["republished"] == 0


def test_duplicate_pubsub_delivery_is_harmless(function_client, deps, service_headers, events_sub):
    probe = create(function_client("platform"), service_headers, {"delay_seconds": 600}).get_json()
    msg = pull(events_sub, 1)[0].message
    consumer = function_client("platform_events")
    for delivery in ("m1", "m2", "m3"):
        body, headers = cloud_event(msg.data, dict(msg.attributes), delivery)
        assert consumer.post("/", data=body, headers=headers).status_code == 200
    doc = deps.db.collection("probes").document(probe["id"]).get().to_dict()
    assert doc["status"] == "scheduled"
    markers = list(deps.db.collection("processed_events").stream())
    assert len(markers) == 1


def test_poison_message_is_dropped_not_retried(function_client, deps):
    body, headers = cloud_event(b"not json", {}, "bad")
    assert function_client("platform_events").post("/", data=body, headers=headers).status_code == 200


def test_task_scheduled_two_seconds_ahead_runs_no_earlier(function_client, deps, service_headers,
                                                         events_sub, inprocess_gateway):
    probe = create(function_client("platform"), service_headers, {"delay_seconds": 2}).get_json()
    msg = pull(events_sub, 1)[0].message
    body, headers = cloud_event(msg.data, dict(msg.attributes))
    enqueued_at = time.time()
    assert function_client("platform_events").post("/", data=body, headers=headers).status_code == 200
    deadline = time.time() + 20
    doc = None
    while time.time() < deadline:
        doc = deps.db.collection("probes").document(probe["id"]).get().to_dict()
        if doc["status"] == "completed":
            break
        time.sleep(0.2)
    assert doc["status"] == "completed", doc
    assert doc["completed_at"].timestamp() >= enqueued_at + 2.0 - 0.05
    assert (doc["completed_at"] - doc["event_received_at"]).total_seconds() >= 1.95
    # A second delivery of the same task changes nothing.
    r = function_client("platform_tasks").post("/probe-due", json={"probe_id": probe["id"]}, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["status"] == "completed"
    assert deps.db.collection("probes").document(probe["id"]).get().to_dict()["completed_at"] == doc["completed_at"]


def test_probe_and_event_tenant_isolation(api, deps, function_client):
    """Another tenant's probe reads as missing, never as forbidden (no existence leak)."""
    from tests.support.identity import auth_headers, create_user_with_token
    alice = auth_headers(create_user_with_token(deps)[1])
    bob = auth_headers(create_user_with_token(deps)[1])
    probe = create(api, alice, {"delay_seconds": 0}).get_json()
    assert api.get(f"/v1/platform/probes/{probe['id']}", headers=alice).status_code == 200
    assert api.get(f"/v1/platform/probes/{probe['id']}", headers=bob).status_code == 404
    assert api.get("/v1/platform/probes", headers=bob).get_json()["data"] == []
    assert [p["id"] for p in api.get("/v1/platform/probes", headers=alice).get_json()["data"]] == [probe["id"]]
    events = function_client("events")
    alice_events = events.get("/v1/events", headers=alice).get_json()["data"]
    assert [e["type"] for e in alice_events] == ["probe.created", "user.created"]
    bob_events = events.get("/v1/events", headers=bob).get_json()["data"]
    assert [e["type"] for e in bob_events] == ["user.created"]
    assert not {e["id"] for e in alice_events} & {e["id"] for e in bob_events}
    assert events.get(f"/v1/events/{alice_events[0]['id']}", headers=bob).status_code == 404


@pytest.mark.parametrize("crash_at", ["before_commit", "after_commit"])
def test_a_crash_at_any_point_loses_nothing_and_doubles_nothing(api, deps, service_headers,
                                                                events_sub, monkeypatch, crash_at):
    """The instance dies either just before the commit or just after it (before the events
    leave). The client retries with the same key: one probe, one answer, one event."""
    from shared.platform import uow as uow_mod

    class Died(Exception):
        pass

    real_commit, real_publish = uow_mod.UnitOfWork.commit, uow_mod.UnitOfWork.publish

    def commit(self):
        if crash_at == "before_commit":
            raise Died()
        return real_commit(self)

    def publish(self):
        raise Died()
    monkeypatch.setattr(uow_mod.UnitOfWork, "commit", commit)
    if crash_at == "after_commit":
        monkeypatch.setattr(uow_mod.UnitOfWork, "publish", publish)
    died = create(api, service_headers, {"delay_seconds": 600}, key="key-crash-point")
    assert died.status_code == 500 and err(died)["type"] == "api_error"
    monkeypatch.setattr(uow_mod.UnitOfWork, "commit", real_commit)
    monkeypatch.setattr(uow_mod.UnitOfWork, "publish", real_publish)

    retry = create(api, service_headers, {"delay_seconds": 600}, key="key-crash-point")
    assert retry.status_code == 201
    assert (retry.headers.get("Idempotent-Replayed") == "true") is (crash_at == "after_commit")
    probes = api.get("/v1/platform/probes", headers=service_headers).get_json()["data"]
    assert [p["id"] for p in probes] == [retry.get_json()["id"]]
    from shared.platform.outbox import sweep
    sweep(deps.db, deps.publisher, deps.tasks, now=deps.clock.now(), min_age_seconds=0)
    events = [e for m in pull(events_sub, 1) for e in json.loads(m.message.data)["events"]]
    events += [e for m in pull(events_sub, 1, attempts=1) for e in json.loads(m.message.data)["events"]]
    assert [e["data"]["object"]["id"] for e in events] == [retry.get_json()["id"]]
