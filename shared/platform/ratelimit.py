"""Fixed-window rate limits: counted per instance, or across instances in Firestore.

Two counters, chosen per limit (ADR 0006):
- **local** (the default): a fixed window counted in this instance's memory. Costs no round
  trip, so hot paths (payments, P2P, probes) pay nothing for their limits. Accuracy: with N
  instances serving one key a caller can get up to N x the limit; these limits protect
  capacity, and API Gateway quotas per API key bound the total in production.
- **shared** (limits guarding credentials and message sends: every ``auth.*`` limit, or
  ``shared=True``): ONE blind write, ``set({"count": Increment(1)}, merge=True)`` on the
  window's document; the commit returns the incremented value (transform result), so no read
  and no transaction. Exact across instances. One document per (limit, key, window), expired by
  a TTL policy on ``expires_at``.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import threading

from google.cloud import firestore

from shared.platform.errors import RateLimited

COLLECTION = "rate_limits"


SHARED_NAMESPACE = "auth."   # limits against guessing and message pumping: counted exactly


@dataclasses.dataclass(frozen=True)
class Limit:
    name: str          # e.g. "auth.login.ip"
    limit: int         # requests allowed per window
    window_seconds: int
    shared: bool | None = None   # None: shared iff the name is in the auth.* namespace

    @property
    def counted_in_firestore(self) -> bool:
        return self.name.startswith(SHARED_NAMESPACE) if self.shared is None else self.shared


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # unix seconds

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(max(0, self.remaining)),
                "X-RateLimit-Reset": str(self.reset_at)}


class LocalWindows:
    """Per-instance fixed windows, bounded in memory (oldest keys dropped first)."""

    def __init__(self, max_keys: int = 50_000):
        self._counts: collections.OrderedDict[tuple[str, str, int], int] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def add(self, name: str, key: str, window_start: int, cost: int) -> int:
        k = (name, key, window_start)
        with self._lock:
            count = self._counts.pop(k, 0) + cost
            self._counts[k] = count
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
            return count

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


LOCAL = LocalWindows()


def hit(db, rule: Limit, key: str, now: dt.datetime, cost: int = 1) -> Decision:
    epoch = int(now.timestamp())
    window_start = epoch - epoch % rule.window_seconds
    reset_at = window_start + rule.window_seconds
    if not rule.counted_in_firestore:
        count = LOCAL.add(rule.name, key, window_start, cost)
        return Decision(count <= rule.limit, rule.limit, rule.limit - count, reset_at)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    ref = db.collection(COLLECTION).document(f"{rule.name}:{digest}:{window_start}")
    result = ref.set({"count": firestore.Increment(cost), "rule": rule.name,
                      "expires_at": dt.datetime.fromtimestamp(reset_at + rule.window_seconds,
                                                              dt.timezone.utc)}, merge=True)
    count = _transform_value(result)
    return Decision(count <= rule.limit, rule.limit, rule.limit - count, reset_at)


def enforce(db, rule: Limit, key: str, now: dt.datetime, cost: int = 1) -> Decision:
    decision = hit(db, rule, key, now, cost)
    if not decision.allowed:
        retry_after = max(1, decision.reset_at - int(now.timestamp()))
        raise RateLimited(f"Too many requests; limit is {rule.limit} per {rule.window_seconds}s.",
                          headers={**decision.headers(), "Retry-After": str(retry_after)})
    return decision


def _transform_value(write_result) -> int:
    values = list(getattr(write_result, "transform_results", []) or [])
    if not values:
        raise RuntimeError("Firestore returned no transform result for the rate-limit increment")
    value = values[0]
    return int(getattr(value, "integer_value", value))
