"""Figures: what a cached quote/convert and a refresh cost (printed with -s; bounds asserted)."""
from __future__ import annotations

import statistics
import time

from bench.harness import RpcCounter
from shared.rates import service


def _timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    out.sort()
    return statistics.median(out) * 1e6, out[int(n * 0.99) - 1] * 1e6


def test_cached_quotes_and_conversions_are_cheap(deps, rates, sim, clock, function_client):
    service.quote(deps, "ETH", "USD")
    with RpcCounter() as rpc:
        q50, q99 = _timed(lambda: service.quote(deps, "ETH", "USDC"), 2000)
        c50, c99 = _timed(lambda: service.convert(deps, 123_456, "USD", "ETH"), 2000)
    api = function_client("rates")
    h50, h99 = _timed(lambda: api.get("/v1/rates/convert?amount=12.34&from=USD&to=ETH"), 300)
    print(f"\nquote p50 {q50:.0f}us p99 {q99:.0f}us; convert p50 {c50:.0f}us p99 {c99:.0f}us; "
          f"GET /v1/rates/convert in-process p50 {h50:.0f}us p99 {h99:.0f}us; "
          f"feed calls {len(sim.calls())}, round trips {rpc.total}")
    assert rpc.total == 0 and len(sim.calls()) == 1
    assert q50 < 2000 and c50 < 2000
    clock.advance(61)
    t = time.perf_counter()
    with RpcCounter() as refresh:
        service.quote(deps, "ETH", "USD")
    print(f"refresh: {refresh.counts} + 1 feed call, {(time.perf_counter() - t) * 1e3:.1f} ms")
    assert refresh.total == 3
