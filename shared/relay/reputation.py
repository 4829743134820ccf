"""Reputation: how far matching trusts a SIM (ADR 0043).

``reputation = success × (1 − min(1, penalty))`` in [0, 1], where

- ``success`` is the SIM's delivery success rate over ``stats_window_days`` days, smoothed
  towards ``prior_success`` with the weight of ``prior_weight`` jobs (a new SIM is neither
  trusted nor shunned; three failures out of three do not sink it);
- ``penalty`` is the sum of the SIM's and its provider's fraud penalties (``fraud.py`` adds
  them), each decaying with a half-life (``penalty_half_life_hours``), so an honest streak wins
  the SIM back over days while a pattern of fake reports keeps it out.

A SIM whose reputation falls below ``reputation_threshold`` is not matched (``availability``).
Pure functions on the availability document: no I/O here.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.relay.supply_settings import SupplySettings

# Day buckets of finished jobs on the availability document (``stats``), by outcome letter:
# d delivered, u sent without a delivery report (half a success), f failed or rejected,
# t timed out, x forged (a report the platform refused).
BUCKET_OF = {"delivered": "d", "failed": "f", "rejected": "f", "timeout": "t", "forged": "x"}
SUCCESS_WEIGHT = {"d": 1.0, "u": 0.5, "f": 0.0, "t": 0.0, "x": 0.0}


def day_key(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).strftime("%Y%m%d")


def window_keys(now: dt.datetime, days: int) -> list[str]:
    return [day_key(now - dt.timedelta(days=i)) for i in range(days)]


def add_outcome(stats: dict[str, dict[str, int]], letter: str, now: dt.datetime, days: int) -> None:
    """Count one finished job in today's bucket; drop buckets older than the window."""
    keep = set(window_keys(now, days))
    for key in [k for k in stats if k not in keep]:
        del stats[key]
    bucket = stats.setdefault(day_key(now), {})
    bucket[letter] = int(bucket.get(letter, 0)) + 1


def totals(stats: dict[str, dict[str, int]], now: dt.datetime, days: int) -> dict[str, int]:
    out = {k: 0 for k in SUCCESS_WEIGHT}
    for key in window_keys(now, days):
        for letter, count in (stats.get(key) or {}).items():
            if letter in out:
                out[letter] += int(count)
    return out


def success_rate(stats: dict[str, dict[str, int]], now: dt.datetime,
                 s: SupplySettings) -> tuple[float, float | None, int]:
    """(smoothed rate, raw rate or None without jobs, finished jobs) over the window."""
    t = totals(stats, now, s.stats_window_days)
    n = sum(t.values())
    good = sum(SUCCESS_WEIGHT[k] * v for k, v in t.items())
    smoothed = (good + s.prior_success * s.prior_weight) / (n + s.prior_weight)
    return smoothed, (good / n if n else None), n


def decayed(value: float, at: dt.datetime | None, now: dt.datetime, half_life_hours: float) -> float:
    if not value or at is None:
        return 0.0
    hours = max(0.0, (now - at).total_seconds() / 3600)
    return float(value) * 0.5 ** (hours / half_life_hours)


def add_penalty(holder: dict[str, Any], weight: float, now: dt.datetime, s: SupplySettings,
                field: str = "penalty") -> float:
    """Add ``weight`` to a decaying penalty kept as (``field``, ``field``_at); returns it."""
    current = decayed(holder.get(field) or 0.0, holder.get(f"{field}_at"), now, s.penalty_half_life_hours)
    holder[field] = round(current + weight, 6)
    holder[f"{field}_at"] = now
    return holder[field]


def penalty_now(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> float:
    return (decayed(doc.get("penalty") or 0.0, doc.get("penalty_at"), now, s.penalty_half_life_hours)
            + decayed(doc.get("provider_penalty") or 0.0, doc.get("provider_penalty_at"), now,
                      s.penalty_half_life_hours))


def reputation(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> float:
    success, _raw, _n = success_rate(doc.get("stats") or {}, now, s)
    return max(0.0, min(1.0, success * (1.0 - min(1.0, penalty_now(doc, now, s)))))
