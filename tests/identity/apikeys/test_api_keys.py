"""API keys: creation, hashing, scopes, tenant isolation, roll, revoke, last_used."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.identity.apikeys import service as apikeys
from shared.identity.apikeys.scopes import KNOWN_SCOPES
from shared.platform.clock import FrozenClock
from tests.identity.helpers import assert_error, events_of
from shared.identity.opaque import token_hash


def key_headers(secret):
    return {"Authorization": f"Bearer {secret}"}


def create(me, user, **body):
    body = {"name": "server", "scopes": ["account:read", "api_keys:read"], **body}
    r = me.post("/v1/me/api_keys", json=body, headers=user.headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_create_shows_the_secret_once_and_stores_only_its_hash(deps, signup, me):
    alice = signup()
    key = create(me, alice)
    assert key["object"] == "api_key" and key["id"].startswith("key_")
    assert key["secret"].startswith("sk_test_") and len(key["secret"]) == 8 + 43
    assert key["prefix"] == key["secret"][:12] and key["livemode"] is False
    assert key["scopes"] == ["account:read", "api_keys:read"] and key["status"] == "active"
    doc = deps.db.collection("api_keys").document(key["id"]).get().to_dict()
    assert key["secret"] not in str(doc)
    assert doc["secret_hash"] == token_hash(key["secret"])
    again = me.get(f"/v1/me/api_keys/{key['id']}", headers=alice.headers).get_json()
    assert "secret" not in again and again["prefix"] == key["prefix"]
    listed = me.get("/v1/me/api_keys", headers=alice.headers).get_json()
    assert [k["id"] for k in listed["data"]] == [key["id"]] and "secret" not in listed["data"][0]
    [event] = events_of(deps, "api_key.created")
    assert event["tenant"] == alice.id and key["secret"] not in str(event)


def test_live_keys(signup, me):
    alice = signup()
    key = create(me, alice, livemode=True)
    assert key["secret"].startswith("sk_live_") and key["livemode"] is True
    r = me.get("/v1/me", headers=key_headers(key["secret"]))
    assert r.status_code == 200 and r.get_json()["id"] == alice.id
    # a live secret re-labelled as test does not exist
    forged = "sk_test_" + key["secret"][len("sk_live_"):]
    assert_error(me.get("/v1/me", headers=key_headers(forged)), 401, "invalid_api_key")


def test_key_authenticates_as_its_owner_with_its_scopes(deps, signup, me):
    alice = signup()
    key = create(me, alice)
    r = me.get("/v1/me", headers=key_headers(key["secret"]))
    assert r.status_code == 200 and r.get_json()["id"] == alice.id
    narrow = create(me, alice, scopes=["wallet:read"])
    assert_error(me.get("/v1/me", headers=key_headers(narrow["secret"])), 403, "missing_scope")
    assert_error(me.get("/v1/me/api_keys", headers=key_headers(narrow["secret"])), 403, "missing_scope")
    family = create(me, alice, scopes=["account:*"])
    assert me.get("/v1/me", headers=key_headers(family["secret"])).status_code == 200
    # keys cannot manage keys or sessions, whatever their scopes
    assert_error(me.post("/v1/me/api_keys", json={"scopes": ["account:read"]},
                         headers=key_headers(key["secret"])), 403, "principal_not_allowed")
    assert_error(me.get("/v1/me/sessions", headers=key_headers(key["secret"])), 403,
                 "principal_not_allowed")
    assert_error(me.patch("/v1/me", json={"display_name": "x"}, headers=key_headers(key["secret"])),
                 403, "principal_not_allowed")


def test_principal_fields(deps, signup, me):
    alice = signup()
    key = create(me, alice, livemode=True, scopes=["wallet:read", "payments:*"])
    p = apikeys.authenticate_api_key(deps, key["secret"])
    assert (p.kind, p.id, p.tenant_id, p.livemode) == ("api_key", key["id"], alice.id, True)
    assert p.scopes == frozenset({"wallet:read", "payments:*"})
    assert p.has_scope("payments:write") and not p.has_scope("wallet:write")


def test_another_tenants_keys_are_invisible(deps, signup, me):
    alice, bob = signup(), signup()
    a_key = create(me, alice)
    b_key = create(me, bob)
    for headers in (bob.headers, key_headers(b_key["secret"])):
        assert_error(me.get(f"/v1/me/api_keys/{a_key['id']}", headers=headers), 404, "resource_missing")
        listed = me.get("/v1/me/api_keys", headers=headers).get_json()
        assert [k["id"] for k in listed["data"]] == [b_key["id"]]
        assert_error(me.get(f"/v1/me/api_keys?starting_after={a_key['id']}", headers=headers), 400)
    assert_error(me.delete(f"/v1/me/api_keys/{a_key['id']}", headers=bob.headers), 404)
    assert_error(me.post(f"/v1/me/api_keys/{a_key['id']}/roll", json={}, headers=bob.headers), 404)
    # Bob's key sees Bob's profile, never Alice's
    assert me.get("/v1/me", headers=key_headers(b_key["secret"])).get_json()["id"] == bob.id
    # Alice's key still works: nothing Bob did touched it
    assert me.get("/v1/me", headers=key_headers(a_key["secret"])).status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"scopes": ["*"]}, "scopes"), ({"scopes": ["wallet:delete"]}, "scopes"),
    ({"scopes": []}, "scopes"), ({}, "scopes"), ({"scopes": "wallet:read"}, "scopes"),
    ({"scopes": ["wallet:read"], "expires_in_seconds": 5}, "expires_in_seconds"),
    ({"scopes": ["wallet:read"], "secret": "sk_test_mine"}, "secret"),
])
def test_invalid_key_requests_are_400(signup, me, body, param):
    alice = signup()
    err = assert_error(me.post("/v1/me/api_keys", json=body, headers=alice.headers), 400)
    assert err["error"]["param"] == param


def test_revoked_and_expired_keys_stop_working(deps, signup, me):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    alice = signup()
    key = create(me, alice)
    r = me.delete(f"/v1/me/api_keys/{key['id']}", headers=alice.headers)
    assert r.status_code == 200 and r.get_json()["status"] == "revoked"
    assert_error(me.get("/v1/me", headers=key_headers(key["secret"])), 401, "invalid_api_key")
    [event] = events_of(deps, "api_key.revoked")
    assert event["data"]["object"]["id"] == key["id"] and event["tenant"] == alice.id
    short = create(me, alice, expires_in_seconds=600)
    assert me.get("/v1/me", headers=key_headers(short["secret"])).status_code == 200
    deps.clock.advance(601)
    assert_error(me.get("/v1/me", headers=key_headers(short["secret"])), 401, "invalid_api_key")
    # malformed secrets are a clean 401 too
    for junk in ("sk_test_", "sk_test_" + "!" * 43, "sk_live_" + "a" * 500):
        assert_error(me.get("/v1/me", headers=key_headers(junk)), 401)


def test_roll_with_grace_keeps_the_old_key_for_a_while(deps, signup, me):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    alice = signup()
    old = create(me, alice)
    r = me.post(f"/v1/me/api_keys/{old['id']}/roll", json={"expires_in_seconds": 3600},
                headers=alice.headers)
    assert r.status_code == 200
    new = r.get_json()
    assert new["secret"] != old["secret"] and new["rolled_from"] == old["id"]
    assert new["scopes"] == old["scopes"] and new["name"] == old["name"]
    for secret in (old["secret"], new["secret"]):
        assert me.get("/v1/me", headers=key_headers(secret)).status_code == 200
    shown = me.get(f"/v1/me/api_keys/{old['id']}", headers=alice.headers).get_json()
    assert shown["rolled_to"] == new["id"] and shown["expires_at"] is not None
    deps.clock.advance(3601)
    # the user's access token has expired too by now; use the new key to look
    assert_error(me.get("/v1/me", headers=key_headers(old["secret"])), 401)
    assert me.get("/v1/me", headers=key_headers(new["secret"])).status_code == 200


def test_roll_without_grace_revokes_now(deps, signup, me):
    alice = signup()
    old = create(me, alice)
    new = me.post(f"/v1/me/api_keys/{old['id']}/roll", json={}, headers=alice.headers).get_json()
    assert_error(me.get("/v1/me", headers=key_headers(old["secret"])), 401)
    assert me.get("/v1/me", headers=key_headers(new["secret"])).status_code == 200
    assert_error(me.post(f"/v1/me/api_keys/{old['id']}/roll", json={}, headers=alice.headers), 400,
                 "api_key_not_active")
    assert_error(me.post(f"/v1/me/api_keys/{new['id']}/roll", json={"expires_in_seconds": 10 ** 7},
                         headers=alice.headers), 400)
    assert {e["data"]["object"]["id"] for e in events_of(deps, "api_key.revoked")} == {old["id"]}


def test_last_used_is_written_at_most_once_a_minute(deps, signup, me, monkeypatch):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    alice = signup()
    key = create(me, alice)
    writes = []
    from google.cloud.firestore_v1.document import DocumentReference
    real_update = DocumentReference.update

    def spy(self, data, *a, **kw):
        if self.parent.id == "api_keys":
            writes.append(data)
        return real_update(self, data, *a, **kw)
    monkeypatch.setattr(DocumentReference, "update", spy)
    for _ in range(5):
        assert me.get("/v1/me", headers=key_headers(key["secret"])).status_code == 200
        deps.clock.advance(10)
    assert len(writes) == 1
    deps.clock.advance(60)
    me.get("/v1/me", headers=key_headers(key["secret"]))
    assert len(writes) == 2
    shown = me.get(f"/v1/me/api_keys/{key['id']}", headers=key_headers(key["secret"])).get_json()
    assert shown["last_used"] is not None


def test_known_scopes_cover_the_platform_families():
    for scope in ("wallet:read", "wallet:write", "events:read", "platform:read", "platform:write",
                  "payments:*", "account:read", "api_keys:read"):
        assert scope in KNOWN_SCOPES
    assert "*" not in KNOWN_SCOPES


def test_a_replayed_creation_never_shows_nor_stores_the_secret(deps, signup, me):
    """Issue 7 defect 8: the secret is not in the idempotency record and not replayed."""
    alice = signup()
    headers = {**alice.headers, "Idempotency-Key": "create-key-1"}
    body = {"name": "server", "scopes": ["account:read"]}
    first = me.post("/v1/me/api_keys", json=body, headers=headers)
    assert first.status_code == 201 and first.get_json()["secret"].startswith("sk_test_")
    secret = first.get_json()["secret"]
    replay = me.post("/v1/me/api_keys", json=body, headers=headers)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert replay.get_json()["secret"] is None and secret not in replay.get_data(as_text=True)
    stored = [s.to_dict() for s in deps.db.collection("idempotency_keys").stream()]
    assert stored and all(secret not in str(doc) for doc in stored)
    assert len(list(deps.db.collection("api_keys").stream())) == 1  # one effect
    # the same holds for a roll
    headers = {**alice.headers, "Idempotency-Key": "roll-key-1"}
    url = f"/v1/me/api_keys/{first.get_json()['id']}/roll"
    rolled = me.post(url, json={}, headers=headers)
    assert rolled.status_code == 200 and rolled.get_json()["secret"].startswith("sk_test_")
    again = me.post(url, json={}, headers=headers)
    assert again.get_json()["secret"] is None and again.headers.get("Idempotent-Replayed") == "true"
    assert all(rolled.get_json()["secret"] not in str(s.to_dict())
               for s in deps.db.collection("idempotency_keys").stream())
