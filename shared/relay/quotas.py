"""A client's daily message quota, counted exactly without a hot document.

Why shards: one counter document per client would serialise a client's burst (Firestore takes
about one write per second per document, and every create would conflict on it). Instead
``relay_usage/{tenant}:{mode}:{day}:{k}`` for k < ``SHARDS``: a create reads every shard in
the batch read it makes anyway (no extra round trip), refuses when their sum reached the quota,
and increments ONE random shard in its commit. Two creates conflict only when they pick the
same shard (then one re-runs). The count is exact (it moves only with a committed message);
admission can overshoot by at most the number of creates racing at the very edge of the quota.

A client's own limits (``daily_quota``) may be set by operations in ``relay_clients/{tenant}``;
otherwise the settings' default applies. The day is the UTC day.
"""
from __future__ import annotations

import datetime as dt
import random

from google.cloud import firestore

from shared.platform.errors import RateLimited
from shared.platform.uow import UnitOfWork

USAGE = "relay_usage"
CLIENTS = "relay_clients"
SHARDS = 8


def day_key(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y%m%d")


def shard_refs(db, tenant: str, livemode: bool, now: dt.datetime) -> list:
    base = f"{tenant}:{'live' if livemode else 'test'}:{day_key(now)}"
    return [db.collection(USAGE).document(f"{base}:{k}") for k in range(SHARDS)]


def client_ref(db, tenant: str):
    return db.collection(CLIENTS).document(tenant)


def limits_of(snap, default_quota: int) -> int:
    doc = snap.to_dict() if snap is not None and snap.exists else {}
    quota = doc.get("daily_quota")
    return int(quota) if isinstance(quota, int) and quota > 0 else default_quota


def take(uow: UnitOfWork, snaps: dict, refs: list, *, quota: int, tenant: str) -> int:
    """Refuse (429 ``daily_quota_exceeded``) or count one message; returns the day's count."""
    used = sum(int((snaps[r.path].to_dict() or {}).get("count", 0)) for r in refs
               if snaps[r.path].exists)
    now = uow.now
    if used >= quota:
        tomorrow = (now.astimezone(dt.timezone.utc) + dt.timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0)
        raise RateLimited(f"The daily quota of {quota} messages is used up; it resets at 00:00 UTC.",
                          code="daily_quota_exceeded",
                          headers={"Retry-After": str(max(1, int((tomorrow - now).total_seconds())))})
    ref = random.choice(refs)
    uow.set(ref, {"tenant": tenant, "day": day_key(now), "count": firestore.Increment(1),
                  "purge_at": now + dt.timedelta(days=3)}, merge=True)
    return used + 1
