"""Matching on the real availability index (Firestore emulator, SIM documents seeded directly):
carrier first, fallback to another carrier, exclusions, spread, priority and quotas under a
concurrent burst."""
from __future__ import annotations

import collections
import datetime as dt
import concurrent.futures as cf
import random

from shared.platform.clock import FrozenClock
from shared.platform.ids import new_id
from shared.platform.uow import run_unit
from shared.relay import availability, matching
from shared.relay.availability import Candidate
from shared.relay.dispatch_settings import DispatchSettings
from tests.relay.supply_kit import seed_sim

S = DispatchSettings()


def message(carrier="smart", priority="normal", **fields):
    return {"carrier": carrier, "livemode": False, "priority": priority, "excluded_sims": [],
            "excluded_providers": [], **fields}


def pick(deps, msg, job_id=None):
    return run_unit(deps, lambda uow: matching.pick(uow, msg, job_id or new_id("job"), S))


def test_same_carrier_first_then_any_carrier(deps, supply_settings):
    smart = {seed_sim(deps, carrier="smart") for _ in range(3)}
    metfone = {seed_sim(deps, carrier="metfone") for _ in range(3)}
    for _ in range(4):
        assert pick(deps, message("metfone")).sim_id in metfone
        assert pick(deps, message("smart")).sim_id in smart
    # every Cellcard SIM is offline: the message falls back to another carrier
    seed_sim(deps, carrier="cellcard", online=False)
    chosen = pick(deps, message("cellcard"))
    assert chosen is not None and chosen.sim_id in smart | metfone


def test_test_mode_messages_never_reach_live_sims(deps, supply_settings):
    seed_sim(deps, carrier="smart", livemode=True)
    assert pick(deps, message("smart")) is None
    test_sim = seed_sim(deps, carrier="smart")
    assert pick(deps, message("smart")).sim_id == test_sim


def test_failed_sims_and_providers_are_excluded_until_nothing_else_is_left(deps, supply_settings):
    prv_a, prv_b = new_id("prv"), new_id("prv")
    a1, a2 = seed_sim(deps, provider_id=prv_a), seed_sim(deps, provider_id=prv_a)
    b1 = seed_sim(deps, provider_id=prv_b)
    msg = message(excluded_sims=[a1], excluded_providers=[prv_a])
    assert pick(deps, msg).sim_id == b1
    msg = message(excluded_sims=[a1, b1], excluded_providers=[prv_a, prv_b])
    assert pick(deps, msg).sim_id == a2          # the provider again, on another SIM
    assert pick(deps, message(excluded_sims=[a1, a2, b1])) is None


def test_the_draw_spreads_over_the_best_k_in_proportion_to_their_scores():
    def cand(i, score):
        return Candidate(f"sim_{i}", f"prv_{i}", f"dev_{i}", "smart", score, 5, 50, 90, 0)
    found = [cand(0, 0.9), cand(1, 0.6), cand(2, 0.3), cand(3, 0.2)]
    rng = random.Random(7)
    firsts = collections.Counter(matching.order(found, "normal", S, rng)[0].sim_id for _ in range(3000))
    assert set(firsts) == {"sim_0", "sim_1", "sim_2"}              # top 3 only
    assert firsts["sim_0"] > firsts["sim_1"] > firsts["sim_2"] > 300
    assert abs(firsts["sim_0"] / 3000 - 0.5) < 0.05                  # 0.9 / (0.9+0.6+0.3)
    high = collections.Counter(matching.order(found, "high", S, rng)[0].sim_id for _ in range(500))
    assert set(high) == {"sim_0", "sim_1"}
    ordered = matching.order(found, "normal", S, rng)
    assert sorted(c.sim_id for c in ordered) == [c.sim_id for c in found]   # all kept as fallbacks


def test_assignments_spread_across_providers(deps, supply_settings):
    sims = {seed_sim(deps, carrier="smart") for _ in range(4)}
    counts = collections.Counter(pick(deps, message()).sim_id for _ in range(8))
    assert set(counts) <= sims and len(counts) >= 3, counts


def test_bulk_leaves_the_end_of_a_sims_day_to_other_priorities(deps, supply_settings):
    nearly_done = seed_sim(deps, caps={"per_minute": 30, "per_hour": 600, "per_day": 100,
                                       "in_flight": 5})
    doc = availability.availability_ref(deps.db, nearly_done).get().to_dict()
    starts = availability.window_starts(deps.clock.now())
    doc["windows"] = {"m": [starts["m"], 0], "h": [starts["h"], 0], "d": [starts["d"], 90]}
    availability.evaluate(doc, deps.clock.now(), supply_settings)
    availability.availability_ref(deps.db, nearly_done).set(doc)
    assert pick(deps, message(priority="bulk")) is None
    assert pick(deps, message(priority="normal")).sim_id == nearly_done


def test_a_concurrent_burst_never_exceeds_a_sims_caps(deps, supply_settings):
    deps.clock = FrozenClock(deps.clock.now())   # one minute window for the whole burst
    caps = {"per_minute": 3, "per_hour": 60, "per_day": 100, "in_flight": 5}
    sims = [seed_sim(deps, caps=caps) for _ in range(2)]

    def one(i):
        return pick(deps, message(), job_id=f"job_burst{i:020d}")
    with cf.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    taken = collections.Counter(r.sim_id for r in results if r is not None)
    assert sum(taken.values()) == 6 and all(taken[s] == 3 for s in sims), taken
    for sim in sims:
        doc = availability.availability_ref(deps.db, sim).get().to_dict()
        assert len(doc["in_flight_jobs"]) == 3
        assert availability.usage(doc, deps.clock.now())["m"] == 3


def _other_instance_writes(deps, sim_id, change):
    """A write by another instance: straight to Firestore, so this instance's cache misses it."""
    ref = availability.availability_ref(deps.db, sim_id)
    doc = ref.get().to_dict()
    change(doc)
    availability.evaluate(doc, deps.clock.now(), availability.supply_settings(deps))
    ref.set(doc)


def test_the_instance_cache_never_makes_matching_miss_a_sim(deps, configure_supply):
    """Cached candidates that filled up elsewhere fail to reserve; matching then asks the index
    and finds the same-carrier SIM the cache does not know, before any carrier fallback. An
    empty cached pool is never trusted either."""
    configure_supply(candidates_cache_seconds=10)
    later = deps.clock.now() + dt.timedelta(minutes=16)
    busy = seed_sim(deps, carrier="metfone")
    seed_sim(deps, carrier="smart")                      # the fallback pool
    assert pick(deps, message("metfone")).sim_id == busy   # the cache now holds metfone = {busy}
    _other_instance_writes(deps, busy, lambda d: d["flags"].update(disabled=True))
    fresh = seed_sim(deps, carrier="metfone", online=False)
    _other_instance_writes(deps, fresh, lambda d: d.update(online_until=later))
    assert fresh not in {d["sim_id"] for d in availability._CACHE[(deps.db.project, False, "metfone")][1].values()}
    assert pick(deps, message("metfone")).sim_id == fresh  # not the smart SIM: no early fallback
    # a pool whose cache is empty is read from the index at once
    cellcard = seed_sim(deps, carrier="cellcard", online=False)
    assert pick(deps, message("cellcard")).sim_id != cellcard      # offline: fallback
    _other_instance_writes(deps, cellcard, lambda d: d.update(online_until=later))
    assert pick(deps, message("cellcard")).sim_id == cellcard
