"""Fake-report detectors, forged reports, many accounts on one phone, and the events operators get."""
from __future__ import annotations

import datetime as dt

from google.cloud.firestore_v1 import FieldFilter

from shared.platform.uow import run_unit
from shared.relay import availability, fraud
from tests.relay.supply_kit import err


def _events(deps, type_: str) -> list[dict]:
    q = deps.db.collection("events").where(filter=FieldFilter("type", "==", type_))
    return [s.to_dict() for s in q.stream()]


def _avail(deps, sim: str) -> dict:
    return availability.availability_ref(deps.db, sim).get().to_dict()


def _provider(deps, prv: str) -> dict:
    return deps.db.collection("relay_providers").document(prv).get().to_dict()


def _observe(deps, **kw) -> list[str]:
    now = deps.clock.now()
    base = dict(assigned_at=now - dt.timedelta(seconds=10), sent_at=now - dt.timedelta(seconds=5),
                delivered_at=now, valid=True, job_id="job_x0000000001", kind="delivered")
    return run_unit(deps, lambda uow: fraud.observe_report(uow, **{**base, **kw}))


def test_a_refused_report_penalises_the_reporter_not_the_sim_it_names(deps, kit):
    victim, intruder = kit.phone(), kit.phone()
    flags = _observe(deps, sim_id=victim.sims[0], provider_id=intruder.provider_id, valid=False,
                     reason="wrong_provider")
    assert flags == ["invalid_report"]
    assert _avail(deps, victim.sims[0]).get("penalty", 0) == 0
    assert _avail(deps, victim.sims[0]).get("provider_penalty", 0) == 0
    assert _provider(deps, intruder.provider_id)["penalty"] == fraud.WEIGHTS["invalid_report"]
    # every SIM of the intruder carries the provider's penalty into its reputation
    sim = _avail(deps, intruder.sims[0])
    assert sim["provider_penalty"] == fraud.WEIGHTS["invalid_report"] and sim["reputation"] < 0.9
    forged = _observe(deps, sim_id=None, provider_id=intruder.provider_id, valid=False, reason="wrong_token")
    assert forged == ["forged_token"]
    records = [s.to_dict() for s in deps.db.collection("relay_suspicious").stream()]
    assert sorted(r["kind"] for r in records) == ["forged_token", "invalid_report"]
    events = _events(deps, "relay.suspicious_activity")
    assert {e["data"]["object"]["kind"] for e in events} == {"forged_token", "invalid_report"}
    assert all(e["tenant"] == "platform" for e in events)


def test_operators_list_suspicious_activity_by_provider(deps, kit, relay_client, service_headers):
    victim, intruder, other = kit.phone(), kit.phone(), kit.phone()
    _observe(deps, sim_id=victim.sims[0], provider_id=intruder.provider_id, valid=False, reason="wrong_provider")
    _observe(deps, sim_id=None, provider_id=intruder.provider_id, valid=False, reason="wrong_token")
    _observe(deps, sim_id=None, provider_id=other.provider_id, valid=False, reason="unknown_job")
    everything = relay_client.get("/v1/relay/admin/suspicious", headers=service_headers).get_json()["data"]
    assert len(everything) == 3
    mine = relay_client.get(f"/v1/relay/admin/suspicious?provider={intruder.provider_id}",
                            headers=service_headers).get_json()["data"]
    assert {s["kind"] for s in mine} == {"forged_token", "invalid_report"}
    assert all(s["provider"] == intruder.provider_id for s in mine)


def test_repeated_refusals_sink_the_provider_below_the_threshold(deps, kit, supply_settings):
    cheat = kit.phone(carriers=("smart", "cellcard"))
    for i in range(4):
        _observe(deps, sim_id=None, provider_id=cheat.provider_id, valid=False, reason="wrong_token",
                 job_id=f"job_w{i:010d}")
    for sim in cheat.sims:
        doc = _avail(deps, sim)
        assert doc["eligible"] is False and doc["block"] == "low_reputation"
    # one event per kind per interval; every hit is recorded and penalised
    assert len(_events(deps, "relay.suspicious_activity")) == 1
    assert len(list(deps.db.collection("relay_suspicious").stream())) == 4


def test_sent_too_fast_and_delivered_without_sent(deps, kit):
    p = kit.phone()
    now = deps.clock.now()
    assert _observe(deps, sim_id=p.sims[0], provider_id=p.provider_id, kind="sent",
                    assigned_at=now - dt.timedelta(milliseconds=50), sent_at=now, delivered_at=None) == ["send_too_fast"]
    assert _observe(deps, sim_id=p.sims[0], provider_id=p.provider_id, sent_at=None) == ["delivered_unsent"]
    ok = _observe(deps, sim_id=p.sims[0], provider_id=p.provider_id, kind="sent",
                  assigned_at=now - dt.timedelta(seconds=3), sent_at=now, delivered_at=None)
    assert ok == []
    assert _avail(deps, p.sims[0])["penalty"] > 0


def test_machine_regular_delivery_times_are_flagged(deps, kit, supply_settings):
    p = kit.phone()
    flags: list[str] = []
    now = deps.clock.now()
    for i in range(supply_settings.uniform_min_samples):   # exactly 3.000 s, every time
        flags += _observe(deps, sim_id=p.sims[0], provider_id=p.provider_id, job_id=f"job_u{i:010d}",
                          sent_at=now, delivered_at=now + dt.timedelta(seconds=3))
    assert flags == ["uniform_delivery"]
    human = kit.phone()
    for i, latency in enumerate([2.1, 4.8, 3.3, 7.9, 2.6, 5.5, 3.9, 12.0, 2.4, 6.1, 3.0]):
        assert _observe(deps, sim_id=human.sims[0], provider_id=human.provider_id, job_id=f"job_h{i:010d}",
                        sent_at=now, delivered_at=now + dt.timedelta(seconds=latency)) == []


def test_a_report_about_a_sim_of_another_provider_is_not_judged_as_that_sim(deps, kit):
    a, b = kit.phone(), kit.phone()
    assert _observe(deps, sim_id=a.sims[0], provider_id=b.provider_id, sent_at=None) == []
    assert _avail(deps, a.sims[0]).get("penalty", 0) == 0


def test_many_accounts_on_one_phone_are_refused_and_flagged(deps, kit, relay_client):
    first_uid, first = kit.user()
    second_uid, second = kit.user()
    p1, p2 = kit.provider(first), kit.provider(second)
    body = {"fingerprint": "android-id-0123456789", "push_token": "fleet-tok-1"}
    assert relay_client.post("/v1/relay/devices", json=body, headers=first).status_code == 201
    r = relay_client.post("/v1/relay/devices", json={**body, "push_token": "fleet-tok-2"}, headers=second)
    assert r.status_code == 409 and err(r)["code"] == "device_in_use"
    # the attempt is remembered, both accounts penalised, operators told
    assert _provider(deps, p1)["penalty"] > 0 and _provider(deps, p2)["penalty"] > 0
    kinds = [e["data"]["object"]["kind"] for e in _events(deps, "relay.suspicious_activity")]
    assert kinds.count("many_accounts_per_device") == 2
    # the owner re-registering the phone is not an attempt
    again = relay_client.post("/v1/relay/devices", json={**body, "push_token": "fleet-tok-3"}, headers=first)
    assert again.status_code == 200
    assert len(list(deps.db.collection("relay_suspicious").stream())) == 2
