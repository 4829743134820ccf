"""SMS relay, supply side (issue 11, Measure): matching time with 10,000 registered SIMs.

10,000 availability documents (``relay_availability``) are seeded over four carrier pools
(smart, metfone, cellcard, other), with varied reputation, load and quota use, 5 % offline but
not yet swept (the worst case between two sweeper runs). Then, in process against the Firestore
emulator of ``bench/run.py``'s stack:

* ``candidates`` for one carrier and for any carrier (the fallback), ``limit=8``: latency p50/p99
  and Firestore round trips and documents read per call (it must not grow with the fleet),
  first with 1,000 SIMs, then with 10,000. Production Firestore serves the query from the
  composite index, reading one page whatever the fleet; the emulator has no indexes and scans
  the collection, so its figure grows with the fleet: read the two rows side by side;
* the same with the per-instance cache (``candidates_cache_seconds``, on by default, 1 s): a
  pool's best 64 read once per period, matched from memory (the index rows turn it off);
* a full scan of one carrier's documents ranked in memory: what matching would cost without the
  index, for comparison;
* a matching unit as dispatch runs it: ``candidates`` in the unit, then ``reserve`` (guarded by
  those reads) and ``release``: round trips per reservation.

The seeded documents are live mode (dispatch benchmarks run in test mode and never see them)
and are deleted at the end.
"""
from __future__ import annotations

import datetime as dt
import random
import time

from bench.harness import BenchEnv, RpcCounter, measure

N_SIMS = 10_000
POOLS = ("smart", "metfone", "cellcard", "other")


def _candidates_row(db, deps, s, name: str, carrier: str | None, n: int) -> dict:
    from shared.relay import availability

    def call(_i):
        return availability.candidates(db, carrier=carrier, livemode=True, now=deps.clock.now(),
                                       limit=8, settings=s)
    stats = measure(name, call, n=n)
    with RpcCounter() as counter:
        got = call(0)
    return {**stats.row(), "round_trips": counter.total, "returned": len(got),
            "distinct_providers": len({c.provider_id for c in got})}


def _seed(db, n: int, now: dt.datetime, s, salt: int = 0) -> list[str]:
    from shared.platform.ids import new_id
    from shared.relay import availability

    rng = random.Random(11 + salt)
    ids, batch = [], db.batch()
    providers = [new_id("prv") for _ in range(max(1, n // 3))]
    for i in range(n):
        sim_id = new_id("sim")
        online = rng.random() > 0.05
        doc = availability.new_state(
            sim_id=sim_id, provider_id=rng.choice(providers), device_id=new_id("dev"),
            carrier=POOLS[(i + salt) % len(POOLS)], livemode=True,
            caps={"per_minute": 6, "per_hour": 60, "per_day": 100, "in_flight": 2},
            active_hours=None, now=now, push_ok=True,
            online_until=now + dt.timedelta(seconds=rng.uniform(60, 900)) if online else now - dt.timedelta(seconds=30))
        used = rng.randint(0, 90)
        starts = availability.window_starts(now)
        doc["windows"] = {"m": [starts["m"], 0], "h": [starts["h"], min(used, 50)], "d": [starts["d"], used]}
        doc["penalty"], doc["penalty_at"] = rng.choice((0.0, 0.0, 0.0, 0.1, 0.3)), now
        doc["stats"] = {now.strftime("%Y%m%d"): {"d": rng.randint(0, 40), "f": rng.randint(0, 5)}}
        availability.evaluate(doc, now - dt.timedelta(seconds=60), s)   # as the last write left it
        batch.set(availability.availability_ref(db, sim_id), doc)
        ids.append(sim_id)
        if len(ids) % 400 == 0:
            batch.commit()
            batch = db.batch()
    batch.commit()
    return ids


def _cleanup(db, ids: list[str]) -> None:
    from shared.relay import availability
    for start in range(0, len(ids), 400):
        batch = db.batch()
        for sim_id in ids[start:start + 400]:
            batch.delete(availability.availability_ref(db, sim_id))
        batch.commit()


def run(env: BenchEnv) -> list[dict]:
    from google.cloud.firestore_v1 import FieldFilter

    from shared.platform.uow import run_unit
    from shared.relay import availability
    from shared.relay.supply_settings import SupplySettings

    deps, db = env.deps, env.deps.db
    s = SupplySettings(candidates_cache_seconds=0)   # every call asks the index
    cached = SupplySettings()                       # the default: the 1 s instance cache
    n_sims = 1_000 if env.quick else N_SIMS
    n_calls = 30 if env.quick else 200
    now = deps.clock.now()
    rows: list[dict] = []
    ids: list[str] = []
    try:
        for size in ((n_sims // 10, n_sims) if not env.quick else (n_sims,)):
            t0 = time.perf_counter()
            ids += _seed(db, size - len(ids), now, s, salt=len(ids))
            rows.append({"name": f"seed availability documents (to {size})", "n": size,
                         "seconds": round(time.perf_counter() - t0, 1)})
            for label, carrier in (("one carrier", "smart"), ("any carrier (fallback)", None)):
                rows.append(_candidates_row(db, deps, s, f"candidates, {label}, {size} SIMs", carrier,
                                            n_calls if size == n_sims else n_calls // 2))
        label = f"candidates from the {cached.candidates_cache_seconds:g} s instance cache (default)"
        rows.append(_candidates_row(db, deps, cached, f"{label}, {n_sims} SIMs",
                                    "smart", n_calls))

        def scan(_i):
            q = (db.collection(availability.COLLECTION).where(filter=FieldFilter("livemode", "==", True))
                 .where(filter=FieldFilter("carrier", "==", "smart")))
            docs = [d.to_dict() for d in q.stream()]
            when = deps.clock.now()
            ok = [d for d in docs if availability.block(d, when, s) is None]
            ok.sort(key=lambda d: -availability.score(d, when, s))
            return ok[:8]
        scan_stats = measure(f"full scan of one carrier ({n_sims // len(POOLS)} docs), no index",
                             scan, n=max(5, n_calls // 20), warmup=1)
        rows.append(scan_stats.row())

        def matcher(settings):
            def match(i: int):
                job = f"job_bench{i:08d}{random.randrange(10**6):06d}"

                def unit(uow):
                    for cand in availability.candidates(uow, carrier="metfone", livemode=True, now=uow.now,
                                                        limit=8, settings=settings):
                        if availability.reserve(uow, cand.sim_id, now=uow.now, job_id=job):
                            return cand.sim_id
                    return None
                sim = run_unit(deps, unit)
                if sim:
                    run_unit(deps, lambda uow: availability.release(uow, sim, now=uow.now, job_id=job,
                                                                    outcome="delivered"))
                return sim
            return match

        for label, settings in (("index query", s), ("instance cache", cached)):
            with RpcCounter() as counter:
                match_stats = measure(f"match ({label}) + reserve in one unit, then release",
                                      matcher(settings), n=max(10, n_calls // 4), warmup=0)
            rows.append({**match_stats.row(),
                         "round_trips_per_job": round(counter.total / match_stats.n, 2),
                         "by_rpc": {k: round(v / match_stats.n, 2) for k, v in sorted(counter.counts.items())}})
    finally:
        _cleanup(db, ids)
        for snap in db.collection("relay_earnings").where(
                filter=FieldFilter("job_id", ">=", "job_bench")).where(
                filter=FieldFilter("job_id", "<", "job_benci")).stream():
            snap.reference.delete()
    return rows
