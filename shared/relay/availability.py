"""The availability index: what matching reads, one small document per SIM (ADR 0043).

``relay_availability/{sim_id}`` holds everything matching needs and nothing personal: carrier,
mode, the provider's and device's ids, caps and the current window counts, active hours,
``online_until`` (last heartbeat + the offline window), the jobs in flight, day buckets of
outcomes, the fraud penalty, and two derived fields kept current by every write:

- ``eligible``: no lasting reason to skip the SIM (enabled, not removed, not blacklisted, the
  device not busy and reachable by push, reputation over the threshold, online, inside its
  active hours, its day quota not used up);
- ``score``: the availability score (``score``), for the index's order.

``candidates`` is ONE query on a composite index ``(livemode, carrier, eligible, score desc)``
(or ``(livemode, eligible, score desc)`` for any carrier) reading a page of about three times
``limit`` documents, never every SIM: its cost does not grow with the fleet. The page is then
checked exactly in memory against ``now`` (heartbeat age, active hours, minute/hour/day and
in-flight room), because those change with time and no write tells the index; the sweeper
(every minute) rewrites documents whose ``recheck_at`` has passed, so few stale ones ever top a
page. If the checks thin a page out, the next page is read (at most ``MAX_PAGES``).

``reserve`` and ``release`` run inside the caller's unit of work: a read of the SIM's document
and a write guarded by its ``update_time`` (``shared.platform.uow``). Two reservations of one SIM
read the same version; one commit wins, the other unit re-runs with fresh counts, so no
cap is ever exceeded. Several changes to one SIM in one unit (a release and a fraud
observation) are merged into one write.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import random
import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.relay import carriers, reputation, staging
from shared.relay.supply_settings import TIME_ZONE, SupplySettings, supply_settings

COLLECTION = "relay_availability"
PROVIDER_STATS = "relay_provider_stats"
OUTCOMES = ("delivered", "sent", "failed", "timeout", "rejected", "forged", "canceled")
LOCAL = ZoneInfo(TIME_ZONE)
MAX_PAGES = 4
JITTER = 0.05          # ranks within this score band are shuffled: concurrent picks spread out
FLAGS = ("removed", "bl_provider", "bl_device", "bl_sim", "disabled", "busy", "no_push")
_STATE = "_relay_provider_counts"
CACHE_PAGE = 64
_CACHE: dict[tuple, tuple[float, dict[str, dict[str, Any]]]] = {}
_CACHE_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Candidate:
    sim_id: str
    provider_id: str
    device_id: str
    carrier: str
    score: float
    remaining_minute: int
    remaining_hour: int
    remaining_day: int
    in_flight: int


class Candidates(list):
    """``candidates``' answer; ``from_cache`` says it came from the instance cache, not the index."""
    from_cache = False


def availability_ref(db, sim_id: str):
    return db.collection(COLLECTION).document(sim_id)


# --- time windows -----------------------------------------------------------------------------

def _epoch(now: dt.datetime) -> int:
    return int(now.timestamp())


def window_starts(now: dt.datetime) -> dict[str, int]:
    """Fixed windows: the UTC minute and hour, and the local (Phnom Penh) calendar day."""
    e = _epoch(now)
    local = now.astimezone(LOCAL)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {"m": e - e % 60, "h": e - e % 3600, "d": int(midnight.timestamp())}


def next_local_midnight(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(LOCAL).replace(hour=0, minute=0, second=0, microsecond=0)
    return (local + dt.timedelta(days=1)).astimezone(dt.timezone.utc)


def usage(doc: dict[str, Any], now: dt.datetime) -> dict[str, int]:
    """Messages taken in the current minute, hour and day (a stale window counts 0)."""
    starts = window_starts(now)
    win = doc.get("windows") or {}
    return {k: int((win.get(k) or [0, 0])[1]) if (win.get(k) or [0, 0])[0] == starts[k] else 0
            for k in ("m", "h", "d")}


def remaining(doc: dict[str, Any], now: dt.datetime) -> dict[str, int]:
    used, caps = usage(doc, now), doc["caps"]
    return {"m": max(0, caps["per_minute"] - used["m"]), "h": max(0, caps["per_hour"] - used["h"]),
            "d": max(0, caps["per_day"] - used["d"])}


def _take(doc: dict[str, Any], now: dt.datetime) -> None:
    starts, used = window_starts(now), usage(doc, now)
    doc["windows"] = {k: [starts[k], used[k] + 1] for k in ("m", "h", "d")}


# --- active hours (local time; an overnight window wraps) ---------------------------------------

def _minutes(now: dt.datetime) -> int:
    local = now.astimezone(LOCAL)
    return local.hour * 60 + local.minute


def in_active_hours(hours: dict[str, int] | None, now: dt.datetime) -> bool:
    if not hours:
        return True
    start, end, m = hours["start"], hours["end"], _minutes(now)
    return start <= m < end if start < end else (m >= start or m < end)


def next_hours_boundary(hours: dict[str, int] | None, now: dt.datetime) -> dt.datetime | None:
    """When the SIM next enters or leaves its active hours."""
    if not hours:
        return None
    local = now.astimezone(LOCAL).replace(second=0, microsecond=0)
    m = _minutes(now)
    best = None
    for target in (hours["start"], hours["end"]):
        ahead = (target - m) % 1440 or 1440
        when = (local + dt.timedelta(minutes=ahead)).astimezone(dt.timezone.utc)
        best = when if best is None or when < best else best
    return best


# --- evaluation ---------------------------------------------------------------------------------

def lasting_block(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> str | None:
    """Why the SIM cannot be matched for a while (None: it may be, quotas permitting)."""
    flags = doc.get("flags") or {}
    for name in FLAGS:
        if flags.get(name):
            return name
    if reputation.reputation(doc, now, s) < s.reputation_threshold:
        return "low_reputation"
    online_until = doc.get("online_until")
    if online_until is None or online_until <= now:
        return "offline"
    if not in_active_hours(doc.get("active_hours"), now):
        return "inactive_hours"
    if remaining(doc, now)["d"] <= 0:
        return "quota_day"
    return None


def block(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> str | None:
    """Every reason, the short-lived ones too (minute/hour quota, in-flight room)."""
    reason = lasting_block(doc, now, s)
    if reason:
        return reason
    room = remaining(doc, now)
    if room["h"] <= 0:
        return "quota_hour"
    if room["m"] <= 0:
        return "quota_minute"
    if len(doc.get("in_flight_jobs") or {}) >= doc["caps"]["in_flight"]:
        return "in_flight"
    return None


def score(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> float:
    """The availability score in [0, 1]: reputation × (success, remaining quota, load)
    × device health. Reputation multiplies so a doubtful SIM loses to a trusted idle one."""
    rep = reputation.reputation(doc, now, s)
    success, _raw, _n = reputation.success_rate(doc.get("stats") or {}, now, s)
    caps, room = doc["caps"], remaining(doc, now)
    quota = min(room["h"] / caps["per_hour"], room["d"] / caps["per_day"])
    load = len(doc.get("in_flight_jobs") or {}) / caps["in_flight"]
    health = 1.0
    battery, charging = doc.get("battery"), doc.get("charging")
    if battery is not None and not charging:
        health *= 0.5 if battery < 15 else 0.8 if battery < 30 else 1.0
    signal = doc.get("signal")
    if signal is not None and signal <= 1:
        health *= 0.7 if signal == 0 else 0.9
    value = rep * (0.35 + 0.25 * success + 0.25 * quota + 0.15 * (1.0 - min(1.0, load))) * health
    return round(max(0.0, min(1.0, value)), 6)


def evaluate(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> dict[str, Any]:
    """Recompute the derived fields (``eligible``, ``score``, ``reputation``, ``recheck_at``)."""
    reason = lasting_block(doc, now, s)
    doc["reputation"] = round(reputation.reputation(doc, now, s), 6)
    doc["score"] = score(doc, now, s)
    doc["eligible"] = reason is None
    doc["block"] = reason
    doc["recheck_at"] = _recheck_at(doc, reason, now, s)
    doc["updated_at"] = now
    return doc


def _recheck_at(doc: dict[str, Any], reason: str | None, now: dt.datetime,
                s: SupplySettings) -> dt.datetime | None:
    """When time alone may change ``eligible`` (or housekeeping is due): the sweeper's cue."""
    times = []
    if reason is None:
        times.append(doc["online_until"])
        times.append(next_hours_boundary(doc.get("active_hours"), now))
    elif reason == "inactive_hours":
        times.append(next_hours_boundary(doc.get("active_hours"), now))
    elif reason == "quota_day":
        times.append(next_local_midnight(now))
    elif reason == "low_reputation":
        times.append(now + dt.timedelta(hours=24))
    elif reason == "offline" and doc.get("online_until") and not doc.get("offline_seen"):
        times.append(doc["online_until"])   # the sweeper notes the device went offline
    for at in (doc.get("in_flight_jobs") or {}).values():
        times.append(at + dt.timedelta(seconds=s.stale_in_flight_seconds))
    for at in (doc.get("sent_jobs") or {}).values():
        times.append(at + dt.timedelta(seconds=s.sent_report_window_seconds))
    times = [t for t in times if t is not None]
    return min(times) if times else None


# --- documents ---------------------------------------------------------------------------------

def new_state(*, sim_id: str, provider_id: str, device_id: str, carrier: str, livemode: bool,
              caps: dict[str, int], active_hours: dict[str, int] | None, now: dt.datetime,
              push_ok: bool, online_until: dt.datetime | None, provider_penalty: float = 0.0,
              provider_penalty_at: dt.datetime | None = None, flags: dict[str, bool] | None = None,
              device_health: dict[str, Any] | None = None) -> dict[str, Any]:
    s_flags = {name: False for name in FLAGS}
    s_flags.update(flags or {})
    s_flags["no_push"] = not push_ok
    doc = {"sim_id": sim_id, "provider_id": provider_id, "device_id": device_id,
           "carrier": carriers.normalize(carrier), "livemode": livemode, "caps": dict(caps),
           "active_hours": active_hours, "flags": s_flags, "online_until": online_until,
           "windows": {}, "in_flight_jobs": {}, "sent_jobs": {}, "stats": {}, "latencies_ms": [],
           "penalty": 0.0, "penalty_at": None, "provider_penalty": provider_penalty,
           "provider_penalty_at": provider_penalty_at, "flags_last": {}, "offline_seen": False,
           "battery": None, "charging": None, "signal": None, "created_at": now}
    doc.update(device_health or {})
    return doc


def _pending_stats(uow) -> dict[str, Any]:
    pending = getattr(uow, _STATE, None)
    if pending is None:
        pending = {}
        setattr(uow, _STATE, pending)
    return pending


def load(uow, sim_id: str) -> dict[str, Any] | None:
    """The SIM's availability document as this unit sees it (read once per unit)."""
    return staging.load(uow, availability_ref(uow.db, sim_id))


def load_many(uow, sim_ids) -> dict[str, dict[str, Any] | None]:
    """Several SIMs' documents in one batch read."""
    sim_ids = list(sim_ids)
    docs = staging.load_many(uow, [availability_ref(uow.db, sid) for sid in sim_ids])
    return dict(zip(sim_ids, docs))


def stage(uow, doc: dict[str, Any]) -> None:
    """Write ``doc`` at commit, once per unit (``staging``)."""
    staging.stage(uow, availability_ref(uow.db, doc["sim_id"]), doc)
    _cache_note(uow.db, doc)


def update(uow, sim_id: str, change, *, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """Apply ``change(doc)`` to a SIM's document, re-evaluate it and stage the write."""
    doc = load(uow, sim_id)
    if doc is None:
        return None
    change(doc)
    evaluate(doc, now or uow.now, supply_settings(uow.deps))
    stage(uow, doc)
    return doc


def set_flag(uow, sim_ids, name: str, value: bool, *, now: dt.datetime | None = None) -> None:
    """Set one flag (``FLAGS``) on several SIMs (one batch read, one write each)."""
    assert name in FLAGS, name
    s = supply_settings(uow.deps)
    for doc in load_many(uow, list(sim_ids)).values():
        if doc is None:
            continue
        doc.setdefault("flags", {})[name] = bool(value)
        evaluate(doc, now or uow.now, s)
        stage(uow, doc)


# --- the contract with dispatch (R2) ------------------------------------------------------------

def _is_uow(obj) -> bool:
    return hasattr(obj, "get_all") and hasattr(obj, "query") and hasattr(obj, "deps")


def candidates(db, *, carrier: str | None, livemode: bool, now: dt.datetime, limit: int = 8,
               exclude_sims=frozenset(), exclude_providers=frozenset(),
               settings: SupplySettings | None = None, fresh: bool = False) -> Candidates:
    """SIMs that can take a message now, best first, one provider's SIMs spread out.

    ``db`` is the Firestore client, or the caller's unit of work: then the documents read
    here are the versions a later ``reserve`` in the same unit is guarded by (no second read).
    ``carrier=None``: any carrier (the fallback). ``settings``: the supply settings (from the
    unit's deps when ``db`` is a unit; the environment's otherwise). ``fresh``: ask the index
    even when the instance cache is on (matching does after every cached candidate failed).
    """
    if limit <= 0:
        return Candidates()
    uow = db if _is_uow(db) else None
    client = uow.db if uow is not None else db
    if settings is None:
        settings = supply_settings(uow.deps) if uow is not None else SupplySettings()
    key = carriers.normalize(carrier)

    def keep(doc: dict[str, Any]) -> bool:
        return not (doc["sim_id"] in exclude_sims or doc["provider_id"] in exclude_providers
                    or block(doc, now, settings) is not None)

    if settings.candidates_cache_seconds > 0 and not fresh:
        docs = _cached_page(client, bool(livemode), key, settings.candidates_cache_seconds)
        found = [(score(d, now, settings) + random.uniform(0, JITTER), d) for d in docs if keep(d)]
        # an empty answer is never trusted from memory: a SIM another instance revived is
        # found by the query below, so the cache can make a choice stale but never miss one
        if found and (len(found) >= limit or len(docs) < CACHE_PAGE):
            chosen = _spread(found)[:limit]
            if uow is not None:   # the first reserve reads all of them in one batch
                for doc in chosen:
                    uow.prefetch(availability_ref(client, doc["sim_id"]))
            answer = Candidates(_candidate(doc, now, settings) for doc in chosen)
            answer.from_cache = True
            return answer
    q = _pool_query(client, bool(livemode), key)
    page = max(3 * limit, 24) + len(exclude_sims)
    found: list[tuple[float, dict[str, Any]]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        query = (q.start_after(cursor) if cursor is not None else q).limit(page)
        snaps = uow.query(query) if uow is not None else list(query.stream())
        if uow is not None:   # a later load() in this unit reuses these reads
            for snap in snaps:
                staging.remember(uow, snap)
        for snap in snaps:
            doc = snap.to_dict()
            if keep(doc):
                found.append((score(doc, now, settings) + random.uniform(0, JITTER), doc))
        if len(found) >= limit or len(snaps) < page:
            break
        cursor = snaps[-1]
    return Candidates(_candidate(doc, now, settings) for doc in _spread(found)[:limit])


def _pool_query(client, livemode: bool, key: str | None):
    q = (client.collection(COLLECTION).where(filter=FieldFilter("livemode", "==", livemode))
         .where(filter=FieldFilter("eligible", "==", True)))
    if key is not None:
        q = q.where(filter=FieldFilter("carrier", "==", key))
    return q.order_by("score", direction=firestore.Query.DESCENDING)


def _cached_page(client, livemode: bool, key: str | None, ttl: float) -> list[dict[str, Any]]:
    """The pool's best ``CACHE_PAGE`` documents, read at most once per ``ttl`` seconds per
    instance. Only the choice can be stale: ``reserve`` re-reads the SIM and re-checks it."""
    cache_key = (client.project, livemode, key)
    with _CACHE_LOCK:
        entry = _CACHE.get(cache_key)
        if entry is not None and entry[0] > time.monotonic():
            return list(entry[1].values())
    docs = {s.id: s.to_dict() for s in _pool_query(client, livemode, key).limit(CACHE_PAGE).stream()}
    with _CACHE_LOCK:
        _CACHE[cache_key] = (time.monotonic() + ttl, docs)
    return list(docs.values())


def _cache_note(client, doc: dict[str, Any]) -> None:
    """This instance changed a SIM: its cached pools follow at once (a new or revived SIM joins
    them, an exhausted one stops topping them), so one instance never waits out its own TTL."""
    if not _CACHE:
        return
    snapshot = copy.deepcopy(doc)   # the unit keeps mutating its own dict until commit
    with _CACHE_LOCK:
        for (project, livemode, key), (_exp, docs) in _CACHE.items():
            if (project == client.project and livemode == doc.get("livemode")
                    and key in (None, doc.get("carrier"))):
                if doc["sim_id"] in docs or doc.get("eligible"):
                    docs[doc["sim_id"]] = snapshot


def _spread(found: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Best first, but a provider's second SIM only after every provider's first."""
    found.sort(key=lambda item: -item[0])
    rank: dict[str, int] = {}
    ordered = []
    for i, (_value, doc) in enumerate(found):
        r = rank.get(doc["provider_id"], 0)
        rank[doc["provider_id"]] = r + 1
        ordered.append(((r, i), doc))
    ordered.sort(key=lambda item: item[0])
    return [doc for _key, doc in ordered]


def _candidate(doc: dict[str, Any], now: dt.datetime, s: SupplySettings) -> Candidate:
    room = remaining(doc, now)
    return Candidate(sim_id=doc["sim_id"], provider_id=doc["provider_id"], device_id=doc["device_id"],
                     carrier=doc["carrier"], score=score(doc, now, s), remaining_minute=room["m"],
                     remaining_hour=room["h"], remaining_day=room["d"],
                     in_flight=len(doc.get("in_flight_jobs") or {}))


def reserve(uow, sim_id: str, *, now: dt.datetime, job_id: str) -> bool:
    """Take one unit of the SIM's minute, hour and day quotas and one in-flight slot for
    ``job_id``. False when the SIM cannot take it now. Idempotent per job within the slot."""
    s = supply_settings(uow.deps)
    doc = load(uow, sim_id)
    if doc is None:
        return False
    if job_id in (doc.get("in_flight_jobs") or {}):
        return True
    if block(doc, now, s) is not None:
        return False
    _take(doc, now)
    doc.setdefault("in_flight_jobs", {})[job_id] = now
    doc["last_assigned_at"] = now
    evaluate(doc, now, s)
    stage(uow, doc)
    return True


def release(uow, sim_id: str, *, now: dt.datetime, job_id: str, outcome: str) -> None:
    """Free ``job_id``'s in-flight slot and count its outcome (success rate, reputation,
    earnings on ``delivered``). ``sent`` frees the slot and waits for the delivery report: a
    later ``delivered``/``failed`` for the same job counts then; ``timeout`` after ``sent``
    counts as sent without a report (half a success). Repeats are no-ops. Quota taken is never
    given back (the carrier may have seen the message)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    doc = load(uow, sim_id)
    if doc is None:
        return
    in_flight, sent = doc.setdefault("in_flight_jobs", {}), doc.setdefault("sent_jobs", {})
    if job_id in in_flight:
        del in_flight[job_id]
        if outcome == "sent":
            sent[job_id] = now
        else:
            finish(uow, doc, job_id, outcome, now)
    elif job_id in sent and outcome != "sent":
        del sent[job_id]
        finish(uow, doc, job_id, "unconfirmed" if outcome == "timeout" else outcome, now)
    else:
        return
    evaluate(doc, now, supply_settings(uow.deps))
    stage(uow, doc)


def finish(uow, doc: dict[str, Any], job_id: str, outcome: str, now: dt.datetime) -> None:
    """Count a finished job on the SIM and its provider; book the reward when delivered."""
    s = supply_settings(uow.deps)
    letter = "u" if outcome == "unconfirmed" else reputation.BUCKET_OF.get(outcome)
    if letter is None:   # canceled: neither success nor failure
        return
    doc["stats"] = doc.get("stats") or {}
    reputation.add_outcome(doc["stats"], letter, now, s.stats_window_days)
    count_provider(uow, doc["provider_id"], now, {letter: 1})
    if outcome == "delivered":
        from shared.relay import earnings
        earnings.record(uow, doc, job_id, now, s.reward_units)


def count_provider(uow, provider_id: str, now: dt.datetime, counts: dict[str, int]) -> None:
    """Blind increments of the provider's day and lifetime counters (no read, no contention);
    merged into one write per document per unit."""
    pending = _pending_stats(uow)
    for doc_id in (f"{provider_id}:{reputation.day_key(now)}", f"{provider_id}:total"):
        ref = uow.db.collection(PROVIDER_STATS).document(doc_id)
        entry = pending.get(ref.path)
        if entry is None:
            entry = {"totals": {}, "data": {"provider_id": provider_id,
                                            "day": doc_id.rsplit(":", 1)[1], "updated_at": now}}
            pending[ref.path] = entry
            uow.set(ref, entry["data"], merge=True)
        for field, n in counts.items():
            entry["totals"][field] = entry["totals"].get(field, 0) + n
            entry["data"][field] = firestore.Increment(entry["totals"][field])
