"""Merchant analytics: per UTC day, asset and payment method — created, succeeded, volume and
conversion — from ``payment_intents``, served from daily rollups.

Definitions (per merchant and mode; an intent belongs to the day it was CREATED):
- ``method == "all"``: ``created`` = intents created that day in the asset; ``succeeded`` = of
  those, the ones whose status is succeeded, overpaid or paid_late (the money was captured);
  ``volume`` = Σ their ``amount_received`` (minor units of the asset: what the payer was
  credited for, overpayments included); ``conversion_rate = succeeded / created``;
- ``method == m``: the same over the intents that OFFERED ``m`` (``payment_method_types``),
  counting as succeeded only those captured THROUGH ``m``. An unpaid intent has no method, so
  "offered" is the only honest denominator per method.

Cost — why rollups and not a query per request: Firestore bills a read per document a query
returns, and an aggregation query (``count``/``sum``) one read per 1000 index entries, but the
answer needs a breakdown by (asset, method, status) that would take dozens of aggregation
queries per day. So each day is computed ONCE by reading that day's intents (one query on the
existing index (tenant, livemode, created_at), projected to six fields) and stored as
``analytics_daily/{merchant}:{live|test}:{YYYY-MM-DD}``; a request reads the rollups of its days
in ONE ``get_all`` and recomputes only the stale ones:
- a day is FINAL once no intent created on it can change any more: its end + the longest expiry
  (7 days) + the longest late window (30 days) + one day of margin; a final rollup is never
  recomputed;
- a younger day's rollup is recomputed when older than ``refresh_after(age)``: 5 minutes for
  today, growing with the day's age to 6 hours (status changes cluster in the minutes after
  creation: the default expiry is 15 minutes).
A 30-day report in steady state costs 30 document reads plus the intents of the days whose
rollup went stale. A consumer of ``payment_intent.*`` events keeping the counters exact would
remove the staleness; it needs a consumer function (ADR 0037, open point).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.payments.models import METHODS
from shared.reports import days
from shared.reports.models import Analytics, AnalyticsRow

COLLECTION = "analytics_daily"
INTENTS = "payment_intents"
PAID = ("succeeded", "overpaid", "paid_late")
FINAL_AFTER = dt.timedelta(days=7 + 30 + 1)
MIN_REFRESH, MAX_REFRESH = dt.timedelta(minutes=5), dt.timedelta(hours=6)
FIELDS = ("currency", "status", "method", "amount_received", "payment_method_types", "created_at")


# --- pure rules ------------------------------------------------------------------------------------
def rollup(intents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Counts of one day's intents: rows {asset, method, created, succeeded, volume} (pure)."""
    acc: dict[tuple[str, str], list[int]] = {}
    for d in intents:
        asset = d.get("currency") or "?"
        paid = d.get("status") in PAID
        received = int(d.get("amount_received") or 0)
        for method in ("all", *[m for m in METHODS if m in (d.get("payment_method_types") or [])]):
            row = acc.setdefault((asset, method), [0, 0, 0])
            row[0] += 1
            if paid and (method == "all" or d.get("method") == method):
                row[1] += 1
                row[2] += received
    return [{"asset": a, "method": m, "created": c, "succeeded": s, "volume": v}
            for (a, m), (c, s, v) in sorted(acc.items())]


def conversion(succeeded: int, created: int) -> float | None:
    return round(succeeded / created, 4) if created else None


def is_final(day: dt.date, now: dt.datetime) -> bool:
    return days.bounds(day)[1] + FINAL_AFTER <= now


def refresh_after(day: dt.date, now: dt.datetime) -> dt.timedelta:
    """How old a non-final rollup may be: 5 min for today, +5 min per hour of the day's age,
    at most 6 h."""
    age = max(dt.timedelta(0), now - days.bounds(day)[1])
    return min(MAX_REFRESH, MIN_REFRESH + age / 12)


def is_fresh(stored: dict[str, Any] | None, day: dt.date, now: dt.datetime,
             refresh_override: dt.timedelta | None = None) -> bool:
    if not stored or stored.get("version") != VERSION:
        return False
    if stored.get("final"):
        return True
    computed = stored.get("computed_at")
    limit = refresh_override if refresh_override is not None else refresh_after(day, now)
    return computed is not None and now - computed < limit


VERSION = 1   # bump when ``rollup`` changes: every stored rollup is recomputed once


# --- reads and writes ------------------------------------------------------------------------------
def rollup_id(merchant_id: str, livemode: bool, day: dt.date) -> str:
    return f"{merchant_id}:{'live' if livemode else 'test'}:{day.isoformat()}"


def day_intents(db, merchant_id: str, livemode: bool, day: dt.date) -> list[dict[str, Any]]:
    start, end = days.bounds(day)
    q = (db.collection(INTENTS).where(filter=FieldFilter("tenant", "==", merchant_id))
         .where(filter=FieldFilter("livemode", "==", livemode))
         .where(filter=FieldFilter("created_at", ">=", start))
         .where(filter=FieldFilter("created_at", "<", end))
         .order_by("created_at", direction="DESCENDING").select(list(FIELDS)))
    return [s.to_dict() for s in q.stream()]


def compute(deps, merchant_id: str, livemode: bool, day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """Recompute a day's rollup and store it (a blind set through a unit: it is a cache that any
    concurrent computation may overwrite with an equally correct value)."""
    from shared.platform.uow import run_unit
    doc = {"merchant_id": merchant_id, "livemode": livemode, "date": day.isoformat(),
           "rows": rollup(day_intents(deps.db, merchant_id, livemode, day)),
           "computed_at": now, "final": is_final(day, now), "version": VERSION}
    ref = deps.db.collection(COLLECTION).document(rollup_id(merchant_id, livemode, day))
    run_unit(deps, lambda uow: uow.set(ref, doc))
    return doc


def analytics(deps, merchant_id: str, livemode: bool, first: dt.date, last: dt.date,
              now: dt.datetime) -> Analytics:
    wanted = days.day_range(first, last, now)
    refs = [deps.db.collection(COLLECTION).document(rollup_id(merchant_id, livemode, d))
            for d in wanted]
    stored = {s.id: s.to_dict() for s in deps.db.get_all(refs) if s.exists}
    override = deps.extras.get("reports.analytics_refresh")
    rows, computed_at = [], {}
    for day in wanted:
        doc = stored.get(rollup_id(merchant_id, livemode, day))
        if not is_fresh(doc, day, now, override):
            doc = compute(deps, merchant_id, livemode, day, now)
        computed_at[day.isoformat()] = int(doc["computed_at"].timestamp())
        for r in doc["rows"]:
            rows.append(AnalyticsRow(date=day.isoformat(), asset=r["asset"], method=r["method"],
                                     created=r["created"], succeeded=r["succeeded"],
                                     volume=r["volume"],
                                     conversion_rate=conversion(r["succeeded"], r["created"])))
    return Analytics(merchant=merchant_id, livemode=livemode, from_=wanted[0].isoformat(),
                     to=wanted[-1].isoformat(), data=rows, computed_at=computed_at)
