"""Outbound messages leave after commit, through the consumer and Cloud Tasks retries.

Real pieces only: the Firestore, Pub/Sub and Cloud Tasks emulators, the in-process gateway that
the tasks emulator dispatches to, and the loopback email/SMS simulators (SendGrid and Twilio
protocols). "Down" is a simulator that is not listening yet on the port the adapter points at.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from infra.local import email_sim, sms_sim
from infra.local.simserver import start_in_thread
from infra.local.stack import free_port
from shared.adapters.email_sendgrid import HttpEmailSender
from shared.adapters.kms import LocalKms
from shared.adapters.sms_twilio import TwilioSmsSender
from shared.notify import delivery, queue_email, queue_push, queue_sms
from shared.notify.http import handle_events
from shared.notify.outbound import COLLECTION, EVENT_QUEUED
from shared.notify.settings import NotifySettings
from shared.platform import secrets_at_rest
from shared.platform.outbox import decode_message
from shared.platform.uow import run_unit
from tests.support.polling import wait_for

CODE = "493817"


@pytest.fixture
def wiring(deps):
    deps.extras["platform.kms"] = LocalKms.generate()
    deps.extras["notify.settings"] = NotifySettings(
        backoff_base_seconds=0.5, backoff_factor=2, lease_seconds=2, max_attempts=3)
    deps.tasks.ensure_queue("notify")
    port = free_port()
    deps.extras["notify.email"] = HttpEmailSender(f"http://127.0.0.1:{port}", "local-email-key",
                                                  from_email="no-reply@payloom.dev", timeout=2)
    servers = []

    def email_up():
        server = start_in_thread(email_sim.EmailSimServer(port), "email-sim")[0]
        servers.append(server)
        return server

    yield deps, port, email_up
    for server in servers:
        server.stop()


@pytest.fixture
def subscription(deps):
    """A pull subscription on the events topic: what Pub/Sub would push to notify_events."""
    from google.cloud import pubsub_v1
    sub = pubsub_v1.SubscriberClient()
    path = sub.subscription_path(deps.settings.project_id, "notify-test")
    sub.create_subscription(name=path, topic=f"projects/{deps.settings.project_id}/topics/"
                                             f"{deps.settings.events_topic}")

    def pull():
        resp = sub.pull(subscription=path, max_messages=10, timeout=10)
        if resp.received_messages:
            sub.acknowledge(subscription=path, ack_ids=[m.ack_id for m in resp.received_messages])
        return [e for m in resp.received_messages for e in decode_message(m.message.data)]
    yield pull
    sub.delete_subscription(subscription=path)
    sub.close()


def _doc(deps, message_id):
    return deps.db.collection(COLLECTION).document(message_id).get().to_dict()


def _inbox(server, to):
    return requests.get(f"{server.base_url}/_inbox", params={"to": to}, timeout=5).json()


def test_queueing_commits_with_the_unit_seals_the_content_and_publishes_one_internal_event(
        wiring, subscription):
    deps, _, _ = wiring

    def sign_up(uow):
        uow.create(uow.db.collection("things").document("t1"), {"ok": True})
        return queue_email(uow, to="ada@example.com", subject="Your code",
                           text=f"Your code is {CODE}", kind="otp", user_id="usr_ada")

    message_id = run_unit(deps, sign_up)  # succeeds with the email simulator down: no send in it
    doc = _doc(deps, message_id)
    assert doc["status"] == "queued" and doc["channel"] == "email" and doc["kind"] == "otp"
    assert doc["attempt_count"] == 0 and doc["expires_at"] > doc["created_at"]
    stored = json.dumps(doc, default=str)
    assert CODE not in stored and "ada@example.com" not in stored and "Your code" not in stored
    assert secrets_at_rest.is_sealed(doc["content"])
    [event] = wait_for(subscription, timeout=20)
    assert event.type == EVENT_QUEUED and event.tenant == "platform"
    assert event.data == {"message_id": message_id, "channel": "email"}


def test_a_failed_unit_queues_nothing(wiring):
    deps, _, _ = wiring
    from shared.platform.errors import Conflict

    def fails(uow):
        queue_sms(uow, to="+85512345678", text="x", kind="otp")
        raise Conflict("no")

    with pytest.raises(Conflict):
        run_unit(deps, fails)
    assert list(deps.db.collection(COLLECTION).stream()) == []


def test_bad_arguments_are_refused_before_anything_is_written(wiring):
    deps, _, _ = wiring
    for call in (lambda u: queue_email(u, to="nope", subject="s", text="t", kind="k"),
                 lambda u: queue_sms(u, to="012345", text="t", kind="k"),
                 lambda u: queue_push(u, token="", data={}, kind="k"),
                 lambda u: queue_push(u, token="tok", data={"n": 1}, kind="k"),
                 lambda u: queue_email(u, to="a@b.co", subject="s", text="t", kind="")):
        with pytest.raises(ValueError):
            run_unit(deps, call)
    assert list(deps.db.collection(COLLECTION).stream()) == []


def test_email_down_then_back_the_retry_delivers_exactly_once(wiring, subscription, inprocess_gateway,
                                                            service_headers):
    """The issue's scenario: the simulator is down, the consumer fails, a retry task is
    scheduled, the simulator comes back, the retry delivers the message once."""
    deps, _, email_up = wiring
    to = "grace@example.com"
    message_id = run_unit(deps, lambda uow: queue_email(
        uow, to=to, subject="Reset your password", text=f"code {CODE}", kind="password_reset"))
    events = wait_for(subscription, timeout=20)

    assert handle_events(deps, events) == {message_id: "retrying"}  # connection refused
    doc = _doc(deps, message_id)
    assert doc["status"] == "retrying" and doc["attempt_count"] == 1
    assert doc["attempts"][0]["outcome"] == "failed" and "unreachable" in doc["last_error"]
    assert doc["next_attempt_at"] > doc["attempts"][0]["finished_at"]
    assert handle_events(deps, events) == {message_id: "stale"}  # a Pub/Sub redelivery: no-op

    server = email_up()
    sent = wait_for(lambda: (d := _doc(deps, message_id))["status"] == "sent" and d, timeout=20)
    assert sent["attempt_count"] == 2 and [a["outcome"] for a in sent["attempts"]] == ["failed", "sent"]
    assert sent["provider_id"] and sent["lease_until"] is None
    [mail] = _inbox(server, to)
    assert CODE in mail["text"] and mail["subject"] == "Reset your password"
    assert mail["categories"] == ["password_reset"]

    assert handle_events(deps, events) == {message_id: "already_sent"}  # redelivery after success
    # the attempt-3 task scheduled by attempt 2 finds it sent (was a 500: an undeclared outcome)
    r = requests.post(f"{inprocess_gateway}/_fn/notify_tasks/attempts", headers=service_headers,
                      json={"message_id": message_id, "attempt": 3}, timeout=10)
    assert r.status_code == 200 and r.json()["outcome"] == "already_sent", r.text
    time.sleep(3)
    assert len(_inbox(server, to)) == 1
    assert _doc(deps, message_id)["attempt_count"] == 2


def test_a_permanent_refusal_is_dead_lettered_at_once(wiring, subscription, inprocess_gateway):
    deps, _, email_up = wiring
    server = email_up()
    message_id = run_unit(deps, lambda uow: queue_email(
        uow, to="bounce@example.com", subject="s", text="t", kind="verify_email"))
    assert handle_events(deps, wait_for(subscription, timeout=20)) == {message_id: "dead_lettered"}
    doc = _doc(deps, message_id)
    assert doc["status"] == "dead_lettered" and "400" in doc["last_error"]
    assert [a["outcome"] for a in doc["attempts"]] == ["failed"]
    time.sleep(3)  # the already scheduled retry finds it dead-lettered and does nothing
    assert _doc(deps, message_id)["attempt_count"] == 1 and _inbox(server, "bounce@example.com") == []


def test_a_provider_that_stays_down_ends_dead_lettered_after_max_attempts(wiring, inprocess_gateway):
    deps, _, _ = wiring
    deps.extras["notify.settings"] = NotifySettings(
        backoff_base_seconds=0.2, backoff_factor=2, lease_seconds=0.5, max_attempts=3)
    message_id = run_unit(deps, lambda uow: queue_email(
        uow, to="lin@example.com", subject="s", text="t", kind="otp"))
    assert delivery.attempt(deps, message_id, 1) == "retrying"
    doc = wait_for(lambda: (d := _doc(deps, message_id))["status"] == "dead_lettered" and d,
                   timeout=30)
    assert doc["attempt_count"] == 3 and "unreachable" in doc["last_error"]
    assert [a["n"] for a in doc["attempts"]] == [1, 2, 3]
    assert all(a["outcome"] == "failed" for a in doc["attempts"])


def test_concurrent_duplicate_attempts_send_once(wiring):
    deps, _, email_up = wiring
    server = email_up()
    message_id = run_unit(deps, lambda uow: queue_email(
        uow, to="dup@example.com", subject="s", text="t", kind="otp"))
    outcomes, barrier = [], threading.Barrier(4)

    def go():
        barrier.wait()
        outcomes.append(delivery.attempt(deps, message_id, 1))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("sent") == 1, outcomes
    assert set(outcomes) <= {"sent", "busy", "stale", "already_sent"}
    assert len(_inbox(server, "dup@example.com")) == 1


def test_sms_through_the_twilio_protocol_retries_a_503(wiring, inprocess_gateway):
    deps, _, _ = wiring
    server, _ = sms_sim.start()
    try:
        deps.extras["notify.sms"] = TwilioSmsSender(
            base_url=server.base_url, account_sid=server.account_sid,
            auth_token=server.auth_token, from_number="Payloom")
        server.fail_next(503)
        message_id = run_unit(deps, lambda uow: queue_sms(
            uow, to="+85512000111", text=f"Payloom code: {CODE}", kind="otp"))
        assert delivery.attempt(deps, message_id, 1) == "retrying"
        wait_for(lambda: _doc(deps, message_id)["status"] == "sent", timeout=20)
        [sms] = server.inbox("+85512000111")
        assert CODE in sms["body"]
    finally:
        server.stop()


def test_the_task_route_validates_and_authenticates(wiring, function_client, service_headers):
    client = function_client("notify_tasks")
    r = client.post("/attempts", json={"message_id": "msg_x", "attempt": 1},
                    headers={"Authorization": "Bearer guess"})
    assert r.status_code in (401, 403) and set(r.get_json()) == {"error"}
    for bad in ({"message_id": "a/b", "attempt": 1}, {"message_id": "__x__", "attempt": 1},
                {"message_id": "msg_x", "attempt": 0}, {"message_id": "msg_x"}, {}):
        r = client.post("/attempts", json=bad, headers=service_headers)
        assert r.status_code == 400 and r.get_json()["error"]["type"] == "invalid_request_error", bad
    r = client.post("/attempts", json={"message_id": "msg_missing", "attempt": 2}, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["outcome"] == "missing"
