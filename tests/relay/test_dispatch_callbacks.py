"""The per-message callback URL: signed with the client's callback secret (verified with the
``standardwebhooks`` library), retried on failure, dead-lettered after the last attempt, and
never sent twice for one attempt. Attempts are run by calling the task's handler."""
from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from shared.relay import callbacks
from tests.relay.dispatch_kit import client_key, messages_client, use_settings  # noqa: F401
from tests.relay.supply_kit import fresh_phone
from tests.support.webhooks import start_hooks


@pytest.fixture
def hooks(deps):
    h = start_hooks(deps)
    use_settings(deps, callback_retry_seconds=[1, 1])
    yield h
    h.sim.stop()


def queued_event(deps, message_id):
    snaps = [s for s in deps.db.collection("events").stream()
             if ((s.get("data") or {}).get("object") or {}).get("id") == message_id]
    [snap] = snaps
    return snap.id


def test_callbacks_are_signed_retried_and_dead_lettered(deps, hooks, messages_client):
    client = client_key(deps)
    secret = messages_client.post("/v1/messages/callback_secret",
                                  headers=client.headers()).get_json()["secret"]
    hooks.sim.configure("/cb", mode="fail", status=503, fail_times=1)
    r = messages_client.post("/v1/messages", headers=client.headers(), json={
        "to": fresh_phone("smart"), "text": "hello", "callback_url": hooks.url("/cb")})
    assert r.status_code == 202, r.get_data(as_text=True)
    message_id = r.get_json()["id"]
    event_id = queued_event(deps, message_id)

    assert callbacks.attempt(deps, message_id, event_id, 2) == "stale"     # not its turn
    assert callbacks.attempt(deps, message_id, event_id, 1) == "retrying"   # the 503
    assert callbacks.attempt(deps, message_id, event_id, 1) == "stale"      # a duplicate task
    assert callbacks.attempt(deps, message_id, event_id, 2) == "succeeded"
    assert callbacks.attempt(deps, message_id, event_id, 3) == "already_succeeded"
    received = hooks.sim.inbox("/cb")
    assert len(received) == 2
    assert {e["headers"]["webhook-id"] for e in received} == {event_id}     # same id on a retry
    payload = Webhook(secret).verify(received[-1]["body"], received[-1]["headers"])
    assert payload["type"] == "message.queued" and payload["data"]["object"]["id"] == message_id
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 43 + "=").verify(received[-1]["body"], received[-1]["headers"])

    hooks.sim.configure("/dead", mode="fail", status=500)
    r = messages_client.post("/v1/messages", headers=client.headers(), json={
        "to": fresh_phone("smart"), "text": "hello", "callback_url": hooks.url("/dead")})
    dead_id = r.get_json()["id"]
    dead_event = queued_event(deps, dead_id)
    outcomes = [callbacks.attempt(deps, dead_id, dead_event, n) for n in (1, 2, 3)]
    assert outcomes == ["retrying", "retrying", "dead_lettered"]
    record = callbacks.delivery_ref(deps.db, dead_event).get().to_dict()
    assert record["status"] == "dead_lettered" and record["last_status_code"] == 500
    assert callbacks.attempt(deps, dead_id, dead_event, 4) == "already_dead_lettered"


def test_a_callback_for_another_message_or_a_missing_event_sends_nothing(deps, hooks, messages_client):
    client = client_key(deps)
    messages_client.post("/v1/messages/callback_secret", headers=client.headers())
    ids = []
    for _ in range(2):
        r = messages_client.post("/v1/messages", headers=client.headers(), json={
            "to": fresh_phone("smart"), "text": "hi", "callback_url": hooks.url("/x")})
        ids.append(r.get_json()["id"])
    other_event = queued_event(deps, ids[1])
    assert callbacks.attempt(deps, ids[0], other_event, 1) == "mismatch"
    assert callbacks.attempt(deps, ids[0], "evt_missing0000000000", 1) == "missing"
    assert hooks.sim.inbox("/x") == []
