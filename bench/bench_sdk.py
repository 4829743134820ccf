"""The Python SDK's overhead per call versus raw HTTP (issue 10, item 3, Measure).

Side by side in one run, the same calls made with ``requests`` (a keep-alive Session, the same
headers, a fresh Idempotency-Key per create) and with the SDK (``payloom.Client``), interleaved
call by call (alternating which goes first) so the machine's noise hits both equally:

* against the stack's gateway (``env.base_url``, a separate process: the server's CPU does not
  share this process's GIL): ``GET /v1/payment_intents/{id}`` and ``POST /v1/payment_intents``
  with a merchant's API key made over HTTP (``bench_payments.Merchant``);
* against a canned local HTTP server (no Firestore), which isolates what the SDK itself adds per
  call: building the request, the idempotency key, parsing into typed objects.

Rows: p50 and p99 of each side, the p50 ratio SDK/raw and the p50 difference in microseconds;
and the client's own CPU time per call (``time.thread_time`` of the calling thread: the servers
run in other threads or processes), the figure that the machine's noise disturbs least.
"""
from __future__ import annotations

import http.server
import json
import pathlib
import socket
import statistics
import sys
import threading
import time
import uuid
from typing import Any, Callable

import requests

from bench.harness import BenchEnv

SDK = pathlib.Path(__file__).resolve().parents[1] / "sdk" / "python"
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))

INTENTS = "/v1/payment_intents"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def side_by_side(name: str, raw: Callable[[int], Any], sdk: Callable[[int], Any], n: int,
                 warmup: int = 5) -> list[dict]:
    for i in range(warmup):
        raw(-1 - i)
        sdk(-1 - i)
    times: dict[str, list[float]] = {"raw": [], "sdk": []}
    cpu: dict[str, list[float]] = {"raw": [], "sdk": []}
    errors = {"raw": 0, "sdk": 0}
    for i in range(n):
        pair = (("raw", raw), ("sdk", sdk)) if i % 2 else (("sdk", sdk), ("raw", raw))
        for label, fn in pair:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                fn(i)
            except Exception:  # noqa: BLE001
                errors[label] += 1
            cpu[label].append((time.thread_time() - c0) * 1e6)
            times[label].append((time.perf_counter() - t0) * 1000)
    p50 = {k: statistics.median(v) for k, v in times.items()}
    cpu50 = {k: statistics.median(v) for k, v in cpu.items()}
    rows = [{"name": f"{name}: {label}", "n": n, "p50_ms": round(p50[label], 3),
             "p99_ms": round(_pct(times[label], 0.99), 3),
             "client_cpu_p50_us": round(cpu50[label], 1), "errors": errors[label]}
            for label in ("raw", "sdk")]
    # Wall time carries the server's and the machine's noise; the calling thread's CPU time is
    # what the client itself spends (the servers run in other threads or processes).
    rows.append({"name": f"{name}: SDK overhead",
                 "p50_ratio_sdk_over_raw": round(p50["sdk"] / p50["raw"], 3),
                 "p50_overhead_us": round((p50["sdk"] - p50["raw"]) * 1000, 1),
                 "client_cpu_overhead_us": round(cpu50["sdk"] - cpu50["raw"], 1),
                 "client_cpu_ratio": round(cpu50["sdk"] / max(cpu50["raw"], 1e-9), 3)})
    return rows


class _Canned(http.server.BaseHTTPRequestHandler):
    """A keep-alive server answering a fixed payment intent: no I/O behind it."""
    protocol_version = "HTTP/1.1"
    BODY = json.dumps({"id": "pi_bench", "object": "payment_intent", "merchant": "mch_bench",
                       "livemode": False, "amount": 1000, "currency": "USD", "status":
                       "requires_payment_method", "metadata": {"order": "1"}, "created": 0,
                       "timeline": [{"status": "requires_payment_method", "at": 0}],
                       "crypto": None, "payment_method_types": ["wallet", "card", "crypto"]}).encode()

    def setup(self):
        super().setup()  # one segment per write, no delayed-ACK stall between headers and body
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    do_GET = do_POST = _any

    def log_message(self, *a):
        pass


def _calls(base: str, key: str, intent_id: str):
    import payloom

    session = requests.Session()
    auth = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    client = payloom.Client(key, api_base=base)
    body = {"amount": 1000, "currency": "USD", "metadata": {"order": "1"}}

    def raw_get(i):
        r = session.get(f"{base}{INTENTS}/{intent_id}", headers=auth, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(r.text[:200])
        return r.json()

    def sdk_get(i):
        return client.PaymentIntent.retrieve(intent_id)

    def raw_create(i):
        r = session.post(f"{base}{INTENTS}", json=body, timeout=30,
                         headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
        if r.status_code not in (200, 201):
            raise RuntimeError(r.text[:200])
        return r.json()

    def sdk_create(i):
        return client.PaymentIntent.create(**body)

    return (raw_get, sdk_get), (raw_create, sdk_create)


def run(env: BenchEnv) -> list[dict]:
    from bench.bench_payments import Merchant

    n_api, n_stub = (40, 200) if env.quick else (300, 2000)
    rows: list[dict] = []

    merchant = Merchant(env.base_url, uuid.uuid4().hex[:8])
    key = merchant.key["Authorization"].split(" ", 1)[1]
    intent = merchant.call("POST", INTENTS, merchant.key, json={"amount": 1000, "currency": "USD"})
    (raw_get, sdk_get), (raw_create, sdk_create) = _calls(env.base_url, key, intent["id"])
    rows += side_by_side("gateway GET /v1/payment_intents/{id}", raw_get, sdk_get, n_api)
    rows += side_by_side("gateway POST /v1/payment_intents", raw_create, sdk_create, n_api)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        (raw_get, sdk_get), (raw_create, sdk_create) = _calls(base, "sk_test_" + "b" * 43, "pi_bench")
        rows += side_by_side("canned server GET (client cost only)", raw_get, sdk_get, n_stub)
        rows += side_by_side("canned server POST (client cost only)", raw_create, sdk_create, n_stub)
    finally:
        server.shutdown()
        server.server_close()
    return rows
