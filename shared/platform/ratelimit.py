"""Fixed-window rate limits counted in Firestore.

Each check is ONE blind write: ``set({"count": Increment(1)}, merge=True)`` on the window's
document; the commit response carries the incremented value (transform result), so no read and
no transaction is needed. Cost per request: 1 Firestore write per limit checked, and one
document per (limit, key, window), expired by a TTL policy on ``expires_at``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from google.cloud import firestore

from shared.platform.errors import RateLimited

COLLECTION = "rate_limits"


@dataclasses.dataclass(frozen=True)
class Limit:
    name: str          # e.g. "auth.login.ip"
    limit: int         # requests allowed per window
    window_seconds: int


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


def hit(db, rule: Limit, key: str, now: dt.datetime, cost: int = 1) -> Decision:
    epoch = int(now.timestamp())
    window_start = epoch - epoch % rule.window_seconds
    reset_at = window_start + rule.window_seconds
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
