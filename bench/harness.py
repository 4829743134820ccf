"""Benchmark helpers: latency percentiles, throughput and Firestore round-trip counting.

Absolute numbers on shared 2-core machines are noisy; report ratios measured side by side
in one run.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import statistics
import threading
import time
from typing import Any, Callable

from google.cloud.firestore_v1.services.firestore import client as gapic_client

_RPC_METHODS = ("get_document", "list_documents", "update_document", "delete_document",
                "batch_get_documents", "begin_transaction", "commit", "rollback", "run_query",
                "run_aggregation_query", "partition_query", "write", "listen",
                "list_collection_ids", "batch_write", "create_document")


@dataclasses.dataclass
class Stats:
    name: str
    n: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "per_second": round(self.per_second, 1),
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "errors": self.errors}


def measure(name: str, fn: Callable[[int], Any], *, n: int, concurrency: int = 1,
            warmup: int = 3) -> Stats:
    """Call ``fn(i)`` n times over ``concurrency`` threads; exceptions count as errors."""
    for i in range(warmup):
        with contextlib.suppress(Exception):
            fn(-1 - i)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            fn(i)
            ok = True
        except Exception:  # noqa: BLE001
            ok = False
        dt_ms = (time.perf_counter() - t0) * 1000
        with lock:
            latencies.append(dt_ms)
            if not ok:
                errors += 1

    start = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            one(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Stats(name, n, elapsed, statistics.median(latencies), p99, errors)


class RpcCounter:
    """Counts Firestore RPCs made by this process (all clients) while active."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._originals: dict[str, Any] = {}

    def __enter__(self) -> "RpcCounter":
        cls = gapic_client.FirestoreClient
        for name in _RPC_METHODS:
            original = getattr(cls, name, None)
            if original is None:
                continue
            self._originals[name] = original

            def wrapper(self_, *a, __name=name, __orig=original, **kw):
                with self._lock:
                    self.counts[__name] = self.counts.get(__name, 0) + 1
                return __orig(self_, *a, **kw)
            setattr(cls, name, wrapper)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(gapic_client.FirestoreClient, name, original)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def count_rpcs(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, dict[str, float]]:
    """Average Firestore round trips per call of ``fn`` (and by RPC kind)."""
    with RpcCounter() as counter:
        for _ in range(repeat):
            fn()
    return counter.total / repeat, {k: v / repeat for k, v in sorted(counter.counts.items())}


@dataclasses.dataclass
class BenchEnv:
    """What each ``bench/bench_<capability>.py`` ``run(env)`` receives from ``bench/run.py``.

    ``base_url``: the running local gateway (subprocess, gunicorn) for HTTP throughput/latency.
    ``deps``: ports bound to the same emulators/project, for in-process service calls.
    ``client(name)``: a functions-framework test client for a manifest function, in-process
    (use it with ``count_rpcs`` to count Firestore round trips per request).
    ``service_token``: Bearer token for ``auth="service"`` routes.
    """
    base_url: str
    service_token: str
    deps: Any
    client: Callable[[str], Any]
    quick: bool = False  # smaller n for a smoke run of the benchmarks
