"""The verified inbox for providers' webhooks: verify, store once, acknowledge, process by task.

Real pieces only: the Firestore, Pub/Sub and Cloud Tasks emulators, and the in-process gateway
(real HTTP) that serves ``inbound`` and the ``inbound_tasks`` the emulator dispatches to.
Standard Webhooks requests are signed with the PyPI ``standardwebhooks`` library, Stripe's with
the Stripe simulator's signer, never with the verifiers under test.
"""
from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import json
import logging
import secrets
import time

import pytest
import requests
from google.cloud import firestore
from standardwebhooks import Webhook

import shared.wallet.inbound  # noqa: F401  (the card processor's handlers, as inbound_tasks has them)
from infra.local.stripe_sim import sign as stripe_sign
from shared.inbox import handlers, schemes, service
from shared.inbox.settings import SETTINGS_KEY, InboxSettings, secret_list
from shared.ledger import accounts
from shared.platform import outbox
from shared.platform.errors import InvalidRequest, ServiceUnavailable
from shared.platform.uow import run_unit
from shared.wallet.service import apply_card_event
from tests.support.identity import create_user_with_token
from tests.support.polling import wait_for

STRIPE_SECRET = "whsec_" + secrets.token_hex(16)


def standard_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


KYC_SECRET, PAYOUTS_SECRET = standard_secret(), standard_secret()


@pytest.fixture
def settings(deps):
    """Every provider configured, fast retries; a test changes a field by installing
    ``settings.model_copy(update=...)`` in ``deps.extras``."""
    s = InboxSettings(stripe_webhook_secret=STRIPE_SECRET, kyc_webhook_secret=KYC_SECRET,
                      payouts_webhook_secret=PAYOUTS_SECRET, backoff_base_seconds=0.2,
                      backoff_factor=1, max_attempts=4)
    deps.extras[SETTINGS_KEY] = s
    return s


@pytest.fixture
def inbound(function_client, settings):
    return function_client("inbound")


@pytest.fixture
def inbound_tasks(function_client, settings):
    return function_client("inbound_tasks")


@pytest.fixture
def registered():
    """Register test handlers; every one is removed after the test."""
    added = []

    def register(provider, pattern, fn):
        handlers.on(provider, pattern)(fn)
        added.append((provider, pattern))
        return fn
    yield register
    for provider, pattern in added:
        handlers.off(provider, pattern)


# --- signing (as the providers do) ---------------------------------------------------------------
def stripe_request(event: dict, *, secret: str = STRIPE_SECRET, at: int | None = None):
    body = json.dumps(event, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json; charset=utf-8",
                  "Stripe-Signature": stripe_sign(secret, body, int(time.time()) if at is None else at)}


def standard_request(payload: dict, *, secret: str, msg_id: str | None = None,
                     at: dt.datetime | None = None):
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    at = at or dt.datetime.now(dt.UTC)
    body = json.dumps(payload, separators=(",", ":"))
    return body.encode(), {"Content-Type": "application/json", "webhook-id": msg_id,
                           "webhook-timestamp": str(int(at.timestamp())),
                           "webhook-signature": Webhook(secret).sign(msg_id, at, body)}


def inbox_doc(deps, key):
    snap = deps.db.collection(service.COLLECTION).document(key).get()
    return snap.to_dict() if snap.exists else None


def wait_status(deps, key, *statuses, timeout=15.0):
    return wait_for(lambda: (d := inbox_doc(deps, key)) and d["status"] in statuses and d,
                    timeout=timeout)


def tasks_for(deps, key) -> list[dict]:
    """Every inbound task that a commit recorded for ``key`` (the outbox keeps them)."""
    return [t for snap in deps.db.collection(outbox.OUTBOX).stream()
            for t in snap.to_dict().get("tasks") or [] if t["body"].get("key") == key]


# --- the card processor: a pending top-up and Stripe's event about it ---------------------------
def pending_topup(deps, amount=2500) -> tuple[str, str]:
    uid, _ = create_user_with_token(deps)
    topup_id = "tpu_" + secrets.token_hex(10)
    now = deps.clock.now()
    deps.db.collection("wallet_topups").document(topup_id).set({
        "id": topup_id, "user_id": uid, "asset": "USD", "amount": amount, "provider": "stripe",
        "provider_amount": amount, "currency": "usd", "status": "pending",
        "provider_payment_id": "pi_1", "created_at": now, "updated_at": now})
    return uid, topup_id


def succeeded_event(topup_id: str, amount=2500, event_id=None) -> dict:
    return {"id": event_id or "evt_" + secrets.token_hex(12), "object": "event",
            "type": "payment_intent.succeeded", "created": int(time.time()), "livemode": False,
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": amount,
                                "currency": "usd", "status": "succeeded",
                                "metadata": {"topup_id": topup_id}}}}


def usd_posted(deps, uid) -> int:
    acc = accounts.user_wallet_id(uid, "USD")
    return accounts.read_balances(deps.db, [acc]).get(acc, (None, accounts.Balances()))[1].posted


def topup_events(deps, uid) -> list[dict]:
    return [e.to_dict() for e in deps.db.collection("events").stream()
            if e.get("type") == "topup.succeeded" and e.get("tenant") == uid]


# --- Stripe through the inbox --------------------------------------------------------------------
def test_a_stripe_event_is_stored_once_and_credited_once(deps, settings, inprocess_gateway):
    uid, topup_id = pending_topup(deps)
    event = succeeded_event(topup_id)
    url = f"{inprocess_gateway}/v1/inbound/stripe"

    def post(_):
        body, headers = stripe_request(event)   # each delivery signed afresh, as Stripe retries
        return requests.post(url, data=body, headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:   # 8 copies at once
        answers = list(pool.map(post, range(8)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 7
    for i in range(3):                                         # then 3 more, one by one
        r = post(i)
        assert r.status_code == 200 and r.json() == {"received": True, "duplicate": True}

    key = f"stripe:{event['id']}"
    doc = wait_status(deps, key, "processed")
    assert doc["result"] == "ok" and doc["attempts"] == 1 and doc["type"] == "payment_intent.succeeded"
    assert json.loads(doc["raw"]) == event and doc["event_id"] == event["id"]
    assert doc["expires_at"] - doc["received_at"] == dt.timedelta(days=30)
    assert len(list(deps.db.collection(service.COLLECTION).stream())) == 1   # stored once
    assert len(tasks_for(deps, key)) == 1                                     # one task scheduled
    assert usd_posted(deps, uid) == 2500                                      # credited once
    assert len(topup_events(deps, uid)) == 1
    topup = deps.db.collection("wallet_topups").document(topup_id).get().to_dict()
    assert topup["status"] == "succeeded" and topup["transfer_id"]


def test_replaying_a_processed_event_is_a_harmless_duplicate(deps, settings, inprocess_gateway):
    uid, topup_id = pending_topup(deps, amount=700)
    event = succeeded_event(topup_id, amount=700)
    url = f"{inprocess_gateway}/v1/inbound/stripe"
    body, headers = stripe_request(event)
    assert requests.post(url, data=body, headers=headers).json()["duplicate"] is False
    key = f"stripe:{event['id']}"
    wait_status(deps, key, "processed")
    before = deps.db.collection(service.COLLECTION).document(key).get()
    # Days later Stripe (or anyone holding a fresh signature) sends it again.
    body, headers = stripe_request(event)
    r = requests.post(url, data=body, headers=headers)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    # An old captured request replayed as it was is refused by the tolerance.
    old_body, old_headers = stripe_request(event, at=int(time.time()) - 3600)
    stale = requests.post(url, data=old_body, headers=old_headers)
    assert stale.status_code == 400 and stale.json()["error"]["code"] == "invalid_signature"
    # A duplicate task of the finished attempt is a no-op too.
    assert service.process(deps, key, 1) == "already_processed"
    time.sleep(0.5)
    after = deps.db.collection(service.COLLECTION).document(key).get()
    assert after.update_time == before.update_time
    assert usd_posted(deps, uid) == 700 and len(topup_events(deps, uid)) == 1


def test_the_ledger_still_credits_once_without_the_inbox(deps):
    """Independently of the inbox (say its document expired and the event came back): the
    top-up's state machine and the derived transfer id refuse a second credit."""
    uid, topup_id = pending_topup(deps, amount=300)
    event = succeeded_event(topup_id, amount=300)
    assert run_unit(deps, lambda uow: apply_card_event(uow, event)) == "ok"
    assert run_unit(deps, lambda uow: apply_card_event(uow, event)) == "already_succeeded"
    other = succeeded_event(topup_id, amount=300)               # another event id, same payment
    assert run_unit(deps, lambda uow: apply_card_event(uow, other)) == "already_succeeded"
    assert usd_posted(deps, uid) == 300 and len(topup_events(deps, uid)) == 1
    assert run_unit(deps, lambda uow: apply_card_event(uow, {"type": "payment_intent.succeeded"})) == "ignored"
    wrong = succeeded_event(pending_topup(deps, amount=300)[1], amount="300")
    assert run_unit(deps, lambda uow: apply_card_event(uow, wrong)) == "amount_mismatch"


# --- refusals ------------------------------------------------------------------------------------
def test_a_bad_signature_is_a_400_and_the_body_is_never_logged(deps, inbound, caplog):
    marker = "pan-4242424242424242-" + secrets.token_hex(6)
    event = {"id": "evt_forged1", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"metadata": {"topup_id": "tpu_x", "note": marker}}}}
    body, _ = stripe_request(event)
    forged = stripe_sign("whsec_wrong", body, int(time.time()))
    cases = [({"Stripe-Signature": forged}, "no signature matches the body"),
             ({}, "missing Stripe-Signature header"),
             ({"Stripe-Signature": "t=abc,v1=" + marker}, "malformed Stripe-Signature header"),
             ({"Stripe-Signature": stripe_sign(STRIPE_SECRET, body, int(time.time()) - 301)},
              "signature timestamp outside the tolerance"),
             ({"Stripe-Signature": stripe_sign(STRIPE_SECRET, body, int(time.time()) + 301)},
              "signature timestamp outside the tolerance"),
             ({"Stripe-Signature": stripe_sign(STRIPE_SECRET, body + b" ", int(time.time()))},
              "no signature matches the body")]
    with caplog.at_level(logging.DEBUG):
        for headers, reason in cases:
            r = inbound.post("/v1/inbound/stripe", data=body,
                             headers={"Content-Type": "application/json", **headers})
            assert r.status_code == 400, r.get_json()
            err = r.get_json()["error"]
            assert err["code"] == "invalid_signature" and reason in err["message"]
    refusals = [rec for rec in caplog.records if rec.getMessage() == "inbound webhook refused"]
    assert len(refusals) == len(cases)
    assert {rec.fields["reason"] for rec in refusals} == {reason for _, reason in cases}
    assert all(rec.fields["provider"] == "stripe" and rec.fields["size"] == len(body)
               and rec.levelno == logging.WARNING for rec in refusals)
    logged = "".join(rec.getMessage() + repr(rec.__dict__) for rec in caplog.records)
    assert marker not in logged and forged.split("v1=")[1] not in logged
    assert inbox_doc(deps, "stripe:evt_forged1") is None


def test_unknown_or_unconfigured_provider_is_a_404(deps, inbound, settings):
    body, headers = stripe_request({"id": "evt_1", "object": "event", "type": "x"})
    for path in ("/v1/inbound/acme", "/v1/inbound/STRIPE", "/v1/inbound/stripe%2Fx"):
        r = inbound.post(path, data=body, headers=headers)
        assert r.status_code == 404, (path, r.get_json())
        assert r.get_json()["error"]["code"] in ("unknown_provider", "unknown_route")
    deps.extras[SETTINGS_KEY] = settings.model_copy(update={"kyc_webhook_secret": ""})
    r = inbound.post("/v1/inbound/kyc", data=body, headers=headers)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "unknown_provider"
    assert inbound.get("/v1/inbound/stripe").status_code == 405


def test_signed_but_unusable_bodies_are_clear_4xx(deps, inbound, settings):
    for event, code in (({"object": "event", "type": "payment_intent.succeeded"}, "invalid_event"),
                        ({"id": "evt/../x", "object": "event", "type": "t"}, "invalid_event"),
                        ({"id": "evt_1", "object": "charge", "type": "t"}, "invalid_event"),
                        ({"id": 12, "object": "event", "type": "t"}, "invalid_event")):
        body, headers = stripe_request(event)
        r = inbound.post("/v1/inbound/stripe", data=body, headers=headers)
        assert r.status_code == 400 and r.get_json()["error"]["code"] == code, (event, r.get_json())
    body, headers = stripe_request([1, 2])
    assert inbound.post("/v1/inbound/stripe", data=body, headers=headers).status_code == 400
    deps.extras[SETTINGS_KEY] = settings.model_copy(update={"raw_body_limit": 200})
    body, headers = stripe_request({"id": "evt_big", "object": "event", "type": "t", "pad": "x" * 300})
    r = inbound.post("/v1/inbound/stripe", data=body, headers=headers)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "payload_too_large"
    assert list(deps.db.collection(service.COLLECTION).stream()) == []


# --- Standard Webhooks providers (KYC, payouts) --------------------------------------------------
def test_standard_webhooks_kyc_and_payouts_events_are_verified_and_stored(deps, settings,
                                                                           inprocess_gateway):
    """No capability handles KYC or payouts events yet: they are stored and marked ignored."""
    base = f"{inprocess_gateway}/v1/inbound"
    sent = {}
    for provider, secret, etype in (("kyc", KYC_SECRET, "verification.approved"),
                                    ("payouts", PAYOUTS_SECRET, "payout.paid")):
        payload = {"type": etype, "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "x1"}}
        body, headers = standard_request(payload, secret=secret)
        r = requests.post(f"{base}/{provider}", data=body, headers=headers)
        assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False}, r.text
        again = requests.post(f"{base}/{provider}", data=body, headers=headers)   # sender retry
        assert again.json()["duplicate"] is True
        sent[f"{provider}:{headers['webhook-id']}"] = (etype, body)
    for key, (etype, body) in sent.items():
        doc = wait_status(deps, key, "ignored")
        assert doc["type"] == etype and doc["raw"] == body.decode() and doc["attempts"] == 1

    # The other provider's secret, a stale or future timestamp, missing headers: all refused.
    body, good = standard_request({"type": "payout.paid"}, secret=KYC_SECRET)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=301)
    _, stale = standard_request({"type": "payout.paid"}, secret=PAYOUTS_SECRET, at=old)
    _, future = standard_request({"type": "payout.paid"}, secret=PAYOUTS_SECRET,
                                 at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=301))
    for headers in (good, stale, future,
                    {k: v for k, v in good.items() if k != "webhook-signature"},
                    {**good, "webhook-signature": "v1,!!!"}, {**good, "webhook-timestamp": "1e9"}):
        r = requests.post(f"{base}/payouts", data=body, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature", r.text
    # The stale request would verify but for its age (its body is the one it was signed over).
    body_stale, stale = standard_request({"type": "payout.paid"}, secret=PAYOUTS_SECRET, at=old)
    r = requests.post(f"{base}/payouts", data=body_stale, headers=stale)
    assert r.status_code == 400 and "tolerance" in r.json()["error"]["message"]


def test_a_rotated_secret_and_several_signatures_verify(deps, settings, inbound):
    new = standard_secret()
    deps.extras[SETTINGS_KEY] = settings.model_copy(
        update={"kyc_webhook_secret": f"{new}, {KYC_SECRET}"})
    body, headers = standard_request({"type": "kyc.rotated"}, secret=KYC_SECRET)    # old secret
    assert inbound.post("/v1/inbound/kyc", data=body, headers=headers).status_code == 200
    at = dt.datetime.now(dt.UTC)
    body, headers = standard_request({"type": "kyc.both"}, secret=new, at=at)
    other = Webhook(standard_secret()).sign(headers["webhook-id"], at, body.decode())
    headers["webhook-signature"] = f"v2,abc {other} {headers['webhook-signature']}"
    assert inbound.post("/v1/inbound/kyc", data=body, headers=headers).status_code == 200
    deps.extras[SETTINGS_KEY] = settings.model_copy(update={"kyc_webhook_secret": new})
    body, headers = standard_request({"type": "kyc.retired"}, secret=KYC_SECRET)
    assert inbound.post("/v1/inbound/kyc", data=body, headers=headers).status_code == 400


# --- processing: retries, dead letters, crashes, lost tasks -------------------------------------
def effect_count(deps, key) -> int:
    snap = deps.db.collection("test_effects").document(key.replace(":", "_")).get()
    return snap.get("n") if snap.exists else 0


def apply_effect(uow, event) -> str:
    """What a real handler does: a write in the event's unit (counted: applied once?)."""
    ref = uow.db.collection("test_effects").document("payouts_" + event["data"]["id"])
    uow.set(ref, {"n": firestore.Increment(1)}, merge=True)
    return "applied"


def test_a_handler_failing_twice_is_retried_by_tasks_and_applied_once(deps, settings, registered,
                                                                       inprocess_gateway):
    calls = []

    def flaky(uow, event):
        calls.append(time.time())
        if len(calls) <= 2:
            apply_effect(uow, event)          # buffered, then discarded with the failure
            raise ServiceUnavailable("payouts provider is down")
        return apply_effect(uow, event)
    registered("payouts", "payout.flaky", flaky)
    msg_id = "msg_flaky" + secrets.token_hex(4)
    body, headers = standard_request({"type": "payout.flaky", "data": {"id": msg_id}},
                                     secret=PAYOUTS_SECRET, msg_id=msg_id)
    r = requests.post(f"{inprocess_gateway}/v1/inbound/payouts", data=body, headers=headers)
    assert r.status_code == 200
    doc = wait_status(deps, f"payouts:{msg_id}", "processed")
    assert doc["attempts"] == 3 and doc["result"] == "applied"
    assert [e["attempt"] for e in doc["errors"]] == [1, 2]
    assert "ServiceUnavailable" in doc["last_error"]
    assert calls[1] - calls[0] >= 0.1 and calls[2] - calls[1] >= 0.1     # backed off
    assert len(tasks_for(deps, f"payouts:{msg_id}")) == 3                 # one task per attempt
    time.sleep(0.5)
    assert effect_count(deps, f"payouts:{msg_id}") == 1 and len(calls) == 3


def test_exhausted_or_permanent_failures_are_dead_lettered(deps, settings, registered,
                                                           inprocess_gateway):
    deps.extras[SETTINGS_KEY] = settings.model_copy(update={"max_attempts": 3})
    calls = {"down": 0, "bad": 0}

    def always_down(uow, event):
        calls["down"] += 1
        raise RuntimeError("still down")

    def malformed(uow, event):
        calls["bad"] += 1
        raise InvalidRequest("no such payout")
    registered("payouts", "payout.down", always_down)
    registered("payouts", "payout.bad", malformed)
    keys = []
    for etype in ("payout.down", "payout.bad"):
        body, headers = standard_request({"type": etype}, secret=PAYOUTS_SECRET)
        assert requests.post(f"{inprocess_gateway}/v1/inbound/payouts", data=body,
                             headers=headers).status_code == 200
        keys.append(f"payouts:{headers['webhook-id']}")
    down = wait_status(deps, keys[0], "dead_lettered")
    assert down["attempts"] == 3 and "RuntimeError: still down" in down["last_error"]
    bad = wait_status(deps, keys[1], "dead_lettered")
    assert bad["attempts"] == 1 and "no such payout" in bad["last_error"]
    time.sleep(0.6)
    assert calls == {"down": 3, "bad": 1}
    assert service.process(deps, keys[0], 4) == "already_dead_lettered"


def test_only_the_due_attempt_runs(deps, settings, registered, inbound):
    """A duplicate of an attempt that already recorded its outcome, or a task from the future,
    is a no-op: the handler does not run and nothing is scheduled twice."""
    calls = []

    def down(uow, event):
        calls.append(1)
        raise RuntimeError("down")
    registered("payouts", "payout.due", down)
    body, headers = standard_request({"type": "payout.due"}, secret=PAYOUTS_SECRET)
    assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).status_code == 200
    key = f"payouts:{headers['webhook-id']}"
    assert service.process(deps, key, 2) == "stale"
    assert service.process(deps, key, 1) == "retrying"
    assert service.process(deps, key, 1) == "stale"
    assert service.process(deps, key, 3) == "stale"
    assert service.process(deps, key, 2) == "retrying" and len(calls) == 2
    doc = inbox_doc(deps, key)
    assert doc["attempts"] == 2 and doc["next_attempt_at"] > doc["received_at"]
    assert sorted(t["body"]["attempt"] for t in tasks_for(deps, key)) == [1, 2, 3]


class Crash(BaseException):
    """The worker dies mid-attempt (not an Exception: nothing catches it, nothing commits)."""


def test_a_crash_mid_processing_loses_nothing(deps, settings, registered, inbound, inbound_tasks,
                                              service_headers):
    crashes = []

    def crashing_once(uow, event):
        result = apply_effect(uow, event)
        if not crashes:
            crashes.append(1)
            raise Crash()
        return result
    registered("payouts", "payout.crashy", crashing_once)
    msg_id = "msg_crash" + secrets.token_hex(4)
    body, headers = standard_request({"type": "payout.crashy", "data": {"id": msg_id}},
                                     secret=PAYOUTS_SECRET, msg_id=msg_id)
    assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).status_code == 200
    key = f"payouts:{msg_id}"
    with pytest.raises(Crash):                       # attempt 1 dies before its commit
        service.process(deps, key, 1)
    doc = inbox_doc(deps, key)
    assert doc["status"] == "received" and doc["attempts"] == 0 and effect_count(deps, key) == 0
    # The queue delivers the task again: it applies the event, once.
    task = {"key": key, "attempt": 1}
    r = inbound_tasks.post("/_fn/inbound_tasks/process", json=task, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["outcome"] == "processed", r.get_json()
    again = inbound_tasks.post("/_fn/inbound_tasks/process", json=task, headers=service_headers)
    assert again.get_json()["outcome"] == "already_processed"
    assert effect_count(deps, key) == 1
    # Bad task bodies are 4xx, not 500s; a stranger cannot run a task.
    for bad in ({"key": "a/b", "attempt": 1}, {"key": key, "attempt": 0}, {"key": key}):
        assert inbound_tasks.post("/_fn/inbound_tasks/process", json=bad,
                                  headers=service_headers).status_code == 400
    assert inbound_tasks.post("/_fn/inbound_tasks/process", json=task).status_code == 401
    assert inbound_tasks.post("/_fn/inbound_tasks/process", json={"key": "payouts:none", "attempt": 1},
                              headers=service_headers).get_json()["outcome"] == "missing"


def run_sweeper(headers) -> tuple[int, dict]:
    """The scheduler's call (``POST {}``) to the ``inbound_sweeper`` router."""
    import flask
    from werkzeug.test import EnvironBuilder

    from shared.inbox.http import sweeper
    environ = EnvironBuilder(path="/_fn/inbound_sweeper", method="POST", json={},
                             headers=headers).get_environ()
    response = sweeper(flask.Request(environ))
    return response.status_code, response.get_json()


def test_the_sweep_reschedules_an_event_whose_task_was_lost(deps, settings, registered, inbound,
                                                            service_headers, request):
    registered("payouts", "payout.swept", apply_effect)
    msg_id = "msg_swept" + secrets.token_hex(4)
    body, headers = standard_request({"type": "payout.swept", "data": {"id": msg_id}},
                                     secret=PAYOUTS_SECRET, msg_id=msg_id)
    # No gateway is listening: the queue's dispatches of attempt 1 fail until it gives up.
    assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).status_code == 200
    key = f"payouts:{msg_id}"
    time.sleep(2.0)
    assert inbox_doc(deps, key)["status"] == "received"
    assert run_sweeper(service_headers) == (200, {"object": "inbound_sweep", "rescheduled": 0})
    assert run_sweeper({})[0] == 401
    deps.extras[SETTINGS_KEY] = settings.model_copy(update={"stale_after_seconds": 1})
    request.getfixturevalue("inprocess_gateway")
    assert run_sweeper(service_headers)[1]["rescheduled"] == 1
    doc = wait_status(deps, key, "processed")
    assert doc["sweeps"] == 1 and effect_count(deps, key) == 1
    assert run_sweeper(service_headers)[1]["rescheduled"] == 0


def test_an_attempt_that_stays_contended_is_retried_later(deps, settings, registered, inbound,
                                                          monkeypatch):
    registered("payouts", "payout.contended", apply_effect)
    msg_id = "msg_contended" + secrets.token_hex(4)
    body, headers = standard_request({"type": "payout.contended", "data": {"id": msg_id}},
                                     secret=PAYOUTS_SECRET, msg_id=msg_id)
    assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).status_code == 200
    key = f"payouts:{msg_id}"
    real, calls = service.run_unit, []

    def contended_once(deps_, fn, **kw):
        calls.append(fn)
        if len(calls) == 1:
            raise service.Contention()
        return real(deps_, fn, **kw)
    monkeypatch.setattr(service, "run_unit", contended_once)
    assert service.process(deps, key, 1) == "retrying"
    doc = inbox_doc(deps, key)
    assert doc["attempts"] == 1 and "Contention" in doc["last_error"]
    assert service.process(deps, key, 2) == "processed" and effect_count(deps, key) == 1


def test_round_trips_of_receive_and_process(deps, settings, registered, inbound):
    """Counted, not timed: the acknowledgement is one read and one commit (then the outbox is
    marked published); a duplicate is one read; processing is one read and one commit plus
    what the handler reads."""
    from bench.harness import RpcCounter
    registered("payouts", "payout.counted", apply_effect)
    body, headers = standard_request({"type": "payout.other"}, secret=PAYOUTS_SECRET)
    inbound.post("/v1/inbound/payouts", data=body, headers=headers)     # warm-up (clients)
    body, headers = standard_request({"type": "payout.counted", "data": {"id": "rt"}},
                                     secret=PAYOUTS_SECRET)
    with RpcCounter() as new:
        assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).status_code == 200
    assert new.counts == {"batch_get_documents": 1, "commit": 2}, new.counts
    with RpcCounter() as duplicate:
        assert inbound.post("/v1/inbound/payouts", data=body, headers=headers).get_json()["duplicate"]
    assert duplicate.counts == {"batch_get_documents": 1}, duplicate.counts
    with RpcCounter() as processed:
        assert service.process(deps, f"payouts:{headers['webhook-id']}", 1) == "processed"
    assert processed.counts == {"batch_get_documents": 1, "commit": 1}, processed.counts


# --- the verifiers, pure ---------------------------------------------------------------------------
def test_the_standard_webhooks_verifier_agrees_with_the_reference_library():
    secret, other = standard_secret(), standard_secret()
    body, headers = standard_request({"type": "a"}, secret=secret)
    lowered = {k.lower(): v for k, v in headers.items()}
    now = int(lowered["webhook-timestamp"])
    Webhook(secret).verify(body, headers)                       # the reference accepts it
    v = schemes.standard_webhooks(body, lowered, [other, secret], now)
    assert v.message_id == lowered["webhook-id"] and v.timestamp == now
    for bad_secrets in ([other], ["whsec_%%%"], []):
        with pytest.raises(schemes.SignatureRejected):
            schemes.standard_webhooks(body, lowered, bad_secrets, now)
    with pytest.raises(schemes.SignatureRejected):
        schemes.standard_webhooks(body + b" ", lowered, [secret], now)
    with pytest.raises(schemes.SignatureRejected, match="tolerance"):
        schemes.standard_webhooks(body, lowered, [secret], now + 301)
    schemes.standard_webhooks(body, lowered, [secret], now + 300)
    raw_key = secret.removeprefix("whsec_")                      # a secret without the prefix
    schemes.standard_webhooks(body, lowered, [raw_key], now)


def test_the_stripe_verifier_accepts_any_live_secret():
    body = b'{"id":"evt_1","object":"event"}'
    header = stripe_sign("whsec_old", body, 1_700_000_000)
    v = schemes.stripe(body, {"stripe-signature": header}, ["whsec_new", "whsec_old"], 1_700_000_100)
    assert v.timestamp == 1_700_000_000 and v.message_id is None
    with pytest.raises(schemes.SignatureRejected, match="tolerance"):
        schemes.stripe(body, {"stripe-signature": header}, ["whsec_old"], 1_700_000_301)
    with pytest.raises(schemes.SignatureRejected, match="no signature"):
        schemes.stripe(body, {"stripe-signature": header}, ["whsec_new", ""], 1_700_000_000)
    assert secret_list(" a, b\nc ,") == ("a", "b", "c") and secret_list("") == ()


def test_handler_patterns_pick_the_most_specific(registered):
    def exact(uow, e): return "exact"
    def family(uow, e): return "family"
    def anything(uow, e): return "any"
    registered("prov", "a.b.c", exact)
    registered("prov", "a.*", family)
    registered("prov", "*", anything)
    assert handlers.handler_for("prov", "a.b.c") is exact
    assert handlers.handler_for("prov", "a.b.d") is family
    assert handlers.handler_for("prov", "b.x") is anything and handlers.handler_for("prov", None) is anything
    assert handlers.handler_for("other", "a.b.c") is None
    with pytest.raises(ValueError):
        handlers.on("prov", "a.*")(lambda uow, e: None)          # a second handler for a pattern
    with pytest.raises(ValueError):
        handlers.on("prov", "a*b")
