"""Webhooks (issue 8, Measure): event committed → first attempt received, deliveries per second
to 10 healthy endpoints, and Firestore round trips per delivery attempt.

Everything runs through the real pipeline of ``bench/run.py``'s stack: the commit writes the
event and its outbox record, the outbox publishes to the Pub/Sub emulator, which pushes to the
fan-out in the gunicorn gateway; each attempt is a task of the (concurrently dispatching)
Cloud Tasks emulator, run by the gateway, POSTed to the receiver simulator
(``infra/local/webhook_sim.py``, started by the stack, or here when the stack has none).

* (a) latency: one endpoint subscribed to ``webhook_endpoint.updated``; another endpoint (not
  subscribed) is updated over HTTP with a user token, one event at a time. Latency = the time the
  receiver got the first attempt minus the event's ``created_at`` (the unit's clock, read before
  its commit: slightly pessimistic). Goal: p50 < 1 s locally.
* (b) throughput: 10 endpoints subscribed; a burst of N events committed in-process (one event
  per unit, 4 threads, real outbox and catalogue check); deliveries per second = N×10 / (last
  delivery received − first commit started). Duplicates (same endpoint, same webhook-id) counted.
* (c) round trips: with the ``webhooks`` queue paused, the queued attempt tasks are replayed
  in-process through the ``webhooks_tasks`` function and their Firestore RPCs counted, for a
  receiver answering 200 and one answering 500 (which schedules the next attempt).
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.harness import BenchEnv, RpcCounter

PASSWORD = "bench passphrase 2026"
TRIGGER_TYPE = "webhook_endpoint.updated"   # public, emitted by an update of any endpoint
QUIET_TYPE = "transfer.voided"              # public, never emitted by this bench


class Receiver:
    """The receiver simulator over HTTP (the stack's, or one started here)."""

    def __init__(self) -> None:
        self._own = None
        url = os.environ.get("PAYLOOM_WEBHOOK_SIM_URL")
        if not url:
            from infra.local import webhook_sim
            self._own, url = webhook_sim.start()
        self.url = url.rstrip("/")
        self.http = requests.Session()

    def configure(self, path: str, **cfg: Any) -> None:
        self.http.put(f"{self.url}/_config{path}", json=cfg, timeout=10).raise_for_status()

    def inbox(self, path: str | None = None) -> list[dict]:
        params = {"path": path} if path else None
        r = self.http.get(f"{self.url}/_inbox", params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        if self._own is not None:
            self._own.stop()


class Api:
    """The public webhooks API as a signed-in user (one registered for this run)."""

    def __init__(self, base_url: str, run_id: str) -> None:
        self.base = base_url
        self.http = requests.Session()
        name = f"bench_wh_{run_id}"
        ip = {"X-Forwarded-For": f"198.18.250.{int(run_id[:2], 16)}"}
        r = self.http.post(f"{base_url}/v1/auth/register", headers=ip, timeout=60,
                           json={"email": f"{name}@example.com", "username": name, "password": PASSWORD})
        r.raise_for_status()
        self.user_id: str = r.json()["id"]  # the owner (tenant) of the endpoints and events
        r = self.http.post(f"{base_url}/v1/auth/login", headers=ip, timeout=60,
                           json={"username": name, "password": PASSWORD})
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def call(self, method: str, path: str, **kw: Any) -> dict:
        r = self.http.request(method, f"{self.base}/v1/webhook_endpoints{path}", timeout=30, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def create(self, url: str, events: list[str]) -> dict:
        return self.call("POST", "", json={"url": url, "enabled_events": events,
                                           "description": "bench"})


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _latency_row(name: str, ms: list[float], **extra: Any) -> dict:
    return {"name": name, "n": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(_pct(ms, 0.99), 1), "max_ms": round(max(ms), 1), **extra}


def _created_at(deps, event_ids: list[str]) -> dict[str, float]:
    """Each event document's ``created_at`` (unix seconds), in one batch get."""
    refs = [deps.db.collection("events").document(e) for e in event_ids]
    return {s.id: s.get("created_at").timestamp() for s in deps.db.get_all(refs) if s.exists}


def _wait(look, timeout: float, step: float = 0.01, enough=bool):
    """Call ``look()`` until ``enough(result)`` or ``timeout``; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        got = look()
        if enough(got) or time.monotonic() >= deadline:
            return got
        time.sleep(step)


# -- (a) event committed → first attempt received ----------------------------------------------

def _latency(env: BenchEnv, api: Api, rx: Receiver, tag: str, n: int) -> tuple[list[dict], str]:
    path = f"/bench/{tag}/latency"
    listener = api.create(f"{rx.url}{path}", [TRIGGER_TYPE])
    trigger = api.create(f"{rx.url}/bench/{tag}/trigger", [QUIET_TYPE])
    arrivals: dict[str, dict] = {}   # description → first inbox entry
    http_ms: list[float] = []

    def arrived(label: str):
        def look():
            for entry in rx.inbox(path):
                body = json.loads(entry["body"])
                desc = body["data"]["object"].get("description")
                arrivals.setdefault(desc, {**entry, "event_id": body["id"]})
            return arrivals.get(label)
        return look

    for i in range(-2, n):  # two warm-up events (the first request of a worker loads it)
        label = f"lat-{tag}-{i}"
        t0 = time.perf_counter()
        api.call("POST", f"/{trigger['id']}", json={"description": label})
        http_ms.append((time.perf_counter() - t0) * 1000)
        if not _wait(arrived(label), timeout=60):
            raise RuntimeError(f"event {label} was not delivered within 60 s")
    measured = [arrivals[f"lat-{tag}-{i}"] for i in range(n)]
    created = _created_at(env.deps, [m["event_id"] for m in measured])
    ms = [(m["received_at"] - created[m["event_id"]]) * 1000 for m in measured]
    row = _latency_row("event committed → first attempt received (1 endpoint)", ms,
                       goal_p50_under_1s=statistics.median(ms) < 1000,
                       update_http_p50_ms=round(statistics.median(http_ms[2:]), 1))
    api.call("DELETE", f"/{listener['id']}")
    return [row], trigger["id"]


# -- (b) deliveries per second to 10 healthy endpoints ------------------------------------------

def _emit_events(env: BenchEnv, owner: str, resource: dict, labels: list[str],
                 threads: int = 4, per_commit: int = 1) -> tuple[float, float, list[str]]:
    """Commit one ``webhook_endpoint.updated`` per label, ``per_commit`` events per unit (one
    outbox record and one Pub/Sub message each), ``threads`` units at once; returns (first commit
    start, last commit end, event ids)."""
    from shared.platform.uow import run_unit

    ids: list[str] = []
    lock = threading.Lock()

    def one(chunk: list[str]) -> None:
        def emit_all(uow):
            return [uow.emit(TRIGGER_TYPE, tenant=owner, livemode=False,
                             data={"object": {**resource, "description": label}}) for label in chunk]
        events = run_unit(env.deps, emit_all)
        with lock:
            ids.extend(e.id for e in events)

    chunks = [labels[i:i + per_commit] for i in range(0, len(labels), per_commit)]
    start = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, chunks))
    return start, time.time(), ids


def _throughput(env: BenchEnv, api: Api, rx: Receiver, tag: str, trigger_id: str,
                n_events: int, n_endpoints: int = 10, per_commit: int = 1) -> list[dict]:
    prefix = f"/bench/{tag}/tp{n_endpoints}x{n_events}/"
    targets = [api.create(f"{rx.url}{prefix}{k}", [TRIGGER_TYPE]) for k in range(n_endpoints)]
    resource = api.call("GET", f"/{trigger_id}")
    expected = n_events * n_endpoints
    labels = [f"tp-{tag}-{i}" for i in range(n_events)]
    start, committed, event_ids = _emit_events(env, api.user_id, resource, labels,
                                               per_commit=per_commit)

    def mine() -> list[dict]:
        if n_endpoints == 1:
            return rx.inbox(f"{prefix}0")
        return [e for e in rx.inbox() if e["path"].startswith(prefix)]

    # a big burst's inbox is megabytes: poll it rarely, so the poll does not slow what it measures
    _wait(mine, timeout=max(60.0, expected / 5), step=0.25 if expected < 5000 else 3.0,
          enough=lambda es: len(es) >= expected)
    time.sleep(1.0)  # let any duplicate arrive before counting
    got = mine()
    keys = [(e["path"], e["headers"].get("webhook-id")) for e in got]
    unique = set(keys)
    ok = [e for e in got if e["status"] == 200]
    last = max((e["received_at"] for e in got), default=start)
    first = min((e["received_at"] for e in got), default=start)
    created = _created_at(env.deps, event_ids)
    first_seen: dict[tuple, float] = {}
    for e in got:
        key = (e["path"], e["headers"].get("webhook-id"))
        first_seen[key] = min(first_seen.get(key, e["received_at"]), e["received_at"])
    lat = [(t - created[wid]) * 1000 for (_, wid), t in first_seen.items() if wid in created]
    rows = [{
        "name": f"deliveries/s to {n_endpoints} healthy endpoint{'s' if n_endpoints > 1 else ''} "
                f"(burst of {n_events} events, {per_commit} per commit)",
        "events": n_events, "expected": expected, "received": len(got),
        "unique": len(unique), "duplicates": len(keys) - len(unique),
        "missing": expected - len(unique), "non_200": len(got) - len(ok),
        "errors": (expected - len(unique)) + (len(got) - len(ok)),
        "seconds": round(last - start, 2),
        "per_second": round(len(unique) / max(last - start, 1e-9), 1),
        "commit_seconds": round(committed - start, 2),
        "events_committed_per_second": round(n_events / max(committed - start, 1e-9), 1),
        "delivery_window_per_second": round(len(unique) / max(last - first, 1e-9), 1),
    }]
    if lat:
        rows.append(_latency_row(f"burst of {n_events}: event committed → attempt received", lat))
    for t in targets:
        api.call("DELETE", f"/{t['id']}")
    return rows


# -- (c) Firestore round trips per delivery attempt ---------------------------------------------

class PausedQueue:
    """The ``webhooks`` queue of the Cloud Tasks emulator, paused while in use: its tasks stay
    listed (to replay in-process) instead of being dispatched; purged and resumed on exit."""

    def __init__(self, env: BenchEnv, queue: str = "webhooks") -> None:
        import grpc
        from google.cloud import tasks_v2
        from google.cloud.tasks_v2.services.cloud_tasks.transports import (
            CloudTasksGrpcTransport,
        )

        host = os.environ["PAYLOOM_TASKS_EMULATOR_HOST"]
        self._channel = grpc.insecure_channel(host)
        self.client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=self._channel))
        self.name = env.deps.tasks.queue_path(queue)
        self.prefix = urlsplit(env.deps.settings.function_url("webhooks_tasks")).path

    def __enter__(self) -> PausedQueue:
        self.client.pause_queue(name=self.name)
        return self

    def tasks(self) -> list[dict]:
        """Queued attempt tasks: {path (after the function), body (dict)}."""
        out = []
        for task in self.client.list_tasks(parent=self.name):
            url = urlsplit(task.http_request.url).path
            if url.startswith(self.prefix + "/"):
                out.append({"path": url[len(self.prefix):],
                            "body": json.loads(task.http_request.body or b"{}")})
        return out

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.purge_queue(name=self.name)
        finally:
            self.client.resume_queue(name=self.name)
            self._channel.close()


def _round_trips(env: BenchEnv, api: Api, rx: Receiver, tag: str, trigger_id: str, k: int) -> list[dict]:
    ok_path, fail_path = f"/bench/{tag}/rt-ok", f"/bench/{tag}/rt-fail"
    rx.configure(fail_path, mode="fail", status=500)
    ok_ep = api.create(f"{rx.url}{ok_path}", [TRIGGER_TYPE])
    fail_ep = api.create(f"{rx.url}{fail_path}", [TRIGGER_TYPE])
    resource = api.call("GET", f"/{trigger_id}")
    client = env.client("webhooks_tasks")
    auth = {"Authorization": f"Bearer {env.service_token}"}
    rows: list[dict] = []
    with PausedQueue(env) as queue:
        _emit_events(env, api.user_id, resource, [f"rt-{tag}-{i}" for i in range(k)], threads=1)
        ours = (ok_ep["id"], fail_ep["id"])
        by_endpoint = _wait(lambda: [t for t in queue.tasks() if t["body"].get("endpoint_id") in ours],
                            timeout=60, step=0.1, enough=lambda ts: len(ts) >= 2 * k)
        if len(by_endpoint) < 2 * k:
            listed = queue.tasks()
            raise RuntimeError(f"the fan-out queued {len(by_endpoint)} of {2 * k} attempts in 60 s "
                               f"({len(listed)} attempt tasks listed; e.g. {listed[:2]})")
        for label, endpoint in (("succeeded (receiver 200)", ok_ep),
                                ("failed (receiver 500, retry queued)", fail_ep)):
            todo = [t for t in by_endpoint if t["body"].get("endpoint_id") == endpoint["id"]][:k]
            outcomes: list[str] = []
            with RpcCounter() as counter:
                for task in todo:
                    r = client.post(task["path"], json=task["body"], headers=auth)
                    if r.status_code != 200:
                        raise RuntimeError(f"attempt answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
                    outcomes.append(r.get_json().get("outcome"))
            rows.append({"name": f"Firestore round trips per delivery attempt: {label}",
                         "per_attempt": round(counter.total / len(todo), 2),
                         "by_rpc": {m: round(c / len(todo), 2) for m, c in sorted(counter.counts.items())},
                         "outcomes": sorted({o or "?" for o in outcomes})})
    for ep in (ok_ep, fail_ep):
        api.call("DELETE", f"/{ep['id']}")
    rows.append({"name": "round-trip check: receiver got the counted attempts",
                 "ok_received": len(rx.inbox(ok_path)), "fail_received": len(rx.inbox(fail_path)),
                 "expected_each": k})
    return rows


def run(env: BenchEnv) -> list[dict]:
    n_latency, n_burst, k_rt = (10, 20, 3) if env.quick else (100, 200, 10)
    tag = uuid.uuid4().hex[:8]
    rx = Receiver()
    try:
        api = Api(env.base_url, tag)
        rows, trigger_id = _latency(env, api, rx, tag, n_latency)
        parts = [("throughput", lambda: _throughput(env, api, rx, tag, trigger_id, n_burst)),
                 ("round trips", lambda: _round_trips(env, api, rx, tag, trigger_id, k_rt))]
        if not env.quick:  # issue 8: a burst of 10,000 events neither loses nor duplicates
            parts.append(("burst", lambda: _throughput(env, api, rx, tag, trigger_id, 10_000,
                                                       n_endpoints=1, per_commit=100)))
        for name, part in parts:
            try:
                rows += part()
            except Exception as exc:  # noqa: BLE001 - report it, keep the other figures
                rows.append({"name": f"{name}: FAILED", "errors": 1,
                             "error": f"{type(exc).__name__}: {exc}"[:1000]})
        return rows
    finally:
        rx.close()

