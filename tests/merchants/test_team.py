"""Invitations (token, verified email, expiry, reuse, revoke, concurrency), roles, last owner."""
from __future__ import annotations

import datetime as dt
import re
import threading

from google.cloud import firestore

from shared.identity.opaque import token_hash
from tests.merchants.conftest import assert_error, create_merchant, join

TOKEN_RE = re.compile(r"Token: (minv_[A-Za-z0-9_-]{43})\b")


def invite(owner, mid, email, role="developer"):
    r = owner.post(f"/{mid}/invitations", json={"email": email, "role": role})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def events(deps, type_):
    q = deps.db.collection("events").where(filter=firestore.FieldFilter("type", "==", type_))
    return [s.to_dict() for s in q.stream()]


def test_invitation_by_emailed_token(deps, user, inbox):
    owner, bob = user(), user(verified=False)
    mid = create_merchant(owner)["id"]
    inv = invite(owner, mid, "Someone.Else@Example.COM", "support")
    assert inv["status"] == "pending" and inv["email"] == "someone.else@example.com"
    [mail] = inbox("someone.else@example.com")
    token = TOKEN_RE.search(mail["text"]).group(1)
    doc = deps.db.collection("merchant_invitations").document(inv["id"]).get().to_dict()
    assert doc["token_hash"] == token_hash(token) and token not in str(doc)
    assert doc["expires_at"] - doc["created_at"] == dt.timedelta(days=7)
    assert_error(bob.post(f"/invitations/{inv['id']}/accept", json={"token": token[:-2] + "xx"}),
                 403, "invalid_token")
    r = bob.post(f"/invitations/{inv['id']}/accept", json={"token": token})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["role"] == "support" and r.get_json()["user"] == bob.id
    # reuse: by the same person or anyone else
    assert_error(bob.post(f"/invitations/{inv['id']}/accept", json={"token": token}), 409, "invitation_used")
    assert_error(user().post(f"/invitations/{inv['id']}/accept", json={"token": token}), 409, "invitation_used")
    assert [m["id"] for m in bob.get("").get_json()["data"]] == [mid]
    added = [e for e in events(deps, "merchant.member_added") if e["data"]["object"]["user"] == bob.id]
    assert {e["livemode"] for e in added} == {False, True} and {e["tenant"] for e in added} == {mid}


def test_invitation_by_verified_email_only(user):
    owner = user()
    mid = create_merchant(owner)["id"]
    carol = user(verified=False)
    inv = invite(owner, mid, carol.email)
    assert_error(carol.post(f"/invitations/{inv['id']}/accept", json={}), 403, "email_mismatch")
    assert carol.get("/invitations").get_json()["data"] == []  # unverified proves nothing
    dave = user()  # verified, but another address
    assert_error(dave.post(f"/invitations/{inv['id']}/accept", json={}), 403, "email_mismatch")
    carol_verified = user()
    inv2 = invite(owner, mid, carol_verified.email, "viewer")
    pending = carol_verified.get("/invitations").get_json()["data"]
    assert [i["id"] for i in pending] == [inv2["id"]] and pending[0]["merchant_name"] == "Angkor Coffee"
    r = carol_verified.post(f"/invitations/{inv2['id']}/accept", json={})
    assert r.status_code == 200 and r.get_json()["role"] == "viewer"
    assert carol_verified.get("/invitations").get_json()["data"] == []
    assert_error(user().post("/invitations/inv_" + "z" * 24 + "/accept", json={}), 404)


def test_expired_and_revoked_invitations(deps, user):
    owner, erin = user(), user()
    mid = create_merchant(owner)["id"]
    inv = invite(owner, mid, erin.email)
    deps.db.collection("merchant_invitations").document(inv["id"]).update(
        {"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)})
    assert_error(erin.post(f"/invitations/{inv['id']}/accept", json={}), 409, "invitation_expired")
    listed = owner.get(f"/{mid}/invitations").get_json()["data"]
    assert [i["status"] for i in listed] == ["expired"]
    inv2 = invite(owner, mid, erin.email)
    r = owner.delete(f"/{mid}/invitations/{inv2['id']}")
    assert r.status_code == 200 and r.get_json()["status"] == "revoked"
    assert_error(erin.post(f"/invitations/{inv2['id']}/accept", json={}), 409, "invitation_revoked")
    assert_error(erin.get(f"/{mid}"), 403, "not_a_member")
    # another merchant cannot revoke this merchant's invitation (404, not 403: nothing leaks)
    other = create_merchant(erin)["id"]
    inv3 = invite(owner, mid, "z@example.org")
    assert_error(erin.delete(f"/{other}/invitations/{inv3['id']}"), 404)


def test_invitation_rules(user):
    owner, admin, member = user(), user(), user()
    mid = create_merchant(owner)["id"]
    join(owner, mid, admin, "admin")
    assert_error(admin.post(f"/{mid}/invitations", json={"email": "a@example.org", "role": "owner"}),
                 403, "role_not_grantable")
    invite(admin, mid, "b@example.org", "admin")
    join(owner, mid, member, "viewer")
    assert_error(owner.post(f"/{mid}/invitations", json={"email": member.email, "role": "viewer"}),
                 409, "already_member")
    for bad in ({"email": "not-an-email", "role": "viewer"}, {"email": "a@example.org", "role": "god"},
                {"email": "a@example.org"}, {"email": "a@example.org", "role": "viewer", "x": 1}):
        assert_error(owner.post(f"/{mid}/invitations", json=bad), 400)


def _race(calls):
    results, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        results[i] = calls[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_invitation_accepted_concurrently_once(deps, user, inbox):
    owner = user()
    mid = create_merchant(owner)["id"]
    inv = invite(owner, mid, "shared@example.org", "viewer")
    token = TOKEN_RE.search(inbox("shared@example.org")[0]["text"]).group(1)
    takers = [user() for _ in range(4)]
    results = _race([lambda u=u: u.post(f"/invitations/{inv['id']}/accept", json={"token": token})
                     for u in takers])
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409, 409, 409], [r.get_json() for r in results]
    members = owner.get(f"/{mid}/members").get_json()["data"]
    assert len(members) == 2
    merchant = deps.db.collection("merchants").document(mid).get().to_dict()
    assert merchant["member_count"] == 2


def test_two_invitations_for_one_person_join_once(deps, user):
    owner, frank = user(), user()
    mid = create_merchant(owner)["id"]
    a, b = invite(owner, mid, frank.email, "viewer"), invite(owner, mid, frank.email, "developer")
    results = _race([lambda i=i: frank.post(f"/invitations/{i['id']}/accept", json={}) for i in (a, b)])
    assert sorted(r.status_code for r in results) == [200, 409]
    assert [r.get_json()["error"]["code"] for r in results if r.status_code == 409] == ["already_member"]
    assert deps.db.collection("merchants").document(mid).get().get("member_count") == 2


def test_roles_change_and_the_last_owner_stays(user):
    owner, admin, dev = user(), user(), user()
    mid = create_merchant(owner)["id"]
    join(owner, mid, admin, "admin")
    join(owner, mid, dev, "developer")
    assert_error(owner.delete(f"/{mid}/members/{owner.id}"), 409, "last_owner")
    assert_error(owner.post(f"/{mid}/members/{owner.id}", json={"role": "admin"}), 409, "last_owner")
    assert_error(admin.post(f"/{mid}/members/{owner.id}", json={"role": "viewer"}), 403, "insufficient_role")
    assert_error(admin.delete(f"/{mid}/members/{owner.id}"), 403, "insufficient_role")
    assert_error(admin.post(f"/{mid}/members/{dev.id}", json={"role": "owner"}), 403, "role_not_grantable")
    assert_error(admin.post(f"/{mid}/members/{admin.id}", json={"role": "owner"}), 403, "role_not_grantable")
    r = admin.post(f"/{mid}/members/{dev.id}", json={"role": "admin"})
    assert r.status_code == 200 and r.get_json()["role"] == "admin"
    assert_error(owner.post(f"/{mid}/members/usr_{'q' * 24}", json={"role": "admin"}), 404)
    # a second owner lets the first step down
    assert owner.post(f"/{mid}/members/{admin.id}", json={"role": "owner"}).status_code == 200
    assert owner.post(f"/{mid}/members/{owner.id}", json={"role": "viewer"}).status_code == 200
    assert_error(owner.get(f"/{mid}/settings"), 403, "insufficient_role")  # demoted at once
    assert_error(admin.delete(f"/{mid}/members/{admin.id}"), 409, "last_owner")
    # anyone may leave; a removed member loses access
    r = dev.delete(f"/{mid}/members/{dev.id}")
    assert r.status_code == 200 and r.get_json()["deleted"] is True
    assert_error(dev.get(f"/{mid}"), 403, "not_a_member")
    assert [m["id"] for m in dev.get("").get_json()["data"]] == []


def test_two_owners_demoting_each_other_at_once_leave_one_owner(deps, user):
    a, b = user(), user()
    mid = create_merchant(a)["id"]
    join(a, mid, b, "owner")
    for _ in range(3):
        results = _race([lambda: a.post(f"/{mid}/members/{b.id}", json={"role": "admin"}),
                         lambda: b.post(f"/{mid}/members/{a.id}", json={"role": "admin"})])
        codes = sorted(r.status_code for r in results)
        owners = deps.db.collection("merchants").document(mid).get().get("owners")
        roles = {s.get("user_id"): s.get("role") for s in deps.db.collection("merchant_members")
                 .where(filter=firestore.FieldFilter("merchant_id", "==", mid)).stream()}
        assert len(owners) == 1 and [u for u, r in roles.items() if r == "owner"] == owners, (codes, roles)
        assert codes in ([200, 403], [200, 409]), [r.get_json() for r in results]
        # restore two owners for the next round
        survivor = a if owners == [a.id] else b
        other = b if survivor is a else a
        assert survivor.post(f"/{mid}/members/{other.id}", json={"role": "owner"}).status_code == 200
