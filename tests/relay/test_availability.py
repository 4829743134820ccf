"""The availability index and the reserve/release contract dispatch codes against (ADR 0043)."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading

import pytest

from shared.platform.uow import Contention, run_unit
from shared.relay import availability
from shared.relay.availability import candidates, release, reserve
from tests.relay.supply_kit import seed_sim


@pytest.fixture
def now(deps):
    return deps.clock.now()


def _reserve(deps, sim_id: str, job_id: str, when=None) -> bool:
    return run_unit(deps, lambda uow: reserve(uow, sim_id, now=when or uow.now, job_id=job_id))


def _release(deps, sim_id: str, job_id: str, outcome: str, when=None) -> None:
    run_unit(deps, lambda uow: release(uow, sim_id, now=when or uow.now, job_id=job_id, outcome=outcome))


def _doc(deps, sim_id: str) -> dict:
    return availability.availability_ref(deps.db, sim_id).get().to_dict()


def test_candidates_match_the_carrier_and_mode_and_skip_offline_sims(deps, supply_settings, now):
    smart = seed_sim(deps, carrier="smart")
    metfone = seed_sim(deps, carrier="metfone")
    seed_sim(deps, carrier="smart", online=False)          # never heartbeated
    seed_sim(deps, carrier="smart", livemode=True)         # the other mode
    got = candidates(deps.db, carrier="smart", livemode=False, now=now, settings=supply_settings)
    assert [c.sim_id for c in got] == [smart]
    assert got[0].carrier == "smart" and got[0].remaining_day == 100 and got[0].in_flight == 0
    anyone = candidates(deps.db, carrier=None, livemode=False, now=now, settings=supply_settings)
    assert {c.sim_id for c in anyone} == {smart, metfone}
    # seatel is pooled with the other small operators
    assert candidates(deps.db, carrier="seatel", livemode=False, now=now, settings=supply_settings) == []


def test_offline_is_exact_16_minutes_after_the_heartbeat_between_sweeps(deps, supply_settings, now):
    sim = seed_sim(deps, now=now)
    just_before = now + dt.timedelta(seconds=16 * 60 - 1)
    assert [c.sim_id for c in candidates(deps.db, carrier="smart", livemode=False, now=just_before,
                                         settings=supply_settings)] == [sim]
    at = now + dt.timedelta(seconds=16 * 60)
    assert candidates(deps.db, carrier="smart", livemode=False, now=at, settings=supply_settings) == []
    assert not _reserve(deps, sim, "job_late0001", when=at)


def test_exclusions_and_load_spread_across_providers(deps, supply_settings, now):
    a1 = seed_sim(deps, provider_id="prv_aaaaaaaaaaaa")
    a2 = seed_sim(deps, provider_id="prv_aaaaaaaaaaaa")
    b1 = seed_sim(deps, provider_id="prv_bbbbbbbbbbbb")
    got = candidates(deps.db, carrier="smart", livemode=False, now=now, settings=supply_settings)
    assert len(got) == 3
    assert {got[0].provider_id, got[1].provider_id} == {"prv_aaaaaaaaaaaa", "prv_bbbbbbbbbbbb"}
    ex = candidates(deps.db, carrier="smart", livemode=False, now=now, settings=supply_settings,
                    exclude_sims={a1}, exclude_providers={"prv_bbbbbbbbbbbb"})
    assert [c.sim_id for c in ex] == [a2]
    assert b1 not in {c.sim_id for c in ex}


def test_reserve_takes_quota_and_a_slot_and_release_frees_the_slot(deps, supply_settings, now):
    sim = seed_sim(deps, caps={"per_minute": 2, "per_hour": 10, "per_day": 20, "in_flight": 2})
    assert _reserve(deps, sim, "job_a00000001")
    assert _reserve(deps, sim, "job_a00000001")            # the same job again: still one slot
    assert _reserve(deps, sim, "job_a00000002")
    assert not _reserve(deps, sim, "job_a00000003")        # in-flight (and minute) cap
    doc = _doc(deps, sim)
    assert set(doc["in_flight_jobs"]) == {"job_a00000001", "job_a00000002"}
    assert availability.usage(doc, deps.clock.now()) == {"m": 2, "h": 2, "d": 2}
    _release(deps, sim, "job_a00000001", "delivered")
    _release(deps, sim, "job_a00000001", "delivered")      # duplicate: no second count
    doc = _doc(deps, sim)
    assert set(doc["in_flight_jobs"]) == {"job_a00000002"}
    assert sum(b.get("d", 0) for b in doc["stats"].values()) == 1
    # the minute's quota is spent although a slot is free: quota is never given back
    assert not _reserve(deps, sim, "job_a00000004")
    assert _reserve(deps, sim, "job_a00000004", when=deps.clock.now() + dt.timedelta(seconds=60))


def test_sent_then_delivered_counts_once_and_earns(deps, supply_settings):
    sim = seed_sim(deps)
    assert _reserve(deps, sim, "job_s00000001")
    _release(deps, sim, "job_s00000001", "sent")
    doc = _doc(deps, sim)
    assert doc["in_flight_jobs"] == {} and "job_s00000001" in doc["sent_jobs"]
    _release(deps, sim, "job_s00000001", "delivered")
    _release(deps, sim, "job_s00000001", "delivered")
    doc = _doc(deps, sim)
    assert doc["sent_jobs"] == {} and sum(b.get("d", 0) for b in doc["stats"].values()) == 1
    earns = [s.to_dict() for s in deps.db.collection("relay_earnings").stream()]
    assert len(earns) == 1 and earns[0]["amount"] == 500_000 and earns[0]["job_id"] == "job_s00000001"
    assert earns[0]["provider_id"] == doc["provider_id"]


def test_a_sent_job_without_delivery_report_counts_half(deps, supply_settings):
    sim = seed_sim(deps)
    _reserve(deps, sim, "job_u00000001")
    _release(deps, sim, "job_u00000001", "sent")
    _release(deps, sim, "job_u00000001", "timeout")
    doc = _doc(deps, sim)
    assert sum(b.get("u", 0) for b in doc["stats"].values()) == 1
    assert not list(deps.db.collection("relay_earnings").stream())


def test_an_unknown_outcome_is_refused(deps, supply_settings):
    sim = seed_sim(deps)
    with pytest.raises(ValueError):
        _release(deps, sim, "job_x00000001", "lost")


def test_concurrent_reservations_never_exceed_the_caps(deps, supply_settings):
    """16 threads race for one SIM allowing 5 a minute: at most 5 win, the counts agree."""
    sim = seed_sim(deps, caps={"per_minute": 5, "per_hour": 50, "per_day": 100, "in_flight": 20})
    start = threading.Barrier(16)

    def race(i: int) -> bool | None:
        start.wait()
        try:
            return _reserve(deps, sim, f"job_c{i:010d}")
        except Contention:
            return None   # gave up after its retries: took nothing

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(race, range(16)))
    won = [i for i, r in enumerate(results) if r]
    doc = _doc(deps, sim)
    assert 1 <= len(won) <= 5
    assert len(doc["in_flight_jobs"]) == len(won)
    assert availability.usage(doc, deps.clock.now())["m"] == len(won)


def test_concurrent_reservations_across_sims_respect_each_day_cap(deps, supply_settings):
    """A burst of 16 dispatchers over three SIMs with a day cap of 3: never more than 3 each."""
    sims = [seed_sim(deps, caps={"per_minute": 3, "per_hour": 3, "per_day": 3, "in_flight": 10})
            for _ in range(3)]
    taken: dict[str, int] = {s: 0 for s in sims}
    lock = threading.Lock()

    def dispatch(i: int) -> None:
        for cand in candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(),
                               settings=supply_settings):
            try:
                ok = _reserve(deps, cand.sim_id, f"job_d{i:010d}")
            except Contention:
                continue
            if ok:
                with lock:
                    taken[cand.sim_id] += 1
                return

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(dispatch, range(16)))
    for sim in sims:
        doc = _doc(deps, sim)
        assert len(doc["in_flight_jobs"]) == taken[sim] <= 3
    assert sum(taken.values()) == 9   # every SIM filled, none over


def test_reserve_inside_a_unit_reuses_the_candidate_reads(deps, configure_supply):
    """Dispatch may pass its unit to candidates: reserve is then guarded by those reads."""
    configure_supply(candidates_cache_seconds=0)   # the index path (the cache path: below)
    sim = seed_sim(deps)

    def unit(uow):
        got = candidates(uow, carrier="smart", livemode=False, now=uow.now)
        reads_before = len(uow._snaps)
        ok = reserve(uow, got[0].sim_id, now=uow.now, job_id="job_r00000001")
        assert len(uow._snaps) == reads_before   # no second read of the SIM
        return ok

    assert run_unit(deps, unit)
    assert "job_r00000001" in _doc(deps, sim)["in_flight_jobs"]


def test_day_quota_rests_the_sim_until_local_midnight(deps, supply_settings):
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone.utc)   # 17:00 in Phnom Penh
    far = now + dt.timedelta(days=2)
    sim = seed_sim(deps, now=now, caps={"per_minute": 1, "per_hour": 2, "per_day": 2, "in_flight": 5},
                   online_until=far)
    assert _reserve(deps, sim, "job_q00000001", when=now)
    assert _reserve(deps, sim, "job_q00000002", when=now + dt.timedelta(minutes=1))
    for job in ("job_q00000001", "job_q00000002"):
        _release(deps, sim, job, "delivered", when=now + dt.timedelta(minutes=2))
    doc = _doc(deps, sim)
    assert doc["eligible"] is False and doc["block"] == "quota_day"
    midnight = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.timezone.utc)   # 00:00 next day, UTC+7
    assert doc["recheck_at"] == midnight
    from shared.relay import heartbeats
    heartbeats.sweep(deps, midnight)
    doc = _doc(deps, sim)
    assert doc["eligible"] is True
    assert [c.sim_id for c in candidates(deps.db, carrier="smart", livemode=False, now=midnight,
                                         settings=supply_settings)] == [sim]


def test_active_hours_in_phnom_penh_time_including_overnight(deps, supply_settings):
    day = {"start": 8 * 60, "end": 21 * 60}
    night = {"start": 22 * 60, "end": 6 * 60}
    at_9am = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)    # 09:00 local
    at_11pm = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.timezone.utc)  # 23:00 local
    assert availability.in_active_hours(day, at_9am) and not availability.in_active_hours(day, at_11pm)
    assert availability.in_active_hours(night, at_11pm) and not availability.in_active_hours(night, at_9am)
    assert availability.next_hours_boundary(day, at_9am) == dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.timezone.utc)
    sim = seed_sim(deps, active_hours=day, now=at_11pm, online_until=at_11pm + dt.timedelta(hours=12))
    doc = _doc(deps, sim)
    assert doc["block"] == "inactive_hours"
    assert doc["recheck_at"] == dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.timezone.utc)   # 08:00 local


def test_stale_reservations_are_timed_out_by_the_sweeper(deps, supply_settings):
    now = deps.clock.now()
    sim = seed_sim(deps, now=now, online_until=now + dt.timedelta(hours=2))
    assert _reserve(deps, sim, "job_t00000001", when=now)
    later = now + dt.timedelta(seconds=supply_settings.stale_in_flight_seconds)
    from shared.relay import heartbeats
    rechecked, _ = heartbeats.sweep(deps, later)
    doc = _doc(deps, sim)
    assert rechecked == 1 and doc["in_flight_jobs"] == {}
    assert sum(b.get("t", 0) for b in doc["stats"].values()) == 1


def test_the_instance_cache_matches_from_memory_and_reserve_stays_the_authority(deps, configure_supply):
    """With ``candidates_cache_seconds`` a pool is queried once per period; a SIM disabled in
    the meantime may still be offered, but reserving it re-reads it and fails."""
    s = configure_supply(candidates_cache_seconds=5)
    a, b = seed_sim(deps), seed_sim(deps)
    from bench.harness import RpcCounter
    with RpcCounter() as counter:
        first = candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(), settings=s)
        again = candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(), settings=s)
    assert counter.counts == {"run_query": 1}
    assert {c.sim_id for c in first} == {c.sim_id for c in again} == {a, b}
    run_unit(deps, lambda uow: availability.set_flag(uow, [a], "disabled", True))
    doc_a = _doc(deps, a)
    assert doc_a["eligible"] is False
    # this instance's own write updated its cached copy; another instance's would not:
    availability._CACHE[(deps.db.project, False, "smart")][1][a] = {**doc_a, "flags": {}, "eligible": True}
    assert a in {c.sim_id for c in candidates(deps.db, carrier="smart", livemode=False,
                                               now=deps.clock.now(), settings=s)}
    assert not _reserve(deps, a, "job_k00000001")

    def unit(uow):
        got = candidates(uow, carrier="smart", livemode=False, now=uow.now)
        return [c.sim_id for c in got if reserve(uow, c.sim_id, now=uow.now, job_id="job_k00000002")][:1]
    with RpcCounter() as counter:
        assert run_unit(deps, unit) == [b]
    assert counter.counts == {"batch_get_documents": 1, "commit": 1}   # one read for all candidates
