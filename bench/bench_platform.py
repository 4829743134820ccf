"""Platform overhead: a no-op request vs an idempotent POST that writes and emits an event."""
from __future__ import annotations

import uuid

import requests

from bench.harness import BenchEnv, count_rpcs, measure


def run(env: BenchEnv) -> list[dict]:
    n_noop, n_post, conc = (60, 30, 4) if env.quick else (600, 200, 4)
    session = requests.Session()
    auth = {"Authorization": f"Bearer {env.service_token}"}
    run_id = uuid.uuid4().hex[:8]

    def noop(i):
        r = session.get(f"{env.base_url}/v1/platform/ping", timeout=10)
        r.raise_for_status()

    def post(i):
        r = session.post(f"{env.base_url}/v1/platform/probes", json={"delay_seconds": 3600},
                         headers={**auth, "Idempotency-Key": f"bench-{run_id}-{i}"}, timeout=30)
        if r.status_code != 201:
            raise RuntimeError(r.text)

    noop_stats = measure("GET /v1/platform/ping (no-op, HTTP)", noop, n=n_noop, concurrency=conc)
    post_stats = measure("POST /v1/platform/probes (idempotent write + event)", post, n=n_post,
                         concurrency=conc)
    rows = [noop_stats.row(), post_stats.row(),
            {"name": "throughput ratio no-op / idempotent POST",
             "ratio": round(noop_stats.per_second / max(post_stats.per_second, 1e-9), 2),
             "p50_ratio": round(post_stats.p50_ms / max(noop_stats.p50_ms, 1e-9), 2)}]

    client = env.client("platform")
    counter = iter(range(10**6))

    def create_fresh():
        client.post("/v1/platform/probes", json={"delay_seconds": 3600},
                    headers={**auth, "Idempotency-Key": f"rt-{run_id}-{next(counter)}"})

    def replay():
        client.post("/v1/platform/probes", json={"delay_seconds": 3600},
                    headers={**auth, "Idempotency-Key": f"rt-{run_id}-0"})

    probe_id = client.post("/v1/platform/probes", json={"delay_seconds": 3600}, headers=auth).get_json()["id"]
    for label, fn in (("ping", lambda: client.get("/v1/platform/ping")),
                      ("POST probe (new Idempotency-Key)", create_fresh),
                      ("POST probe (replayed Idempotency-Key)", replay),
                      ("GET probe", lambda: client.get(f"/v1/platform/probes/{probe_id}", headers=auth))):
        total, by_kind = count_rpcs(fn, repeat=3 if env.quick else 10)
        rows.append({"name": f"Firestore round trips: {label}", "per_request": total, "by_rpc": by_kind})
    return rows
