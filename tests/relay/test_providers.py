"""Providers, devices and SIMs through the ``relay`` function (ADR 0043)."""
from __future__ import annotations

from tests.relay.supply_kit import err, fresh_phone


def test_a_user_becomes_a_provider_adds_a_device_and_a_verified_sim(kit, relay_client):
    _uid, h = kit.user()
    r = relay_client.post("/v1/relay/providers", json={"display_name": "Dara"}, headers=h)
    assert r.status_code == 201, r.get_data(as_text=True)
    prv = r.get_json()
    assert prv["id"].startswith("prv_") and prv["status"] == "active" and prv["sims"] == []
    again = relay_client.post("/v1/relay/providers", json={}, headers=h)
    assert again.status_code == 200 and again.get_json()["id"] == prv["id"]

    dev = kit.device(h)
    phone = fresh_phone("metfone")
    sim = kit.add_sim(h, dev, phone, per_day=80, active_hours={"start": "07:00", "end": "22:00"})
    assert sim["carrier"] == "metfone" and sim["carrier_name"] == "Metfone"
    assert sim["phone"] != phone and sim["phone"].endswith(phone[-3:])
    assert sim["caps"] == {"per_minute": 6, "per_hour": 60, "per_day": 80}
    assert sim["active_hours"] == {"start": "07:00", "end": "22:00", "time_zone": "Asia/Phnom_Penh"}
    assert sim["status"] == "offline" and sim["livemode"] is False

    kit.heartbeat(h, dev)
    listed = relay_client.get("/v1/relay/sims", headers=h).get_json()["data"]
    assert [s["id"] for s in listed] == [sim["id"]]
    me = relay_client.get("/v1/relay/providers/me", headers=h).get_json()
    assert me["sims"] == [sim["id"]] and me["devices"] == [dev]


def _avail(deps, sim_id):
    from shared.relay import availability
    return availability.availability_ref(deps.db, sim_id).get().to_dict()


def test_a_user_who_is_not_a_provider_and_api_keys_are_refused(kit, relay_client, deps):
    _uid, h = kit.user()
    for method, path in (("GET", "/v1/relay/providers/me"), ("GET", "/v1/relay/sims"),
                         ("POST", "/v1/relay/devices"), ("GET", "/v1/relay/earnings")):
        body = {"fingerprint": "abcdefgh1234", "push_token": "t"} if method == "POST" else None
        r = relay_client.open(path, method=method, json=body, headers=h)
        assert r.status_code == 403 and err(r)["code"] == "not_a_provider", (path, r.get_json())
    from shared.platform.uow import run_unit
    from shared.identity.apikeys import service
    key = run_unit(deps, lambda uow: service.create_api_key(uow, owner_id=_uid, name="k",
                                                            scopes=["payments:read"], livemode=False))
    r = relay_client.get("/v1/relay/sims", headers={"Authorization": f"Bearer {key.secret}"})
    assert r.status_code == 403


def test_another_providers_device_and_sim_are_404_and_a_heartbeat_for_them_too(kit, relay_client):
    owner, other = kit.phone(), kit.phone()
    h = other.headers()
    for method, path, body in (
            ("POST", f"/v1/relay/devices/{owner.device_id}/heartbeat", {"battery": 50}),
            ("GET", f"/v1/relay/devices/{owner.device_id}", None),
            ("PATCH", f"/v1/relay/devices/{owner.device_id}", {"status": "busy"}),
            ("POST", f"/v1/relay/devices/{owner.device_id}/push_token", {"push_token": "x"}),
            ("GET", f"/v1/relay/sims/{owner.sims[0]}", None),
            ("PATCH", f"/v1/relay/sims/{owner.sims[0]}", {"per_day": 10}),
            ("DELETE", f"/v1/relay/sims/{owner.sims[0]}", None)):
        r = relay_client.open(path, method=method, json=body, headers=h)
        assert r.status_code == 404 and err(r)["code"] == "resource_missing", (method, path, r.get_json())
    # adding a SIM to someone else's device: 404 before any code is texted
    r = relay_client.post("/v1/relay/sims", json={"phone": fresh_phone(), "device": owner.device_id}, headers=h)
    assert r.status_code == 404


def test_a_number_held_by_another_provider_is_409_after_the_code(kit, relay_client, deps):
    import time
    owner = kit.phone(carriers=("cellcard",))
    time.sleep(1.1)   # one code per number and purpose at a time
    _uid, h = kit.user()
    kit.provider(h)
    dev = kit.device(h)
    number = owner.numbers[0]
    r = relay_client.post("/v1/relay/sims", json={"phone": number, "device": dev}, headers=h)
    assert r.status_code == 202
    r = relay_client.post("/v1/relay/sims/verify", headers=h,
                          json={"phone": number, "code": kit.code_for(number), "device": dev})
    assert r.status_code == 409 and err(r)["code"] == "sim_in_use"
    assert _avail(deps, owner.sims[0])["provider_id"] == owner.provider_id


def test_another_account_asking_for_the_same_number_never_cancels_a_pending_code(kit, relay_client):
    """Codes are bound to the user who asked: a stranger starting a verification of my number
    (who then cannot read its SMS) neither replaces my code nor makes me wait."""
    _a, mine = kit.user()
    kit.provider(mine)
    my_dev = kit.device(mine)
    number = fresh_phone("metfone")
    assert relay_client.post("/v1/relay/sims", json={"phone": number, "device": my_dev},
                             headers=mine).status_code == 202
    my_code = kit.code_for(number)
    _b, theirs = kit.user()
    kit.provider(theirs)
    their_dev = kit.device(theirs)
    r = relay_client.post("/v1/relay/sims", json={"phone": number, "device": their_dev}, headers=theirs)
    assert r.status_code == 202
    their_code = kit.code_for(number)
    assert len(kit.sms.inbox(number)) == 2   # both codes were texted to the number
    r = relay_client.post("/v1/relay/sims/verify", headers=mine,
                          json={"phone": number, "code": my_code, "device": my_dev})
    assert r.status_code == 201, r.get_json()
    # the other account's own code, if it could read it, now finds the number taken
    r = relay_client.post("/v1/relay/sims/verify", headers=theirs,
                          json={"phone": number, "code": their_code, "device": their_dev})
    assert r.status_code == 409 and err(r)["code"] == "sim_in_use"


def test_a_wrong_code_adds_nothing_and_counts_an_attempt(kit, relay_client, deps):
    _uid, h = kit.user()
    kit.provider(h)
    dev = kit.device(h)
    number = fresh_phone("smart")
    relay_client.post("/v1/relay/sims", json={"phone": number, "device": dev}, headers=h)
    good = kit.code_for(number)
    bad = "000000" if good != "000000" else "111111"
    r = relay_client.post("/v1/relay/sims/verify", headers=h, json={"phone": number, "code": bad, "device": dev})
    assert r.status_code == 400 and err(r)["code"] == "otp_incorrect"
    assert relay_client.get("/v1/relay/sims", headers=h).get_json()["data"] == []
    r = relay_client.post("/v1/relay/sims/verify", headers=h, json={"phone": number, "code": good, "device": dev})
    assert r.status_code == 201
    # verifying again answers the same SIM (200), the spent code is refused
    r = relay_client.post("/v1/relay/sims/verify", headers=h, json={"phone": number, "code": good, "device": dev})
    assert r.status_code == 400


def test_hostile_sim_and_device_input_is_a_4xx(kit, relay_client):
    p = kit.phone()
    h = p.headers()
    bad = [
        ("/v1/relay/sims", {"phone": "not a number", "device": p.device_id}, 400),
        ("/v1/relay/sims", {"phone": "+15005550006", "device": p.device_id}, 400),     # not Cambodia
        ("/v1/relay/sims", {"phone": fresh_phone(), "device": "../x"}, 400),
        ("/v1/relay/devices", {"fingerprint": "short", "push_token": "t"}, 400),
        ("/v1/relay/devices", {"fingerprint": "has space here", "push_token": "t"}, 400),
        ("/v1/relay/devices", {"fingerprint": "abcdefgh", "push_token": "x" * 5000}, 400),
        (f"/v1/relay/devices/{p.device_id}/heartbeat", {"battery": 101}, 400),
        (f"/v1/relay/devices/{p.device_id}/heartbeat", {"signal": -1}, 400),
        (f"/v1/relay/devices/{p.device_id}/heartbeat", {"location": {"lat": 91, "lng": 0}}, 400),
        (f"/v1/relay/devices/{p.device_id}/heartbeat", {"extra": 1}, 400),
    ]
    for path, body, status in bad:
        r = relay_client.post(path, json=body, headers=h)
        assert r.status_code == status, (path, body, r.get_json())
    r = relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat", data=b'{"battery": NaN}',
                          headers=h, content_type="application/json")
    assert 400 <= r.status_code < 500
    for body in ({"per_minute": 0}, {"per_day": 100000}, {"per_minute": 50, "per_hour": 10},
                 {"active_hours": {"start": "25:00", "end": "06:00"}},
                 {"active_hours": {"start": "08:00", "end": "08:00"}}, {"enabled": "maybe"}):
        r = relay_client.patch(f"/v1/relay/sims/{p.sims[0]}", json=body, headers=h)
        assert r.status_code == 400, (body, r.get_json())
    r = relay_client.patch(f"/v1/relay/sims/{p.sims[0]}", json={"per_day": 501}, headers=h)
    assert r.status_code == 400 and err(r)["code"] == "caps_invalid"


def test_heartbeat_keeps_a_coarse_location_and_sets_online_until(kit, relay_client, deps):
    p = kit.phone(online=False)
    ack = kit.heartbeat(p.headers(), p.device_id, battery=12, charging=False, signal=1,
                        location={"lat": 11.562108, "lng": 104.888535, "accuracy_m": 8})
    assert ack["status"] == "online" and ack["next_heartbeat_in"] == 900 and ack["message_km"] is None
    device = deps.db.collection("relay_devices").document(p.device_id).get().to_dict()
    assert device["location"] == {"lat": 11.56, "lng": 104.89}
    assert "accuracy_m" not in device["location"]
    doc = _avail(deps, p.sims[0])
    assert doc["battery"] == 12 and doc["online_until"] == device["online_until"]
    assert (device["online_until"] - device["last_heartbeat_at"]).total_seconds() == 16 * 60
    got = relay_client.get(f"/v1/relay/devices/{p.device_id}", headers=p.headers()).get_json()
    assert got["status"] == "online" and "location" not in got and "fingerprint" not in str(got)


def test_a_heartbeat_costs_two_reads_and_one_commit(kit, relay_client):
    from bench.harness import RpcCounter
    p = kit.phone(carriers=("smart", "metfone"))
    with RpcCounter() as counter:
        kit.heartbeat(p.headers(), p.device_id)
    # the access token's session check (identity), then provider + device in one batch, the
    # device's SIMs in another, and one commit
    assert counter.counts == {"batch_get_documents": 3, "commit": 1}


def test_busy_device_and_disabled_sim_leave_matching_until_restored(kit, relay_client, deps, supply_settings):
    from shared.relay.availability import candidates
    p = kit.phone()

    def matched():
        return [c.sim_id for c in candidates(deps.db, carrier="smart", livemode=False,
                                             now=deps.clock.now(), settings=supply_settings)]
    assert matched() == p.sims
    r = relay_client.patch(f"/v1/relay/devices/{p.device_id}", json={"status": "busy"}, headers=p.headers())
    assert r.get_json()["status"] == "busy" and matched() == []
    relay_client.patch(f"/v1/relay/devices/{p.device_id}", json={"status": "online"}, headers=p.headers())
    assert matched() == p.sims
    r = relay_client.patch(f"/v1/relay/sims/{p.sims[0]}", json={"enabled": False}, headers=p.headers())
    assert r.get_json()["status"] == "disabled" and matched() == []
    relay_client.patch(f"/v1/relay/sims/{p.sims[0]}", json={"enabled": True}, headers=p.headers())
    assert matched() == p.sims
    r = relay_client.delete(f"/v1/relay/sims/{p.sims[0]}", headers=p.headers())
    assert r.status_code == 200 and r.get_json()["status"] == "removed" and matched() == []
    assert relay_client.get("/v1/relay/sims", headers=p.headers()).get_json()["data"] == []
    # re-adding the number keeps its history
    import time
    time.sleep(1.1)   # one code per number and purpose at a time
    sim = kit.add_sim(p.headers(), p.device_id, p.numbers[0])
    assert sim["id"] == p.sims[0] and matched() == p.sims


def test_a_dropped_push_token_stops_matching_until_the_phone_sends_a_new_one(kit, relay_client, deps, supply_settings):
    from shared.platform.uow import run_unit
    from shared.relay import providers
    from shared.relay.availability import candidates
    p = kit.phone()
    assert providers.device_push_token(deps.db, p.device_id).startswith("fleet-")
    run_unit(deps, lambda uow: providers.drop_push_token(uow, p.device_id, "unregistered"))
    assert providers.device_push_token(deps.db, p.device_id) is None
    assert _avail(deps, p.sims[0])["block"] == "no_push"
    sim = relay_client.get(f"/v1/relay/sims/{p.sims[0]}", headers=p.headers()).get_json()
    assert sim["status"] == "unreachable"
    r = relay_client.post(f"/v1/relay/devices/{p.device_id}/push_token", json={"push_token": "fleet-new-token"},
                          headers=p.headers())
    assert r.status_code == 200 and r.get_json()["push_token_status"] == "active"
    assert providers.device_push_token(deps.db, p.device_id) == "fleet-new-token"
    assert [c.sim_id for c in candidates(deps.db, carrier="smart", livemode=False, now=deps.clock.now(),
                                         settings=supply_settings)] == p.sims


def test_sim_moves_to_another_device_and_takes_its_liveness(kit, relay_client, deps):
    p = kit.phone(carriers=("smart", "metfone"))
    second = kit.device(p.headers())
    r = relay_client.patch(f"/v1/relay/sims/{p.sims[1]}", json={"device": second}, headers=p.headers())
    assert r.status_code == 200 and r.get_json()["device"] == second and r.get_json()["status"] == "offline"
    kit.heartbeat(p.headers(), second)
    assert _avail(deps, p.sims[1])["eligible"] is True
    devices = {d["id"]: d for d in relay_client.get("/v1/relay/devices", headers=p.headers()).get_json()["data"]}
    assert devices[p.device_id]["sims"] == [p.sims[0]] and devices[second]["sims"] == [p.sims[1]]


def test_live_mode_sims_are_only_matched_to_live_messages(kit, relay_client, deps, supply_settings):
    from shared.relay.availability import candidates
    _uid, h = kit.user()
    kit.provider(h)
    dev = kit.device(h)
    sim = kit.add_sim({**h, "Payloom-Mode": "live"}, dev, fresh_phone("smart"))
    kit.heartbeat(h, dev)
    assert sim["livemode"] is True
    now = deps.clock.now()
    assert candidates(deps.db, carrier="smart", livemode=False, now=now, settings=supply_settings) == []
    assert [c.sim_id for c in candidates(deps.db, carrier="smart", livemode=True, now=now,
                                         settings=supply_settings)] == [sim["id"]]


def test_khmer_for_a_phone_that_asks_for_it(kit, relay_client):
    p = kit.phone()
    km = p.headers(**{"Accept-Language": "km, en;q=0.5"})
    ack = relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat", json={}, headers=km).get_json()
    assert ack["message_km"] == "កំពុងដំណើរការ"
    r = relay_client.get("/v1/relay/sims/sim_doesnotexist00000000000", headers=km)
    assert r.status_code == 404 and r.get_json()["error"]["message_km"] == "រកមិនឃើញ។"
    assert "message_km" not in relay_client.get("/v1/relay/sims/sim_doesnotexist00000000000",
                                                headers=p.headers()).get_json()["error"]
    me = relay_client.get("/v1/relay/providers/me", headers=km).get_json()
    assert me["message_km"] and me["status"] == "active"


def test_khmer_on_errors_the_router_raises_before_any_handler(kit, relay_client):
    """401 without a token, an unknown route, 405, 415, a malformed body and a validation error
    never reach a handler; a Khmer-speaking phone still gets ``message_km`` on each."""
    from shared.relay.khmer import GENERIC, KM
    p = kit.phone()
    km = {"Accept-Language": "km"}
    authed = p.headers(**km)
    cases = {
        "unauthenticated": relay_client.get("/v1/relay/devices", headers=km),
        "unknown_route": relay_client.get("/v1/relay/nowhere", headers=authed),
        "method_not_allowed": relay_client.put("/v1/relay/devices", headers=authed),
        "unsupported_media_type": relay_client.post(
            f"/v1/relay/devices/{p.device_id}/heartbeat", data="battery=5",
            headers={**authed, "Content-Type": "text/plain"}),
        "invalid_json": relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat", data="{",
                                          headers={**authed, "Content-Type": "application/json"}),
        "parameter_invalid": relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat",
                                               json={"battery": "full"}, headers=authed),
    }
    for expected, r in cases.items():
        error = r.get_json()["error"]
        assert r.status_code in (400, 401, 404, 405, 415), (expected, r.status_code)
        assert error["code"] in (expected, "missing_credentials"), (expected, error)
        assert error["message_km"] == KM.get(error["code"], GENERIC) and error["message"], expected
        assert "Accept-Language" in r.headers.get("Vary", ""), expected
    plain = relay_client.get("/v1/relay/nowhere", headers=p.headers()).get_json()["error"]
    assert set(plain) == {"type", "code", "message", "param"}   # the envelope as usual


def test_device_and_sim_limits(kit, relay_client, configure_supply):
    configure_supply(max_devices_per_provider=1, max_sims_per_device=1)
    p = kit.phone()
    r = relay_client.post("/v1/relay/devices", json={"fingerprint": "another-phone-01", "push_token": "t1"},
                          headers=p.headers())
    assert r.status_code == 422 and err(r)["code"] == "device_limit_reached"
    number = fresh_phone("cellcard")
    relay_client.post("/v1/relay/sims", json={"phone": number, "device": p.device_id}, headers=p.headers())
    r = relay_client.post("/v1/relay/sims/verify", headers=p.headers(),
                          json={"phone": number, "code": kit.code_for(number), "device": p.device_id})
    assert r.status_code == 422 and err(r)["code"] == "sim_limit_reached"


def test_a_retired_phone_leaves_the_list_and_stays_bound_to_its_owner(kit, relay_client):
    p = kit.phone()
    fp = "phone-to-retire-01"
    second = kit.device(p.headers(), fingerprint=fp)
    r = relay_client.delete(f"/v1/relay/devices/{p.device_id}", headers=p.headers())
    assert r.status_code == 409 and err(r)["code"] == "device_has_sims"
    assert relay_client.delete(f"/v1/relay/devices/{second}", headers=p.headers()).status_code == 200
    listed = relay_client.get("/v1/relay/devices", headers=p.headers()).get_json()["data"]
    assert [d["id"] for d in listed] == [p.device_id]
    assert relay_client.get(f"/v1/relay/devices/{second}", headers=p.headers()).status_code == 404
    _uid, stranger = kit.user()
    kit.provider(stranger)
    r = relay_client.post("/v1/relay/devices", json={"fingerprint": fp, "push_token": "x-1"}, headers=stranger)
    assert r.status_code == 409 and err(r)["code"] == "device_in_use"
    back = relay_client.post("/v1/relay/devices", json={"fingerprint": fp, "push_token": "x-2"}, headers=p.headers())
    assert back.status_code == 200 and back.get_json()["id"] == second
    assert back.get_json()["push_token_status"] == "active"
    assert len(relay_client.get("/v1/relay/devices", headers=p.headers()).get_json()["data"]) == 2
