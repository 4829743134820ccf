"""A JSON-RPC client over ``requests`` with several endpoints per network, health and failover.

Why not web3: the watcher needs to batch calls (one HTTP round trip for the blocks and logs of a
step), choose the endpoint per call, and count what it spends; web3 hides all three.

Failover: endpoints are tried healthiest first (configured order among equals). A transport
error, a timeout, an HTTP 429/5xx, a malformed answer or a node-side error that says "try
elsewhere" marks the endpoint failed and benches it for ``cooldown_s``; the next one answers the
same call. An error that is about the request itself (bad params) is raised without failover:
another node would say the same. When every endpoint failed the call raises ``RpcUnavailable``;
the watcher then stops its step and resumes from its cursor later, so an outage is a delay, never
a loss.

Health (latest block seen, latency, error counts) lives in this process and is flushed as blind
writes to ``chain_rpc_health/{network}:{i}`` (one small write per endpoint, not per call). The
URL is stored redacted (scheme and host only): provider URLs often embed an API key.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.platform import logs

_log = logs.get_logger(__name__)
HEALTH_COLLECTION = "chain_rpc_health"
# JSON-RPC error codes that mean "this node cannot answer now" rather than "bad request":
# internal error, and the server range -32099..-32001 (EIP-1474: limit exceeded -32005,
# resource unavailable -32002, method not supported -32004, ...). Left out, because they are
# about the request, and another node would say the same: -32000 (invalid input: nodes use it
# for request errors too) and -32003 (transaction rejected: nonce too low, underpriced,
# insufficient funds). Failing those over would broadcast one transaction to every node and
# bench healthy endpoints.
FAILOVER_CODES = {-32603}
REQUEST_SIDE_CODES = {-32000, -32003}


def _node_side(code: Any) -> bool:
    return isinstance(code, int) and code not in REQUEST_SIDE_CODES and (
        code in FAILOVER_CODES or -32099 <= code <= -32001)


class RpcUnavailable(Exception):
    """No endpoint of the network could answer."""


class RpcError(Exception):
    """The node answered the call with an error about the call itself."""

    def __init__(self, method: str, code: Any, message: str):
        super().__init__(f"{method}: {code} {message}")
        self.method, self.code, self.message = method, code, message


class _EndpointFailed(Exception):
    pass


def redact(url: str) -> str:
    """scheme://host[:port]: a provider URL's path or query often carries its API key."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@dataclasses.dataclass
class EndpointHealth:
    index: int
    url: str
    latest_block: int | None = None
    latency_ms: float | None = None
    calls: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    last_ok_at: dt.datetime | None = None
    benched_until: float = 0.0  # monotonic

    def healthy(self, now_mono: float) -> bool:
        return self.benched_until <= now_mono

    def as_doc(self, network: str) -> dict[str, Any]:
        return {"network": network, "index": self.index, "url": redact(self.url),
                "latest_block": self.latest_block, "latency_ms": self.latency_ms,
                "calls": self.calls, "errors": self.errors,
                "consecutive_errors": self.consecutive_errors, "last_error": self.last_error,
                "last_error_at": self.last_error_at, "last_ok_at": self.last_ok_at,
                "healthy": self.consecutive_errors == 0}


def _note_head(endpoint: EndpointHealth, result: Any) -> None:
    """Remember the highest block this endpoint has shown (health: is it lagging?)."""
    raw = result.get("number") if isinstance(result, dict) else result
    try:
        n = int(raw, 16)
    except (TypeError, ValueError):
        return
    if endpoint.latest_block is None or n > endpoint.latest_block:
        endpoint.latest_block = n


class RpcClient:
    """JSON-RPC to one network through ``urls`` (failover in order of health)."""

    def __init__(self, network: str, urls: Sequence[str], *, timeout: float = 5.0,
                 cooldown_s: float = 15.0, session: requests.Session | None = None):
        if not urls:
            raise ValueError(f"network {network} has no RPC endpoint")
        self.network = network
        self.timeout = timeout
        self.cooldown_s = cooldown_s
        self.endpoints = [EndpointHealth(i, u) for i, u in enumerate(urls)]
        self.session = session or requests.Session()
        self.http_calls = 0      # HTTP round trips (a batch is one)
        self.rpc_requests = 0    # JSON-RPC requests inside them
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # --- calls ------------------------------------------------------------------------------
    def call(self, method: str, params: list[Any] | None = None) -> Any:
        return self.batch([(method, params or [])])[0]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in ONE HTTP request; results in order. Any failed item fails the batch
        on that endpoint (a node that answers half a batch is not trusted for the rest)."""
        if not calls:
            return []
        failures = []
        for endpoint in self._order():
            try:
                return self._send(endpoint, calls)
            except _EndpointFailed as exc:
                failures.append(f"#{endpoint.index}: {exc}")
        raise RpcUnavailable(f"{self.network}: every RPC endpoint failed ({'; '.join(failures)})")

    def _order(self) -> list[EndpointHealth]:
        now = time.monotonic()
        with self._lock:
            healthy = [e for e in self.endpoints if e.healthy(now)]
            benched = sorted((e for e in self.endpoints if not e.healthy(now)),
                             key=lambda e: e.benched_until)
        return healthy + benched  # all benched: still try, soonest back first

    def _send(self, endpoint: EndpointHealth, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        ids = [next(self._ids) for _ in calls]
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                   for i, (m, p) in zip(ids, calls)]
        body = payload if len(payload) > 1 else payload[0]
        started = time.monotonic()
        with self._lock:
            self.http_calls += 1
            self.rpc_requests += len(calls)
            endpoint.calls += 1
        try:
            resp = self.session.post(endpoint.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            self._failed(endpoint, type(exc).__name__)
            raise _EndpointFailed(type(exc).__name__) from None
        if resp.status_code != 200:  # 429, 5xx, a proxy's error page: another node may answer
            self._failed(endpoint, f"HTTP {resp.status_code}")
            raise _EndpointFailed(f"HTTP {resp.status_code}")
        try:
            answer = resp.json()
        except ValueError:
            self._failed(endpoint, "not JSON")
            raise _EndpointFailed("not JSON") from None
        items = answer if isinstance(answer, list) else [answer]
        by_id = {item.get("id"): item for item in items if isinstance(item, dict)}
        results = []
        for (method, _), i in zip(calls, ids):
            item = by_id.get(i)
            if item is None:
                self._failed(endpoint, "incomplete answer")
                raise _EndpointFailed("incomplete answer")
            if item.get("error") is not None:
                err = item["error"] if isinstance(item["error"], dict) else {"message": str(item["error"])}
                code = err.get("code")
                if _node_side(code):
                    self._failed(endpoint, f"rpc error {code}")
                    raise _EndpointFailed(f"rpc error {code}")
                self._ok(endpoint, started)
                raise RpcError(method, code, str(err.get("message", ""))[:200])
            result = item.get("result")
            results.append(result)
            if method in ("eth_blockNumber", "eth_getBlockByNumber"):
                _note_head(endpoint, result)
        self._ok(endpoint, started)
        return results

    def _ok(self, endpoint: EndpointHealth, started: float) -> None:
        with self._lock:
            endpoint.latency_ms = round((time.monotonic() - started) * 1000, 1)
            endpoint.consecutive_errors = 0
            endpoint.benched_until = 0.0
            endpoint.last_ok_at = dt.datetime.now(dt.UTC)

    def _failed(self, endpoint: EndpointHealth, reason: str) -> None:
        with self._lock:
            endpoint.errors += 1
            endpoint.consecutive_errors += 1
            endpoint.last_error = reason
            endpoint.last_error_at = dt.datetime.now(dt.UTC)
            # Bench longer while it keeps failing (up to 8x), so a dead node costs little.
            endpoint.benched_until = time.monotonic() + self.cooldown_s * min(
                8, 2 ** (endpoint.consecutive_errors - 1))
        logs.log(_log, 30, "rpc endpoint failed", network=self.network, endpoint=endpoint.index,
                 reason=reason)

    # --- health -------------------------------------------------------------------------------
    def health(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.as_doc(self.network) for e in self.endpoints]

    def flush_health(self, db) -> None:
        """Blind writes of every endpoint's health (no read, no contention)."""
        batch = db.batch()
        for doc in self.health():
            batch.set(db.collection(HEALTH_COLLECTION).document(f"{self.network}:{doc['index']}"), doc)
        batch.commit()

    @property
    def counters(self) -> dict[str, int]:
        return {"http_calls": self.http_calls, "rpc_requests": self.rpc_requests}
