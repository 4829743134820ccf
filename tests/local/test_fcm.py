"""FcmPushSender (production adapter) -> firebase-admin -> loopback FCM simulator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import firebase_admin
import pytest
from firebase_admin import messaging

from infra.local import fcm_sim, fcm_wiring
from shared.adapters.fcm import (
    FcmPushSender,
    PushRejected,
    PushTokenInvalid,
    PushUnavailable,
)

PROJECT = "demo-payloom"
APP_NAME = "payloom-fcm-tests"  # a named app: leaves any default app of other tests alone


@pytest.fixture(scope="module")
def sim():
    previous_url = messaging._MessagingService.FCM_URL
    server, base_url = fcm_sim.start()
    app = fcm_wiring.install_fcm_loopback(base_url, PROJECT, app_name=APP_NAME)
    yield server, base_url, app
    fcm_wiring.uninstall_fcm_loopback(app_name=APP_NAME, restore_url=previous_url)
    server.stop()


@pytest.fixture
def sender(sim):
    return FcmPushSender(firebase_admin.get_app(APP_NAME))


@pytest.fixture
def inbox(sim):
    server, _, _ = sim
    server.clear()
    return server


def _http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_send_lands_in_inbox(sim, inbox, sender):
    _, base_url, _ = sim
    name = sender.send(
        "device-token-1", {"type": "payment.settled", "id": "p_1"},
        ttl_seconds=3600, collapse_key="payments",
    )
    assert name.startswith(f"projects/{PROJECT}/messages/")
    status, items = _http("GET", f"{base_url}/_inbox?token=device-token-1")
    assert status == 200 and len(items) == 1
    item = items[0]
    assert item["name"] == name
    assert item["received_at"].endswith("Z") and item["received_at_unix"] > 0
    msg = item["message"]
    assert msg["token"] == "device-token-1"
    assert msg["data"] == {"type": "payment.settled", "id": "p_1"}
    assert "notification" not in msg  # data-only
    assert msg["android"] == {"priority": "high", "ttl": "3600s", "collapse_key": "payments"}
    assert _http("GET", f"{base_url}/_inbox?token=someone-else") == (200, [])
    assert _http("DELETE", f"{base_url}/_inbox") == (200, {})
    assert _http("GET", f"{base_url}/_inbox") == (200, [])


def test_normal_priority(inbox, sender):
    sender.send("device-token-2", {"k": "v"}, priority="normal")
    [item] = inbox.inbox("device-token-2")
    assert item["message"]["android"] == {"priority": "normal"}


def test_default_app_is_used_when_none_given(sim, inbox):
    try:
        firebase_admin.get_app()
    except ValueError:
        pass
    else:
        pytest.skip("a default firebase app already exists in this process")
    app = fcm_wiring.install_fcm_loopback(sim[1], PROJECT)  # the default app
    try:
        name = FcmPushSender().send("device-token-default", {"k": "v"})
        assert [m["name"] for m in inbox.inbox("device-token-default")] == [name]
    finally:
        firebase_admin.delete_app(app)


def test_unregistered_token_raises_push_token_invalid(inbox, sender):
    with pytest.raises(PushTokenInvalid) as info:
        sender.send("unregistered-abc", {"k": "v"})
    assert isinstance(info.value.__cause__, messaging.UnregisteredError)
    assert info.value.token == "unregistered-abc"
    assert inbox.inbox() == []


@pytest.mark.parametrize("token", ["invalid-xyz", "mismatch-xyz", ""])
def test_other_bad_tokens_raise_push_token_invalid(inbox, sender, token):
    with pytest.raises(PushTokenInvalid):
        sender.send(token, {"k": "v"})


def test_503_once_then_success_via_sdk_retry(inbox, sender):
    name = sender.send("unavailable-once", {"k": "v"})
    assert name.startswith(f"projects/{PROJECT}/messages/")
    assert len(inbox.inbox("unavailable-once")) == 1
    assert inbox.attempts("unavailable-once") == 2  # the 503, then the SDK's retry


def test_persistent_unavailability_raises_push_unavailable(inbox, sender, monkeypatch):
    # every attempt fails: the SDK retries (4 times) and gives up -> PushUnavailable
    monkeypatch.setattr(inbox, "_first_failure", lambda token: True)
    with pytest.raises(PushUnavailable) as info:
        sender.send("unavailable-always", {"k": "v"})
    assert isinstance(info.value.__cause__, firebase_admin.exceptions.UnavailableError)
    assert inbox.attempts("unavailable-always") == 5  # 1 + firebase-admin's 4 retries


def test_payload_rejection_is_not_a_token_problem(inbox, sender):
    with pytest.raises(PushRejected) as info:
        sender.send("device-token-3", {"from": "reserved key"})
    assert not isinstance(info.value, PushTokenInvalid)


def test_dry_run_is_not_delivered(sim, inbox):
    name = FcmPushSender(firebase_admin.get_app(APP_NAME), dry_run=True).send("device-token-4", {"k": "v"})
    assert name == f"projects/{PROJECT}/messages/fake_message_id"
    assert inbox.inbox() == []


def test_send_many_per_token_outcomes_in_order(inbox, sender):
    tokens = ["a-1", "unregistered-2", "a-3", "", "unavailable-5", "a-6"]
    results = sender.send_many(tokens, {"k": "v"}, ttl_seconds=60, batch_size=2)
    assert [r.token for r in results] == tokens
    assert [r.ok for r in results] == [True, False, True, False, True, True]
    assert isinstance(results[1].error, PushTokenInvalid)
    assert isinstance(results[3].error, PushTokenInvalid)
    assert {m["token"] for m in inbox.inbox()} == {"a-1", "a-3", "unavailable-5", "a-6"}
    assert results[0].message_id == inbox.inbox("a-1")[0]["name"]


def test_sdk_validation_errors_propagate(sender):
    with pytest.raises(TypeError):
        sender.send("t", {"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        sender.send("t", {"k": "v"}, priority="urgent")


def test_wiring_is_idempotent_and_repoints(sim):
    _, base_url, app = sim
    assert fcm_wiring.install_fcm_loopback(base_url, PROJECT, app_name=APP_NAME) is app
    assert messaging._MessagingService.FCM_URL == base_url + "/v1/projects/{0}/messages:send"
    other, other_url = fcm_sim.start()
    try:
        app2 = fcm_wiring.install_fcm_loopback(other_url, PROJECT, app_name=APP_NAME)
        assert app2 is not app
        FcmPushSender(app2).send("device-token-5", {"k": "v"})
        assert len(other.inbox("device-token-5")) == 1
    finally:
        sim_app = fcm_wiring.install_fcm_loopback(base_url, PROJECT, app_name=APP_NAME)
        other.stop()
    FcmPushSender(sim_app).send("device-token-6", {"k": "v"})
    assert len(sim[0].inbox("device-token-6")) == 1


def test_wiring_refuses_foreign_app(sim):
    class Foreign(firebase_admin.credentials.Base):
        def get_credential(self):
            raise AssertionError("not used")

    foreign = firebase_admin.initialize_app(Foreign(), {"projectId": PROJECT}, name="foreign")
    try:
        with pytest.raises(RuntimeError):
            fcm_wiring.install_fcm_loopback(sim[1], PROJECT, app_name="foreign")
    finally:
        firebase_admin.delete_app(foreign)


def test_sim_rejects_malformed_and_unauthenticated(sim):
    _, base_url, _ = sim
    url = f"{base_url}/v1/projects/{PROJECT}/messages:send"
    auth = {"Authorization": "Bearer x"}
    status, body = _http("POST", url, {"message": {"token": "t", "data": {"k": "v"}}})
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    for bad in (
        {"message": {"data": {"k": "v"}}},                      # no target
        {"message": {"token": "t", "topic": "x"}},              # two targets
        {"message": {"token": "t", "data": {"k": 1}}},          # non-string data
        {"message": {"token": "t", "bogus": 1}},                # unknown field
        {"message": {"token": "t", "android": {"ttl": "10"}}},  # bad duration
        {"message": {"token": "t", "data": {"k": "x" * 5000}}}, # too big
        {"nomessage": {}},
    ):
        status, body = _http("POST", url, bad, auth)
        assert status == 400, bad
        assert body["error"]["status"] == "INVALID_ARGUMENT"
        assert body["error"]["details"][0]["@type"] == fcm_sim.FCM_ERROR_TYPE
    status, body = _http("POST", url, {"message": {"token": "unregistered-z"}}, auth)
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["details"] == [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
         "errorCode": "UNREGISTERED"}
    ]
