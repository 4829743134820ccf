"""The whole loop on the emulators with R1's phone fleet: a client POSTs over HTTP to the local
gateway (served in process), Cloud Tasks runs dispatch and the deadlines, firebase-admin pushes
to the FCM simulator, which forwards to the fleet's phones, which fetch and report through the
gateway; the client's webhook endpoint and its per-message callback URL get every status,
verified with the ``standardwebhooks`` library. Deadlines are compressed to seconds."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import threading
import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from shared.platform.outbox import Event
from shared.relay import availability
from shared.webhooks import fanout
from tests.relay.dispatch_kit import FAST, client_key, events_of, job_doc, message_doc, use_settings, wire_fcm
from tests.relay.supply_kit import fresh_phone
from tests.relay.test_fleet import FAST as FLEET_FAST, code_source, make_fleet  # noqa: F401
from tests.support.webhooks import start_hooks

FINAL = ("delivered", "failed", "expired", "canceled")


@pytest.fixture
def world(deps, relay_wiring, inprocess_gateway, fcm_server, supply_settings):
    use_settings(deps, **FAST)
    wire_fcm(deps, fcm_server)
    hooks = start_hooks(deps)            # KMS for secrets, fast webhook retries, the receiver
    client = client_key(deps)
    yield inprocess_gateway, client, hooks
    hooks.sim.stop()


def post(base, client, **body):
    r = requests.post(f"{base}/v1/messages", json={"text": "Your code is 204816", **body},
                      headers=client.headers(), timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def wait_status(deps, ids, statuses=FINAL, timeout=40.0):
    deadline = time.monotonic() + timeout
    while True:
        docs = {i: message_doc(deps, i) for i in ids}
        if all(d["status"] in statuses for d in docs.values()) or time.monotonic() > deadline:
            return docs
        time.sleep(0.2)


def fan_out_events(deps, message_ids):
    """What the webhooks_events consumer does with each event of these messages."""
    for snap in deps.db.collection("events").stream():
        doc = snap.to_dict()
        if ((doc.get("data") or {}).get("object") or {}).get("id") in message_ids:
            fanout.fan_out(deps, Event(**doc))


def test_happy_path_end_to_end_with_a_client_webhook_and_a_callback_url(deps, world, make_fleet):
    base, client, hooks = world
    fleet = make_fleet(phones=3, carriers=("smart", "metfone", "cellcard"), timing=FLEET_FAST)
    endpoint_id, endpoint_secret = hooks.endpoint("/client-hook", ["message.*"], owner=client.owner)
    r = requests.post(f"{base}/v1/messages/callback_secret", headers=client.headers(), timeout=30)
    callback_secret = r.json()["secret"]
    to = fresh_phone("cellcard")
    m = post(base, client, to=to, callback_url=hooks.url("/per-message"))
    done = wait_status(deps, [m["id"]])[m["id"]]
    assert done["status"] == "delivered", done["history"]
    job = job_doc(deps, done["sent_by_job"])
    cellcard_phone = next(p for p in fleet.phones if p.carriers[0] == "cellcard")
    assert job["sim_id"] == cellcard_phone.sims[0]            # same carrier
    got = requests.get(f"{base}/v1/messages/{m['id']}", headers=client.headers(), timeout=30).json()
    assert [h["status"] for h in got["status_history"]] == ["queued", "assigned", "sending", "sent", "delivered"]
    expected = ["message.queued", "message.assigned", "message.sending", "message.sent", "message.delivered"]
    assert events_of(deps, m["id"]) == expected

    # the per-message callback: every change, signed with the callback secret
    deadline = time.monotonic() + 20
    while len(hooks.sim.inbox("/per-message")) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    callbacks = hooks.sim.inbox("/per-message")
    types = []
    for entry in callbacks:
        payload = Webhook(callback_secret).verify(entry["body"], entry["headers"])
        assert payload["data"]["object"]["id"] == m["id"]
        types.append(payload["type"])
    assert sorted(types) == sorted(expected)

    # the client's webhook endpoint, through the platform's fan-out
    fan_out_events(deps, {m["id"]})
    deadline = time.monotonic() + 20
    while len(hooks.sim.inbox("/client-hook")) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    received = [Webhook(endpoint_secret).verify(e["body"], e["headers"])
                for e in hooks.sim.inbox("/client-hook")]
    assert sorted(p["type"] for p in received) == sorted(expected)
    assert {p["data"]["object"]["to"] for p in received} == {to}
    assert all("token" not in e["body"] and "sim_" not in e["body"] for e in hooks.sim.inbox("/client-hook"))


def test_a_silent_provider_is_replaced_and_the_message_is_delivered_by_another(deps, world, make_fleet):
    base, client, _hooks = world
    fleet = make_fleet(phones=2, behaviours=["silent", "honest"], carriers=("smart",),
                       timing=FLEET_FAST)
    silent = fleet.phones[0]
    ids = []
    hit_silent = None
    for _ in range(8):        # until one message was handed to the silent phone first
        m = post(base, client, to=fresh_phone("smart"))
        ids.append(m["id"])
        if fleet.wait_for(lambda: message_doc(deps, m["id"]).get("jobs"), timeout=10):
            first = job_doc(deps, message_doc(deps, m["id"])["jobs"][0])
            if first["provider_id"] == silent.provider_id:
                hit_silent = m["id"]
                break
    assert hit_silent, "the silent phone was never drawn"
    docs = wait_status(deps, ids, timeout=150)   # reassignment after an ack timeout, under load
    assert all(d["status"] == "delivered" for d in docs.values()), {i: d["status"] for i, d in docs.items()}
    doc = docs[hit_silent]
    statuses = [h["status"] for h in doc["history"]]
    assert statuses[:4] == ["queued", "assigned", "queued", "assigned"] and statuses[-1] == "delivered"
    assert doc["history"][2]["reason"] == "ack_timeout"
    assert job_doc(deps, doc["sent_by_job"])["provider_id"] == fleet.phones[1].provider_id
    assert job_doc(deps, doc["jobs"][0])["status"] == "timeout"
    assert doc["duplicate_sends"] == 0


def test_with_every_sim_of_the_carrier_offline_the_message_falls_back_to_another(deps, world, make_fleet):
    base, client, _hooks = world
    fleet = make_fleet(phones=2, carriers=("smart", "metfone"), timing=FLEET_FAST)
    m = post(base, client, to=fresh_phone("cellcard"))
    doc = wait_status(deps, [m["id"]])[m["id"]]
    assert doc["status"] == "delivered"
    sim = job_doc(deps, doc["sent_by_job"])["sim_id"]
    assert sim in {p.sims[0] for p in fleet.phones}
    assert availability.availability_ref(deps.db, sim).get().get("carrier") in ("smart", "metfone")


def test_a_burst_never_exceeds_a_sims_quota_and_loses_nothing(deps, world, make_fleet):
    base, client, _hooks = world
    fleet = make_fleet(phones=2, carriers=("smart",), timing=FLEET_FAST)
    sims = {p.sims[0] for p in fleet.phones}
    with cf.ThreadPoolExecutor(8) as pool:
        ids = [m["id"] for m in pool.map(lambda i: post(base, client, to=fresh_phone("smart"),
                                                        text=f"burst {i}"), range(16))]
    deadline = time.monotonic() + 100   # 2 SIMs at their per-minute caps: may span two minutes under load
    while time.monotonic() < deadline:
        docs = [message_doc(deps, i) for i in ids]
        if sum(d["status"] == "delivered" for d in docs) >= 12:
            break
        time.sleep(0.3)
    docs = [message_doc(deps, i) for i in ids]
    assert all(d["status"] in ("queued", "assigned", "sending", "sent", "delivered") for d in docs), \
        [d["status"] for d in docs]                          # nothing failed, nothing lost
    assert sum(d["status"] == "delivered" for d in docs) >= 12
    per_minute = collections.Counter()
    for d in docs:
        for job_id in d.get("jobs") or []:
            job = job_doc(deps, job_id)
            per_minute[(job["sim_id"], int(job["assigned_at"].timestamp()) // 60)] += 1
    cap = availability.availability_ref(deps.db, next(iter(sims))).get().to_dict()["caps"]["per_minute"]
    assert max(per_minute.values()) <= cap, per_minute
    for sim in sims:
        doc = availability.availability_ref(deps.db, sim).get().to_dict()
        assert len(doc["in_flight_jobs"]) <= doc["caps"]["in_flight"]


def test_lying_phones_are_refused_and_lose_their_jobs(deps, world, make_fleet):
    base, client, _hooks = world
    fleet = make_fleet(phones=2, behaviours=["liar", "honest"], carriers=("smart",),
                       timing=FLEET_FAST)
    liar = fleet.phones[0]
    for _ in range(10):
        post(base, client, to=fresh_phone("smart"))

    def caught():   # a forged report was sent, refused with 403, and the liar's SIM penalised
        stats = fleet.stats().get("liar", {})
        sim = availability.availability_ref(deps.db, liar.sims[0]).get().to_dict()
        return (stats.get("forged", 0) >= 1 and any(k.endswith("_403") for k in stats)
                and (sim["penalty"] > 0 or sim["provider_penalty"] > 0)), stats, sim
    deadline = time.monotonic() + 60
    while not (verdict := caught())[0] and time.monotonic() < deadline:
        time.sleep(0.3)
    ok, stats, sim = verdict
    assert stats.get("forged", 0) >= 1, stats
    assert any(k.endswith("_403") for k in stats), stats
    assert sim["penalty"] > 0 or sim["provider_penalty"] > 0, sim


def test_a_message_nobody_sends_expires(deps, world, make_fleet):
    base, client, _hooks = world
    use_settings(deps, **{**FAST, "min_expiry_seconds": 2, "ack_deadline_seconds": 1.5})
    make_fleet(phones=2, behaviours=["silent", "silent"], carriers=("smart",), timing=FLEET_FAST)
    m = post(base, client, to=fresh_phone("smart"), expires_at=int(time.time()) + 6,
             priority="high")
    doc = wait_status(deps, [m["id"]], timeout=30)[m["id"]]
    assert doc["status"] == "expired", doc["history"]
    assert doc["failure_code"] == "expired" and doc["active"] is False
    assert events_of(deps, m["id"])[-1] == "message.expired"
