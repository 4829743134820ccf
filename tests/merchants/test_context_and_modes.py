"""The merchant context header, test/live separation, per-project keys, settings."""
from __future__ import annotations

from bip_utils import Bip32Secp256k1
from google.cloud import firestore

from shared.identity.apikeys import service as apikeys
from shared.merchants.settings import get_settings
from shared.platform.uow import run_unit
from tests.merchants.conftest import assert_error, create_merchant, join, key_caller

LIVE, TEST = {"Payloom-Mode": "live"}, {"Payloom-Mode": "test"}


def project(caller, mid, mode=None, name="shop"):
    r = caller.post(f"/{mid}/projects", json={"name": name}, **(mode or {}))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def make_key(caller, mid, prj, mode=None, **body):
    body = {"scopes": ["account:read", "api_keys:read"], **body}
    r = caller.post(f"/{mid}/projects/{prj}/api_keys", json=body, **(mode or {}))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_header_context_and_tampering(user, client):
    owner, viewer, stranger = user(), user(), user()
    mid = create_merchant(owner)["id"]
    join(owner, mid, viewer, "viewer")
    h = {"Payloom-Merchant": mid}
    r = viewer.get(f"/{mid}", **h)
    assert r.status_code == 200 and r.get_json()["role"] == "viewer"
    unknown = "mch_" + "Z" * 24
    # a merchant that does not exist and one the caller is not in: the same answer
    a, b = stranger.get(f"/{mid}", **h), stranger.get(f"/{unknown}", **{"Payloom-Merchant": unknown})
    assert_error(a, 403, "not_a_member") and assert_error(b, 403, "not_a_member")
    assert a.get_json() == b.get_json()
    for bad in ("mch_", "usr_" + "a" * 24, "mch_../../x", "mch_" + "a" * 300, " ", "mch_a b"):
        assert_error(viewer.get(f"/{mid}", **{"Payloom-Merchant": bad}), 400, "invalid_merchant")
    for bad in ("LIVE", "production", "", "live;test"):
        assert_error(viewer.get(f"/{mid}", **{"Payloom-Mode": bad}), 400, "invalid_mode")
    # the header names another merchant than the path
    other = create_merchant(viewer)["id"]
    assert_error(viewer.get(f"/{mid}", **{"Payloom-Merchant": other}), 403, "merchant_mismatch")
    # even on a route that needs no merchant, a header naming a stranger's merchant is refused
    assert_error(stranger.get("", **h), 403, "not_a_member")
    # a key can never name another merchant
    prj = project(owner, mid)["id"]
    key = key_caller(client, make_key(owner, mid, prj)["secret"])
    assert key.get(f"/{mid}", **h).status_code == 200
    assert_error(key.get(f"/{mid}", **{"Payloom-Merchant": other}), 403, "merchant_mismatch")
    assert_error(key.get(f"/{other}"), 403, "not_a_member")
    assert_error(key.get(f"/{mid}", **LIVE), 400, "mode_mismatch")


def test_test_and_live_never_see_each_other(user, client, deps):
    owner = user()
    mid = create_merchant(owner)["id"]
    test_prj, live_prj = project(owner, mid, name="test shop"), project(owner, mid, LIVE, "live shop")
    assert test_prj["livemode"] is False and live_prj["livemode"] is True
    test_key = make_key(owner, mid, test_prj["id"])
    live_key = make_key(owner, mid, live_prj["id"], LIVE)
    assert test_key["secret"].startswith("sk_test_") and live_key["secret"].startswith("sk_live_")
    assert live_key["livemode"] is True and live_key["project"] == live_prj["id"]
    tk, lk = key_caller(client, test_key["secret"]), key_caller(client, live_key["secret"])
    assert [p["id"] for p in tk.get(f"/{mid}/projects").get_json()["data"]] == [test_prj["id"]]
    assert [p["id"] for p in lk.get(f"/{mid}/projects").get_json()["data"]] == [live_prj["id"]]
    assert_error(tk.get(f"/{mid}/projects/{live_prj['id']}"), 404)
    assert_error(lk.get(f"/{mid}/projects/{test_prj['id']}"), 404)
    assert [k["id"] for k in tk.get(f"/{mid}/api_keys").get_json()["data"]] == [test_key["id"]]
    assert [k["id"] for k in lk.get(f"/{mid}/api_keys").get_json()["data"]] == [live_key["id"]]
    assert_error(tk.get(f"/{mid}/api_keys/{live_key['id']}"), 404)
    # users: the mode header decides; a live project does not exist in test mode
    assert_error(owner.get(f"/{mid}/projects/{live_prj['id']}"), 404)
    assert owner.get(f"/{mid}/projects/{live_prj['id']}", **LIVE).status_code == 200
    assert_error(owner.post(f"/{mid}/projects/{live_prj['id']}/api_keys",
                            json={"scopes": ["payments:read"]}), 404)
    assert_error(owner.post(f"/{mid}/projects/{test_prj['id']}/api_keys",
                            json={"scopes": ["payments:read"], "livemode": True}), 400, "livemode_mismatch")
    assert_error(owner.post(f"/{mid}/api_keys/{live_key['id']}/roll", json={}), 404)
    assert_error(owner.delete(f"/{mid}/api_keys/{live_key['id']}", **TEST), 404)
    assert owner.get(f"/{mid}/api_keys/{live_key['id']}", **LIVE).get_json()["status"] == "active"


def test_per_project_keys_carry_the_project(user, client, deps):
    owner = user()
    mid = create_merchant(owner)["id"]
    a, b = project(owner, mid, name="a")["id"], project(owner, mid, name="b")["id"]
    ka, kb = make_key(owner, mid, a), make_key(owner, mid, b, scopes=["payments:write"])
    principal = apikeys.authenticate_api_key(deps, ka["secret"])
    assert (principal.tenant_id, principal.project_id, principal.livemode) == (mid, a, False)
    doc = deps.db.collection("api_keys").document(ka["id"]).get().to_dict()
    assert doc["owner_id"] == mid and doc["project_id"] == a and ka["secret"] not in str(doc)
    caller = key_caller(client, ka["secret"])
    listed = caller.get(f"/{mid}/api_keys?project={b}").get_json()["data"]
    assert [k["id"] for k in listed] == [kb["id"]] and listed[0]["project"] == b
    assert "secret" not in listed[0]
    # the secret is shown once: an Idempotency-Key replay does not show it again
    body = {"scopes": ["payments:read"], "name": "ci"}
    first = owner.post(f"/{mid}/projects/{a}/api_keys", json=body, **{"Idempotency-Key": "k-1"})
    again = owner.post(f"/{mid}/projects/{a}/api_keys", json=body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["secret"] and again.get_json()["secret"] is None
    assert again.get_json()["id"] == first.get_json()["id"]
    # rolling keeps the project; deleting the project revokes its keys
    rolled = owner.post(f"/{mid}/api_keys/{ka['id']}/roll", json={}).get_json()
    assert rolled["project"] == a and rolled["secret"] != ka["secret"]
    assert apikeys.authenticate_api_key(deps, rolled["secret"]).project_id == a
    assert_error(caller.get(f"/{mid}"), 401)
    r = owner.delete(f"/{mid}/projects/{a}")
    assert r.status_code == 200 and r.get_json()["revoked_api_keys"] == 2
    assert_error(key_caller(client, rolled["secret"]).get(f"/{mid}"), 401)
    assert_error(owner.get(f"/{mid}/projects/{a}"), 404)
    assert_error(owner.post(f"/{mid}/projects/{a}/api_keys", json=body), 404)
    # bad key bodies
    for bad in ({"scopes": []}, {"scopes": ["root:*"]}, {"scopes": ["payments:read"], "expires_in_seconds": 1}):
        assert_error(owner.post(f"/{mid}/projects/{b}/api_keys", json=bad), 400)


def _xpub():
    return Bip32Secp256k1.FromSeed(bytes(range(32))).DerivePath("m/44'/60'/0'").PublicKey().ToExtended()


def test_settings(user, deps, client):
    owner, admin = user(), user()
    m = create_merchant(owner, settlement_asset="USDC")
    mid = m["id"]
    join(owner, mid, admin, "admin")
    s = admin.get(f"/{mid}/settings").get_json()
    assert s["settlement_asset"] == "USDC" and s["intent_expiry_seconds"] == 900
    assert s["speed_policy"] == "medium" and s["accepted_methods"] == ["wallet", "card", "crypto"]
    body = {"accepted_methods": ["crypto", "card"], "accepted_assets": ["USDC", "ETH", "USD"],
            "speed_policy": "low", "payment_tolerance_bps": 100, "intent_expiry_seconds": 3600,
            "late_payment_window_seconds": 7200, "xpub": _xpub(),
            "fee_schedule": {"card": {"percent_bps": 290, "fixed": {"USD": 30}},
                             "crypto": {"percent_bps": 100}},
            "settlement_asset": "USD"}
    r = admin.post(f"/{mid}/settings", json=body)
    assert r.status_code == 200, r.get_json()
    got = get_settings(deps.db, mid)
    assert got.required_confirmations == 6 and got.fee_for("card").fixed == {"USD": 30}
    assert got.settlement_asset == "USD" and got.xpub == body["xpub"]
    assert run_unit(deps, lambda uow: get_settings(uow, mid)) == got
    assert owner.get(f"/{mid}").get_json()["settlement_asset"] == "USD"
    updated = [e for e in deps.db.collection("events").where(
        filter=firestore.FieldFilter("type", "==", "merchant.updated")).stream()]
    assert len(updated) == 2  # once per mode
    # partial update keeps the rest; null resets to the default
    r = admin.post(f"/{mid}/settings", json={"speed_policy": "high", "xpub": None})
    assert r.get_json()["accepted_assets"] == ["USDC", "ETH", "USD"] and r.get_json()["xpub"] is None
    for bad, code in (({"xpub": "xprv" + _xpub()[4:]}, "private_key_refused"),
                      ({"xpub": _xpub()[:-1] + "1"}, "invalid_xpub"),
                      ({"fee_schedule": {"wallet": {"percent_bps": 10}}}, "parameter_invalid"),
                      ({"fee_schedule": {"card": {"fixed": {"KHR": 100}}}}, "parameter_invalid"),
                      ({"payment_tolerance_bps": 1001}, None), ({"intent_expiry_seconds": 30}, None),
                      ({"settlement_asset": "DOGE"}, None), ({}, None), ({"nope": 1}, None)):
        assert_error(admin.post(f"/{mid}/settings", json=bad), 400, code)
    try:
        get_settings(deps.db, "mch_" + "n" * 24)
        raise AssertionError("no LookupError")
    except LookupError:
        pass
    # a merchant key reads settings (account:read); never writes them
    prj = project(owner, mid)["id"]
    key = key_caller(client, make_key(owner, mid, prj)["secret"])
    assert key.get(f"/{mid}/settings").get_json()["speed_policy"] == "high"
    assert_error(key.post(f"/{mid}/settings", json={"speed_policy": "low"}), 403, "principal_not_allowed")


def test_merchant_creation_input(user):
    alice = user()
    for bad in ({"business_name": "x", "country": "XX", "settlement_asset": "USD"},
                {"business_name": "x", "country": "KH", "settlement_asset": "BTC"},
                {"business_name": "", "country": "KH", "settlement_asset": "USD"},
                {"business_name": "x", "country": "KHM", "settlement_asset": "USD"},
                {"business_name": "Shop\u202e", "country": "KH", "settlement_asset": "USD"},
                {"business_name": "Shop\x07", "country": "KH", "settlement_asset": "USD"},
                {"business_name": "\u200b", "country": "KH", "settlement_asset": "USD"},
                {"country": "KH", "settlement_asset": "USD"}):
        assert_error(alice.post("", json=bad), 400)
    m = create_merchant(alice, country="kh")
    assert m["country"] == "KH" and m["created_by"] == alice.id and m["status"] == "active"
    r = alice.post(f"/{m['id']}", json={"business_name": "Angkor Tea"})
    assert r.status_code == 200 and r.get_json()["business_name"] == "Angkor Tea"
    assert_error(alice.post(f"/{m['id']}", json={"country": "QQ"}), 400, "invalid_country")
