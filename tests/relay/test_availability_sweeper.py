"""The sweeper's supply pass (offline phones, the index catching up with time), its hooks, and
earnings booked on delivery."""
from __future__ import annotations

import datetime as dt

from google.cloud.firestore_v1 import FieldFilter

from shared.platform.uow import run_unit
from shared.relay import availability, heartbeats, sweeper_hooks
from shared.relay.availability import release, reserve


def _events(deps, type_: str) -> list[dict]:
    q = deps.db.collection("events").where(filter=FieldFilter("type", "==", type_))
    return [s.to_dict() for s in q.stream()]


def test_a_phone_that_misses_its_window_goes_offline_once(kit, deps, relay_client):
    p = kit.phone(carriers=("smart", "cellcard"))
    later = deps.clock.now() + dt.timedelta(minutes=16, seconds=1)
    rechecked, offline = heartbeats.sweep(deps, later)
    assert rechecked == 2 and offline == 1
    for sim in p.sims:
        doc = availability.availability_ref(deps.db, sim).get().to_dict()
        assert doc["eligible"] is False and doc["block"] == "offline" and doc["recheck_at"] is None
    events = _events(deps, "relay.device.offline")
    assert len(events) == 1 and events[0]["tenant"] == p.user_id
    assert events[0]["data"]["object"]["id"] == p.device_id
    assert heartbeats.sweep(deps, later + dt.timedelta(minutes=1)) == (0, 0)
    assert len(_events(deps, "relay.device.offline")) == 1
    # a heartbeat brings it back; missing the next window is a new event
    kit.heartbeat(p.headers(), p.device_id)
    assert availability.availability_ref(deps.db, p.sims[0]).get().get("eligible") is True
    heartbeats.sweep(deps, deps.clock.now() + dt.timedelta(minutes=17))
    assert len(_events(deps, "relay.device.offline")) == 2


def test_the_sweeper_route_runs_the_supply_pass_then_every_hook(sweeper_client, service_headers, deps):
    calls = []

    def ok(d, now):
        calls.append(now)
        return 3

    def broken(d, now):
        raise RuntimeError("boom")

    sweeper_hooks.register(broken)
    sweeper_hooks.register(ok)
    sweeper_hooks.register(ok)   # once only
    try:
        r = sweeper_client.post("/", headers=service_headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        assert body["object"] == "relay_sweep" and body["rechecked"] == 0
        hooks = {k.rsplit(".", 1)[1]: v for k, v in body["hooks"].items()}
        assert hooks["ok"] == 3 and hooks["broken"] == -1 and len(calls) == 1
    finally:
        sweeper_hooks.HOOKS.remove(broken)
        sweeper_hooks.HOOKS.remove(ok)
    assert sweeper_client.post("/", headers={}).status_code == 401


def test_earnings_are_booked_once_per_delivered_message_and_listed(kit, deps, relay_client):
    p, other = kit.phone(), kit.phone()
    sim = p.sims[0]
    for i, outcome in enumerate(("delivered", "delivered", "failed")):
        job = f"job_e{i:010d}"
        assert run_unit(deps, lambda uow: reserve(uow, sim, now=uow.now, job_id=job))
        run_unit(deps, lambda uow: release(uow, sim, now=uow.now, job_id=job, outcome=outcome))
        run_unit(deps, lambda uow: release(uow, sim, now=uow.now, job_id=job, outcome=outcome))
    listed = relay_client.get("/v1/relay/earnings?limit=1", headers=p.headers()).get_json()
    assert listed["has_more"] is True and len(listed["data"]) == 1
    page2 = relay_client.get(f"/v1/relay/earnings?limit=5&starting_after={listed['data'][0]['id']}",
                             headers=p.headers()).get_json()
    jobs = {e["job"] for e in listed["data"] + page2["data"]}
    assert jobs == {"job_e0000000000", "job_e0000000001"}
    first = listed["data"][0]
    assert first["amount"] == 500_000 and first["amount_decimal"] == "0.500000" and first["asset"] == "PPT"
    summary = relay_client.get("/v1/relay/earnings/summary", headers=p.headers()).get_json()
    assert summary["today"] == summary["last_7_days"] == summary["total"] == 1_000_000
    assert summary["delivered_today"] == 2 and summary["delivered_total"] == 2
    me = relay_client.get("/v1/relay/providers/me", headers=p.headers()).get_json()
    assert me["success_rate"] == round(2 / 3, 4) and me["delivered_7_days"] == 2
    # another provider sees none of it, nor can page from it
    assert relay_client.get("/v1/relay/earnings", headers=other.headers()).get_json()["data"] == []
    r = relay_client.get(f"/v1/relay/earnings?starting_after={first['id']}", headers=other.headers())
    assert r.status_code == 400
    assert relay_client.get("/v1/relay/earnings/summary", headers=other.headers()).get_json()["total"] == 0
