"""SMS relay, demand side and dispatch (issue 11, Measure; ADR 0044).

Through ``bench/run.py``'s stack: the gunicorn gateway serves every function, the Cloud Tasks
emulator runs dispatch, firebase-admin pushes to the FCM simulator, which forwards each push to
R1's phone fleet (``infra/local/phone_fleet.py``: honest phones with the default timing, about
1 s to fetch and send and 2–6 s for the delivery report, like a carrier), whose phones fetch and
report through the gateway.

* (a) accepted → FCM push sent: a client POSTs one message at a time over HTTP; latency = the FCM
  simulator's receive time of the job's push minus the time just before the POST (so it holds
  the POST, the outbox's task enqueue, the emulator's dispatch, matching, the commit and the
  FCM call). Goal: p50 < 500 ms.
* (b) messages per second end to end: a burst of N messages POSTed by 8 threads; N / (last
  ``delivered`` − first POST). The fleet's SIMs have their caps raised for the bench (60 a
  minute, 4 in flight) so the network, not the carriers' daily limits, is measured, and every
  other test-mode SIM (the local stack's own fleet, with its slow and liar phones) is set aside
  for the bench, so the figure is this fleet's alone. ``served_by`` says whose phone held each
  message's job, ``why_not_delivered`` where an unfinished one stands and whose phone has it,
  ``phone_calls`` the fleet's calls by outcome (``<call>_<status>`` for a non-2xx answer).
* (c) Firestore round trips per message lifecycle, in process: create (the client's POST),
  assign (dispatch: matching, reservation, push), fetch, sent, delivered (the phone's calls),
  each through its function's test client or service, on a live-mode phone of its own that
  ignores pushes (so nothing else acts on the message meanwhile).
"""
from __future__ import annotations

import datetime as dt
import collections
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from google.cloud.firestore_v1 import FieldFilter

from bench.harness import BenchEnv, RpcCounter

FAST_CAPS = {"per_minute": 60, "per_hour": 2000, "per_day": 5000, "in_flight": 4}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def _client(deps, livemode: bool) -> dict[str, str]:
    from shared.identity.apikeys import service
    from shared.platform.ids import new_id
    from shared.platform.uow import run_unit
    owner = new_id("usr")
    key = run_unit(deps, lambda uow: service.create_api_key(
        uow, owner_id=owner, name="bench sms", scopes=["sms:read", "sms:write"], livemode=livemode))
    deps.db.collection("relay_clients").document(owner).set({"daily_quota": 1_000_000})
    return {"Authorization": f"Bearer {key.secret}"}


def _raise_caps(deps, fleet) -> None:
    from shared.relay import availability
    from shared.relay.supply_settings import SupplySettings
    s, now = SupplySettings(), deps.clock.now()
    for phone in fleet.phones:
        for sim in phone.sims:
            ref = availability.availability_ref(deps.db, sim)
            doc = ref.get().to_dict()
            doc["caps"] = dict(FAST_CAPS)
            availability.evaluate(doc, now, s)
            ref.set(doc)


def _set_aside_others(deps, fleet) -> list[str]:
    """Take every other test-mode SIM out of matching (flag ``disabled``, as its owner would)
    and return them: the local stack runs its own fleet (``make run``'s honest, slow and liar
    phones, ``infra/local/stack.py``) in the same test-mode pool, and without this the burst
    is shared with it: a liar's forged delivery report leaves its messages ``sent`` until the
    10-minute report deadline, and its slow phone and default caps blur the figure."""
    from shared.platform.uow import run_unit
    from shared.relay import availability
    ours = {p.provider_id for p in fleet.phones}
    others = []
    for snap in (deps.db.collection(availability.COLLECTION)
                 .where(filter=FieldFilter("livemode", "==", False)).stream()):
        doc = snap.to_dict()
        if doc.get("provider_id") not in ours and not (doc.get("flags") or {}).get("disabled"):
            others.append(snap.id)
    if others:
        run_unit(deps, lambda uow: availability.set_flag(uow, others, "disabled", True))
    return others


def _restore(deps, sims: list[str]) -> None:
    from shared.platform.uow import run_unit
    from shared.relay import availability
    if sims:
        run_unit(deps, lambda uow: availability.set_flag(uow, sims, "disabled", False))


def _number(i: int) -> str:
    """A distinct Smart number per message (per-recipient caps stay out of the way)."""
    return f"+85510{200000 + i % 800000:06d}"


class Fcm:
    def __init__(self, url: str):
        self.url, self.http = url.rstrip("/"), requests.Session()

    def push_time(self, job_prefix: str) -> float | None:
        for entry in self.http.get(f"{self.url}/_inbox", timeout=10).json():
            job = (((entry.get("message") or {}).get("data")) or {}).get("job_id") or ""
            if job.startswith(job_prefix):
                return float(entry["received_at_unix"])
        return None


def _latency(env: BenchEnv, headers, fcm: Fcm, n: int) -> dict[str, Any]:
    http = requests.Session()
    pushes, accepts, missing = [], [], 0
    for i in range(n):
        t0 = time.time()
        r = http.post(f"{env.base_url}/v1/messages", headers=headers, timeout=30,
                      json={"to": _number(i), "text": f"Bench latency {i}"})
        accepts.append((time.time() - t0) * 1000)
        if r.status_code != 202:
            missing += 1
            continue
        prefix = "job_" + r.json()["id"][4:]
        deadline = time.time() + 10
        got = None
        while got is None and time.time() < deadline:
            got = fcm.push_time(prefix)
            if got is None:
                time.sleep(0.01)
        if got is None:
            missing += 1
        else:
            pushes.append((got - t0) * 1000)
        time.sleep(0.2)
    return {"name": "accepted -> FCM push sent (HTTP, one at a time)", "n": n,
            "p50_ms": round(statistics.median(pushes), 1) if pushes else None,
            "p99_ms": round(_pct(pushes, 0.99), 1) if pushes else None,
            "post_p50_ms": round(statistics.median(accepts), 1), "missing": missing,
            "goal": "p50 < 500 ms"}


def _owners(fleet, stack_fleet_url: str | None) -> dict[str, str]:
    """provider id -> "bench:<behaviour>" (this bench's fleet) or "stack:<behaviour>" (the
    local stack's own fleet, ``make run``'s honest/slow/liar phones, which share the pool)."""
    owners = {p.provider_id: f"bench:{p.behaviour}" for p in fleet.phones if p.provider_id}
    if stack_fleet_url:
        try:
            for p in requests.get(f"{stack_fleet_url}/_fleet", timeout=5).json().get("phones", []):
                if p.get("provider"):
                    owners[p["provider"]] = f"stack:{p['behaviour']}"
        except (requests.RequestException, ValueError):
            pass
    return owners


def _served_by(db, ids: list[str], owners: dict[str, str]) -> dict[str, str]:
    """message id -> whose phone holds its current job (``owners``' label, "other" or "none")."""
    from shared.relay import lifecycle
    messages = {s.id: s.to_dict() or {} for s in db.get_all([lifecycle.message_ref(db, i) for i in ids])}
    job_ids = {i: m.get("job") for i, m in messages.items() if m.get("job")}
    jobs = {s.id: s.to_dict() or {} for s in db.get_all([lifecycle.job_ref(db, j) for j in job_ids.values()])}
    return {i: owners.get((jobs.get(job_ids.get(i)) or {}).get("provider_id"),
                          "other" if i in job_ids else "none") for i in ids}


def _throughput(env: BenchEnv, headers, n: int, owners: dict[str, str] | None = None) -> dict[str, Any]:
    from shared.relay import lifecycle
    http = requests.Session()
    ids: list[str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        r = http.post(f"{env.base_url}/v1/messages", headers=headers, timeout=30,
                      json={"to": _number(1000 + i), "text": f"Bench burst {i}"})
        if r.status_code == 202:
            with lock:
                ids.append(r.json()["id"])
    start = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(n)))
    posted = time.time() - start
    db = env.deps.db
    deadline = start + 180
    delivered_at: dict[str, float] = {}
    reasons: collections.Counter = collections.Counter()
    while time.time() < deadline and len(delivered_at) < len(ids):
        refs = [lifecycle.message_ref(db, i) for i in ids if i not in delivered_at]
        for snap in db.get_all(refs):
            doc = snap.to_dict()
            if doc and doc["status"] == "delivered":
                delivered_at[doc["id"]] = doc["delivered_at"].timestamp()
            elif doc and doc["status"] in ("failed", "expired"):
                delivered_at[doc["id"]] = float("nan")
                reasons[f"{doc['status']}:{doc.get('failure_code')}"] += 1
        time.sleep(0.25)
    done = [t for t in delivered_at.values() if t == t]
    served = _served_by(db, ids, owners or {}) if ids else {}
    for i in ids:
        if i not in delivered_at:   # still open at the deadline: say where it stands, and whose
            doc = lifecycle.message_ref(db, i).get().to_dict() or {}
            last = (doc.get("history") or [{}])[-1]
            reasons[f"open:{doc.get('status')}:{last.get('reason')}:{doc.get('due')}:{served[i]}"] += 1
    elapsed = (max(done) - start) if done else float("nan")
    return {"name": f"messages/s end to end through the fleet (burst of {n})", "n": len(ids),
            "delivered": len(done), "failed_or_expired": len(delivered_at) - len(done),
            "unfinished": len(ids) - len(delivered_at), "why_not_delivered": dict(reasons),
            "served_by": dict(collections.Counter(served.values())),
            "post_seconds": round(posted, 2),
            "seconds_to_last_delivered": round(elapsed, 2),
            "per_second": round(len(done) / elapsed, 2) if done else None}


def _round_trips(env: BenchEnv, phone, headers) -> list[dict[str, Any]]:
    from shared.relay import dispatch, lifecycle
    deps = env.deps
    messages, relay = env.client("messages"), env.client("relay")
    phone_headers = {"Authorization": f"Bearer {phone.access_token}"}
    rows = []
    for run in range(3):
        counts: dict[str, float] = {}
        with RpcCounter() as c:
            r = messages.post("/v1/messages", headers=headers, json={
                "to": _number(5000 + run), "text": "Round trips",
                "send_at": int(time.time()) + 3600})     # the stack's own dispatch waits an hour
        counts["create"] = c.total
        message_id = r.get_json()["id"]
        lifecycle.message_ref(deps.db, message_id).update({"due_at": deps.clock.now()})
        with RpcCounter() as c:
            outcome = dispatch.assign(deps, message_id)
        counts["assign + push"] = c.total
        job_id = lifecycle.message_ref(deps.db, message_id).get().get("job")
        with RpcCounter() as c:
            token = relay.get(f"/v1/relay/jobs/{job_id}", headers=phone_headers).get_json()["token"]
        counts["fetch"] = c.total
        for kind in ("sent", "delivered"):
            with RpcCounter() as c:
                relay.post(f"/v1/relay/jobs/{job_id}/{kind}", json={"token": token}, headers=phone_headers)
            counts[kind] = c.total
        status = lifecycle.message_ref(deps.db, message_id).get().get("status")
        if run == 0:
            continue        # warm-up (clients, caches)
        rows.append({"name": f"Firestore round trips per message lifecycle (run {run})",
                     **{k: v for k, v in counts.items()}, "total": sum(counts.values()),
                     "assign_outcome": outcome, "final_status": status})
    return rows


def run(env: BenchEnv) -> list[dict]:
    from infra.local.phone_fleet import PhoneFleet, Timing
    fcm_url, sms_url = os.environ.get("PAYLOOM_FCM_URL"), os.environ.get("PAYLOOM_SMS_BASE_URL")
    if not fcm_url or not sms_url:
        return [{"name": "relay dispatch", "skipped": "the stack has no FCM or SMS simulator"}]
    n_latency, n_burst, phones = (8, 20, 3) if env.quick else (40, 120, 6)
    rows: list[dict] = []
    fleet = PhoneFleet(env.base_url, fcm_url=fcm_url, sms_url=sms_url, phones=phones,
                       carriers=("smart",), timing=Timing(), seed=44)
    quiet = PhoneFleet(env.base_url, fcm_url=fcm_url, sms_url=sms_url, phones=1,
                       behaviours=["silent"], carriers=("smart",), livemode=True, heartbeats=False,
                       seed=45)
    set_aside: list[str] = []
    try:
        t0 = time.time()
        fleet.start()
        quiet.start()
        rows.append({"name": "fleet onboarded through the public API", "phones": phones + 1,
                     "seconds": round(time.time() - t0, 1)})
        _raise_caps(env.deps, fleet)
        set_aside = _set_aside_others(env.deps, fleet)
        test_key = _client(env.deps, livemode=False)
        rows.append(_latency(env, test_key, Fcm(fcm_url), n_latency))
        owners = _owners(fleet, os.environ.get("PAYLOOM_PHONE_FLEET_URL"))
        rows.append({**_throughput(env, test_key, n_burst, owners), "phone_calls": fleet.stats(),
                     "other_sims_set_aside": len(set_aside)})
        rows += _round_trips(env, quiet.phones[0], _client(env.deps, livemode=True))
    except Exception as exc:  # noqa: BLE001 - one bench must not stop the others
        rows.append({"name": "relay dispatch", "error": f"{type(exc).__name__}: {exc}"[:300]})
    finally:
        fleet.stop()
        quiet.stop()
        try:
            _restore(env.deps, set_aside)
        except Exception as exc:  # noqa: BLE001 - the stack is torn down after the benches anyway
            rows.append({"name": "relay dispatch: putting other SIMs back", "error": type(exc).__name__})
    return rows
