"""The blacklist (operators, service credential): providers, devices, SIMs and recipients."""
from __future__ import annotations

import pytest

from shared.relay import availability, blacklist
from shared.relay.availability import candidates
from tests.relay.supply_kit import err, fresh_phone


def _matched(deps, settings, carrier="smart"):
    return [c.sim_id for c in candidates(deps.db, carrier=carrier, livemode=False, now=deps.clock.now(),
                                         settings=settings)]


def test_blacklisting_a_provider_stops_its_sims_and_its_api_until_lifted(kit, relay_client, deps,
                                                                         service_headers, supply_settings):
    p = kit.phone(carriers=("smart", "metfone"))
    assert _matched(deps, supply_settings) == [p.sims[0]]
    r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                          json={"kind": "provider", "value": p.provider_id, "reason": "fake reports"})
    assert r.status_code == 201
    entry = r.get_json()
    again = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                              json={"kind": "provider", "value": p.provider_id, "reason": "again"})
    assert again.status_code == 200 and again.get_json()["id"] == entry["id"]
    assert _matched(deps, supply_settings) == [] and _matched(deps, supply_settings, "metfone") == []
    r = relay_client.post(f"/v1/relay/devices/{p.device_id}/heartbeat", json={}, headers=p.headers())
    assert r.status_code == 403 and err(r)["code"] == "provider_blacklisted"
    assert relay_client.get("/v1/relay/providers/me", headers=p.headers()).get_json()["status"] == "blacklisted"
    listed = relay_client.get("/v1/relay/admin/blacklist?kind=provider", headers=service_headers).get_json()
    assert [e["id"] for e in listed["data"]] == [entry["id"]]
    r = relay_client.delete(f"/v1/relay/admin/blacklist/{entry['id']}", headers=service_headers)
    assert r.status_code == 200
    assert _matched(deps, supply_settings) == [p.sims[0]]
    assert relay_client.get("/v1/relay/admin/blacklist", headers=service_headers).get_json()["data"] == []


def test_blacklisting_a_device_or_a_sim(kit, relay_client, deps, service_headers, supply_settings):
    a, b = kit.phone(), kit.phone()
    relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                      json={"kind": "device", "value": a.device_id, "reason": "rooted emulator"})
    relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                      json={"kind": "sim", "value": b.sims[0], "reason": "reported spam"})
    assert _matched(deps, supply_settings) == []
    assert availability.availability_ref(deps.db, a.sims[0]).get().get("block") == "bl_device"
    r = relay_client.post(f"/v1/relay/devices/{a.device_id}/heartbeat", json={}, headers=a.headers())
    assert r.status_code == 403 and err(r)["code"] == "device_blacklisted"
    assert relay_client.get(f"/v1/relay/sims/{b.sims[0]}", headers=b.headers()).get_json()["status"] == "blacklisted"


def test_recipients_blacklist_is_what_content_checks_read(kit, relay_client, deps, service_headers):
    number = fresh_phone("cellcard")
    assert not blacklist.is_blocked_recipient(deps.db, number)
    national = "0" + number[4:]
    r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                          json={"kind": "recipient", "value": national, "reason": "asked to stop"})
    assert r.status_code == 201 and r.get_json()["value"] != number and r.get_json()["value"].endswith(number[-3:])
    assert blacklist.is_blocked_recipient(deps.db, number)
    assert not blacklist.is_blocked_recipient(deps.db, fresh_phone("cellcard"))
    stored = [s.to_dict() for s in deps.db.collection("relay_blacklist").stream()]
    assert number not in str(stored)     # only a hash and a masked copy


def test_admin_routes_refuse_users_and_unknown_targets(kit, relay_client, service_headers):
    p = kit.phone()
    r = relay_client.post("/v1/relay/admin/blacklist", headers=p.headers(),
                          json={"kind": "provider", "value": p.provider_id, "reason": "x"})
    assert r.status_code == 403 and err(r)["code"] == "operator_required"
    for body in ({"kind": "provider", "value": "prv_doesnotexist0000000000", "reason": "x"},
                 {"kind": "sim", "value": "../../etc", "reason": "x"}):
        assert relay_client.post("/v1/relay/admin/blacklist", json=body, headers=service_headers).status_code == 404
    r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                          json={"kind": "recipient", "value": "not-a-phone", "reason": "x"})
    assert r.status_code == 400
    r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                          json={"kind": "user", "value": "x", "reason": "x"})
    assert r.status_code == 400
    for reason in ("fake\u0000reports", "\u202eeslaf", "\u200b"):
        r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers,
                              json={"kind": "provider", "value": p.provider_id, "reason": reason})
        assert r.status_code == 400 and err(r)["param"] == "reason"
    assert relay_client.delete("/v1/relay/admin/blacklist/bl_nothing", headers=service_headers).status_code == 404
    assert relay_client.get("/v1/relay/admin/suspicious", headers=service_headers).get_json()["data"] == []


def test_operators_are_staff_users_with_a_second_factor(kit, relay_client, deps, service_headers):
    """Staff listed as operators run the admin routes with an MFA session; the same user
    without one, any other user (a provider) and the provider's phone are refused, and each
    write records who made it."""
    from shared.identity.sessions.sessions import start_session
    from tests.support.identity import auth_headers, create_user_with_token

    op_id, pwd_token = create_user_with_token(deps)
    mfa = start_session(deps, user_id=op_id, amr=["pwd", "otp", "mfa"], ip="127.0.0.1", user_agent="pytest")
    deps.extras["relay.operators"] = [op_id]
    operator, password_only = auth_headers(mfa.access_token), auth_headers(pwd_token)
    p = kit.phone()
    body = {"kind": "provider", "value": p.provider_id, "reason": "fake reports"}

    for headers, code in ((password_only, "mfa_required"), (p.headers(), "operator_required")):
        for r in (relay_client.post("/v1/relay/admin/blacklist", headers=headers, json=body),
                  relay_client.get("/v1/relay/admin/blacklist", headers=headers),
                  relay_client.get("/v1/relay/admin/suspicious", headers=headers)):
            assert r.status_code == 403 and r.get_json()["error"]["code"] == code
    assert relay_client.get("/v1/relay/admin/blacklist", headers=service_headers).get_json()["data"] == []

    r = relay_client.post("/v1/relay/admin/blacklist", headers=operator, json=body)
    assert r.status_code == 201 and r.get_json()["created_by"] == op_id
    entry = r.get_json()
    assert relay_client.get("/v1/relay/providers/me", headers=p.headers()).get_json()["status"] == "blacklisted"
    assert [e["id"] for e in relay_client.get("/v1/relay/admin/blacklist", headers=operator)
            .get_json()["data"]] == [entry["id"]]
    assert relay_client.get("/v1/relay/admin/suspicious", headers=operator).status_code == 200
    r = relay_client.delete(f"/v1/relay/admin/blacklist/{entry['id']}", headers=p.headers())
    assert r.status_code == 403
    assert relay_client.delete(f"/v1/relay/admin/blacklist/{entry['id']}", headers=operator).status_code == 200
    assert relay_client.get("/v1/relay/providers/me", headers=p.headers()).get_json()["status"] == "active"
    # the service credential still passes, recorded as such
    r = relay_client.post("/v1/relay/admin/blacklist", headers=service_headers, json=body)
    assert r.status_code == 201 and r.get_json()["created_by"] == "service"


def test_the_operators_setting_is_a_list_of_user_ids(monkeypatch):
    from shared.relay import operators
    monkeypatch.delenv(operators.ENV_VAR, raising=False)
    assert operators._from_env() == frozenset()
    monkeypatch.setenv(operators.ENV_VAR, '["usr_a1", "usr_b2"]')
    assert operators._from_env() == {"usr_a1", "usr_b2"}
    for bad in ('{"usr_a1": 1}', '["prv_a1"]', '["usr_a"', "[1]"):
        monkeypatch.setenv(operators.ENV_VAR, bad)
        with pytest.raises(ValueError):
            operators._from_env()
