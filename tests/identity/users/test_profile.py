"""GET/PATCH /v1/me: profile fields, linked wallets and DIDs, username swap."""
from __future__ import annotations

import datetime as dt

from shared.identity.users import directory
from tests.identity.helpers import PASSWORD, assert_error, fresh_ip


def test_profile_includes_wallets_dids_and_kyc(deps, signup, me):
    alice, bob = signup(), signup()
    now = dt.datetime(2026, 3, 3, tzinfo=dt.timezone.utc)
    db = deps.db
    db.collection("user_wallets").add({"user_id": alice.id, "address": "0xAbC0000000000000000000000000000000000001",
                                       "chain_id": 31337, "did": "did:pkh:eip155:31337:0xabc", "created_at": now})
    db.collection("user_wallets").add({"user_id": bob.id, "address": "0xB0B", "chain_id": 1,
                                       "did": None, "created_at": now})
    db.collection("user_dids").add({"user_id": alice.id, "did": "did:key:z6Mk", "created_at": now})
    directory.user_ref(db, alice.id).update({"kyc_status": "verified", "kyc_tier": 2})
    p = me.get("/v1/me", headers=alice.headers).get_json()
    assert p["id"] == alice.id and p["object"] == "user"
    assert p["wallets"] == [{"address": "0xAbC0000000000000000000000000000000000001", "chain_id": 31337,
                             "did": "did:pkh:eip155:31337:0xabc", "created": "2026-03-03T00:00:00Z"}]
    assert p["dids"] == [{"did": "did:key:z6Mk", "created": "2026-03-03T00:00:00Z"}]
    assert p["kyc_status"] == "verified" and p["kyc_tier"] == 2
    assert set(p) >= {"username", "email", "email_verified", "phone", "phone_verified", "display_name",
                      "locale", "mfa_enabled", "created"}
    assert me.get("/v1/me", headers=bob.headers).get_json()["wallets"][0]["address"] == "0xB0B"


def test_patch_display_name_and_locale(signup, me):
    alice = signup()
    r = me.patch("/v1/me", json={"display_name": "  Alice A. ", "locale": "km"}, headers=alice.headers)
    assert r.status_code == 200
    assert (r.get_json()["display_name"], r.get_json()["locale"]) == ("Alice A.", "km")
    assert_error(me.patch("/v1/me", json={"locale": "fr"}, headers=alice.headers), 400)
    assert_error(me.patch("/v1/me", json={"display_name": ""}, headers=alice.headers), 400)
    assert_error(me.patch("/v1/me", json={"display_name": "a\x00b"}, headers=alice.headers), 400)
    assert_error(me.patch("/v1/me", json={"email": "x@y.co"}, headers=alice.headers), 400, "parameter_unknown")
    assert_error(me.patch("/v1/me", data=b"{", content_type="application/json", headers=alice.headers), 400)


def test_username_change_swaps_the_handle(deps, signup, me, auth):
    alice, bob = signup(username="alice_old"), signup()
    r = me.patch("/v1/me", json={"username": "Alice_New"}, headers=alice.headers)
    assert r.status_code == 200 and r.get_json()["username"] == "Alice_New"
    assert directory.find_user_id(deps.db, username="alice_new") == alice.id
    assert directory.find_user_id(deps.db, username="alice_old") is None
    # the new name signs in, the old one no longer does, and the old one is free for others
    ok = auth.post("/v1/auth/login", json={"username": "ALICE_new", "password": PASSWORD},
                   headers={"X-Forwarded-For": fresh_ip()})
    assert ok.status_code == 200
    assert_error(auth.post("/v1/auth/login", json={"username": "alice_old", "password": PASSWORD},
                           headers={"X-Forwarded-For": fresh_ip()}), 401)
    assert me.patch("/v1/me", json={"username": "alice_old"}, headers=bob.headers).status_code == 200
    # taken (case-insensitively) → 409; changing only the case of your own name is fine
    assert_error(me.patch("/v1/me", json={"username": "ALICE_OLD"}, headers=alice.headers), 409,
                 "username_taken")
    r = me.patch("/v1/me", json={"username": "alice_new"}, headers=alice.headers)
    assert r.status_code == 200 and r.get_json()["username"] == "alice_new"
    assert directory.find_user_id(deps.db, username="Alice_New") == alice.id
    assert_error(me.patch("/v1/me", json={"username": "no"}, headers=alice.headers), 400)


def test_user_token_from_another_project_user_is_not_a_profile(deps, me):
    from shared.identity.sessions.sessions import start_session
    ghost = start_session(deps, user_id="usr_ghost0000000000000001", amr=["pwd"], ip=None, user_agent=None)
    assert_error(me.get("/v1/me", headers={"Authorization": f"Bearer {ghost.access_token}"}), 404)
