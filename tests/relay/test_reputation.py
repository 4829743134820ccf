"""Reputation: success rate, decaying fraud penalties, and the threshold below which a SIM rests."""
from __future__ import annotations

import datetime as dt

from shared.platform.uow import run_unit
from shared.relay import availability, fraud, reputation
from shared.relay.availability import candidates, release, reserve
from shared.relay.supply_settings import SupplySettings
from tests.relay.supply_kit import seed_sim

NOW = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.timezone.utc)


def test_success_rate_is_smoothed_towards_the_prior_and_windowed():
    s = SupplySettings()
    stats: dict = {}
    smoothed, raw, n = reputation.success_rate(stats, NOW, s)
    assert (round(smoothed, 3), raw, n) == (0.9, None, 0)
    for _ in range(3):
        reputation.add_outcome(stats, "f", NOW, s.stats_window_days)
    smoothed, raw, n = reputation.success_rate(stats, NOW, s)
    assert raw == 0.0 and n == 3 and 0.5 < smoothed < 0.6     # three failures do not sink a SIM
    for _ in range(20):
        reputation.add_outcome(stats, "d", NOW, s.stats_window_days)
    reputation.add_outcome(stats, "u", NOW, s.stats_window_days)
    smoothed, raw, n = reputation.success_rate(stats, NOW, s)
    assert n == 24 and raw == 20.5 / 24
    # a week later the old buckets have left the window
    later = NOW + dt.timedelta(days=s.stats_window_days)
    reputation.add_outcome(stats, "d", later, s.stats_window_days)
    assert reputation.success_rate(stats, later, s)[2] == 1


def test_penalties_decay_with_their_half_life():
    s = SupplySettings(penalty_half_life_hours=24)
    holder: dict = {}
    reputation.add_penalty(holder, 0.4, NOW, s)
    assert reputation.decayed(holder["penalty"], holder["penalty_at"], NOW + dt.timedelta(hours=24), 24) == 0.2
    reputation.add_penalty(holder, 0.4, NOW + dt.timedelta(hours=24), s)
    assert round(holder["penalty"], 6) == 0.6


def _deliver_fast(deps, sim: str, i: int, latency: float) -> list[str] | None:
    """One job reserved, reported delivered ``latency`` s after sent; None if not reservable."""
    job = f"job_f{i:010d}"

    def unit(uow):
        if not reserve(uow, sim, now=uow.now, job_id=job):
            return None
        sent = uow.now - dt.timedelta(seconds=5)
        flags = fraud.observe_report(uow, sim_id=sim, provider_id=availability.load(uow, sim)["provider_id"],
                                     job_id=job, kind="delivered", assigned_at=sent - dt.timedelta(seconds=2),
                                     sent_at=sent, delivered_at=sent + dt.timedelta(seconds=latency), valid=True)
        release(uow, sim, now=uow.now, job_id=job, outcome="delivered")
        return flags
    return run_unit(deps, unit)


def test_a_fake_report_pattern_lowers_reputation_and_stops_matching_that_sim(deps, supply_settings):
    liar = seed_sim(deps, caps={"per_minute": 30, "per_hour": 100, "per_day": 100, "in_flight": 2})
    honest = seed_sim(deps, caps={"per_minute": 30, "per_hour": 100, "per_day": 100, "in_flight": 2})
    reports = []
    for i in range(12):   # "delivered" 0.1 s after "sent", every time
        flags = _deliver_fast(deps, liar, i, 0.1)
        if flags is None:
            break
        reports.append(flags)
    for i in range(8):
        assert _deliver_fast(deps, honest, 100 + i, 2.0 + (i % 3) * 1.7) == []
    assert 3 <= len(reports) < 12                      # matched for a while, then no more
    assert all("delivery_too_fast" in flags for flags in reports)
    liar_doc = availability.availability_ref(deps.db, liar).get().to_dict()
    honest_doc = availability.availability_ref(deps.db, honest).get().to_dict()
    assert liar_doc["reputation"] < supply_settings.reputation_threshold < honest_doc["reputation"]
    assert liar_doc["eligible"] is False and liar_doc["block"] == "low_reputation"
    got = candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(), settings=supply_settings)
    assert [c.sim_id for c in got] == [honest]
    assert not run_unit(deps, lambda uow: reserve(uow, liar, now=uow.now, job_id="job_after0001"))
    # the penalty decays: weeks of good behaviour later the SIM could be matched again
    later = deps.clock.now() + dt.timedelta(days=30)
    assert reputation.reputation(liar_doc, later, supply_settings) >= supply_settings.reputation_threshold


def test_failures_lower_the_score_but_a_failing_sim_is_still_matched(deps, supply_settings):
    good, bad = seed_sim(deps), seed_sim(deps)
    for i in range(4):
        for sim, outcome in ((good, "delivered"), (bad, "failed")):
            job = f"job_{sim[-6:]}{i:04d}"
            run_unit(deps, lambda uow: reserve(uow, sim, now=uow.now, job_id=job))
            run_unit(deps, lambda uow: release(uow, sim, now=uow.now, job_id=job, outcome=outcome))
    got = candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(), settings=supply_settings)
    by_id = {c.sim_id: c for c in got}
    assert by_id[good].score > by_id[bad].score
