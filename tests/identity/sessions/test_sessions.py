"""Sessions and refresh-token rotation, reuse detection and revocation."""
from __future__ import annotations

import concurrent.futures
import datetime as dt

import pytest

from shared.identity.sessions import sessions
from shared.identity.sessions.sessions import refresh_session as _refresh_in_unit
from shared.identity.resources import Session
from shared.identity.responses import TokenPair
from shared.identity.sessions.sessions import start_session, token_hash
from shared.platform.uow import run_unit
from shared.platform.clock import FrozenClock
from shared.platform.errors import AuthenticationError
from tests.identity.helpers import assert_error, events_of, fresh_ip

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}



def refresh_session(deps, token, **kw):
    """The refresh service in its own unit of work (as the router runs it)."""
    return run_unit(deps, lambda uow: _refresh_in_unit(uow, token, **kw))

def test_start_session_contract(deps):
    pair = start_session(deps, user_id="usr_contract00000000000001", amr=["otp"], ip="9.9.9.9",
                         user_agent="phone")
    assert isinstance(pair, TokenPair) and isinstance(pair.session, Session)
    out = pair.model_dump(mode="json")
    assert set(out) == {"access_token", "token_type", "expires_in", "refresh_token", "session"}
    assert out["token_type"] == "Bearer" and out["expires_in"] == 3600
    assert out["refresh_token"].startswith("rt_") and len(out["refresh_token"]) == 46
    s = out["session"]
    assert s["object"] == "session" and s["id"].startswith("ses_") and s["status"] == "active"
    assert s["user_id"] == "usr_contract00000000000001" and s["amr"] == ["otp"]
    assert s["ip"] == "9.9.9.9" and s["user_agent"] == "phone"
    # only the hash of the refresh token is stored
    stored = deps.db.collection("refresh_tokens").document(token_hash(out["refresh_token"])).get()
    assert stored.exists and out["refresh_token"] not in str(stored.to_dict())


def test_refresh_rotates_and_reuse_revokes_the_whole_family(deps, signup, auth, me):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    alice = signup()
    r = auth.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
    assert r.status_code == 200
    second = r.get_json()
    assert second["refresh_token"] != alice.refresh
    assert second["session"]["id"] == alice.session_id
    assert me.get("/v1/me", headers=bearer(second["access_token"])).status_code == 200
    r = auth.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    third = r.get_json()
    assert r.status_code == 200

    deps.clock.advance(11)  # past the grace window: a replay is theft
    assert_error(auth.post("/v1/auth/refresh", json={"refresh_token": alice.refresh}), 401,
                 "refresh_token_reused")
    # everything in the family is dead now: old and new refresh tokens, all access tokens
    for rt in (alice.refresh, second["refresh_token"], third["refresh_token"]):
        assert_error(auth.post("/v1/auth/refresh", json={"refresh_token": rt}), 401)
    for at in (alice.token, second["access_token"], third["access_token"]):
        assert_error(me.get("/v1/me", headers=bearer(at)), 401, "invalid_token")
    doc = deps.db.collection("sessions").document(alice.session_id).get().to_dict()
    assert doc["status"] == "revoked" and doc["revoked_reason"] == "refresh_token_reused"
    [event] = events_of(deps, "session.revoked")
    assert event["tenant"] == alice.id and event["data"]["reason"] == "refresh_token_reused"


def test_double_submit_within_grace_gets_the_same_new_token(deps):
    deps.clock = FrozenClock(T0)
    first = start_session(deps, user_id="usr_grace0000000000000001", amr=["pwd"], ip=None,
                          user_agent=None)
    a = refresh_session(deps, first.refresh_token)
    deps.clock.advance(5)
    b = refresh_session(deps, first.refresh_token)
    assert a.refresh_token == b.refresh_token
    assert a.access_token != b.access_token
    # the family is intact and moves on
    c = refresh_session(deps, b.refresh_token)
    assert c.session.status == "active"
    # once the successor was itself used, the old token is no longer a double-submit
    with pytest.raises(AuthenticationError) as exc:
        refresh_session(deps, first.refresh_token)
    assert exc.value.code == "refresh_token_reused"


def test_concurrent_double_submit_does_not_revoke(deps):
    first = start_session(deps, user_id="usr_race00000000000000001", amr=["pwd"], ip=None,
                          user_agent=None)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: refresh_session(deps, first.refresh_token), range(2)))
    assert results[0].refresh_token == results[1].refresh_token
    assert sessions.session_is_active(deps, first.session.id, "usr_race00000000000000001")


def test_refresh_tokens_expire_and_sessions_have_an_absolute_lifetime(deps, identity_settings):
    deps.clock = FrozenClock(T0)
    out = start_session(deps, user_id="usr_expiry000000000000001", amr=["pwd"], ip=None,
                        user_agent=None)
    deps.clock.advance(identity_settings.refresh_token_ttl_seconds + 1)
    with pytest.raises(AuthenticationError) as exc:
        refresh_session(deps, out.refresh_token)
    assert exc.value.code == "invalid_refresh_token"
    # keep refreshing within the idle timeout: the session still ends at its absolute expiry
    deps.clock.set(T0)
    rt = start_session(deps, user_id="usr_expiry000000000000001", amr=["pwd"], ip=None,
                       user_agent=None).refresh_token
    for _ in range(3):
        deps.clock.advance(29 * 86400)
        rt = refresh_session(deps, rt).refresh_token
    deps.clock.advance(4 * 86400)  # 91 days after start
    with pytest.raises(AuthenticationError):
        refresh_session(deps, rt)


@pytest.mark.parametrize("junk", ["", "rt_", "rt_" + "A" * 43, "x" * 500, "sk_test_abc"])
def test_garbage_refresh_tokens_are_401_not_500(auth, junk):
    r = auth.post("/v1/auth/refresh", json={"refresh_token": junk})
    assert r.status_code in (400, 401)
    assert_error(r, r.status_code)


def test_logout_revokes_the_current_session(deps, signup, auth, me):
    alice = signup()
    r = auth.post("/v1/auth/logout", headers=alice.headers)
    assert r.status_code == 204
    assert_error(me.get("/v1/me", headers=alice.headers), 401, "invalid_token")
    assert_error(auth.post("/v1/auth/refresh", json={"refresh_token": alice.refresh}), 401,
                 "invalid_refresh_token")
    [event] = events_of(deps, "session.revoked")
    assert event["data"]["reason"] == "logout"


def test_list_and_revoke_own_sessions(deps, signup, auth, me):
    alice = signup()
    r = auth.post("/v1/auth/login", json={"email": alice.email, "password": alice.password},
                  headers={"X-Forwarded-For": fresh_ip(), "User-Agent": "laptop"})
    laptop = r.get_json()
    listed = me.get("/v1/me/sessions", headers=alice.headers).get_json()
    assert listed["object"] == "list" and len(listed["data"]) == 2
    current = {s["id"]: s["current"] for s in listed["data"]}
    assert current == {alice.session_id: True, laptop["session"]["id"]: False}
    assert me.get("/v1/me/sessions?limit=1", headers=alice.headers).get_json()["has_more"] is True
    one = me.get(f"/v1/me/sessions/{laptop['session']['id']}", headers=alice.headers).get_json()
    assert one["user_agent"] == "laptop"

    r = me.delete(f"/v1/me/sessions/{laptop['session']['id']}", headers=alice.headers)
    assert r.status_code == 200 and r.get_json()["status"] == "revoked"
    assert_error(me.get("/v1/me", headers=bearer(laptop["access_token"])), 401)
    assert me.get("/v1/me", headers=alice.headers).status_code == 200
    assert [s["id"] for s in me.get("/v1/me/sessions", headers=alice.headers).get_json()["data"]] \
        == [alice.session_id]


def test_one_user_cannot_see_or_revoke_anothers_session(deps, signup, me):
    alice, mallory = signup(), signup()
    for method in (me.get, me.delete):
        assert_error(method(f"/v1/me/sessions/{alice.session_id}", headers=mallory.headers), 404,
                     "resource_missing")
    assert me.get("/v1/me", headers=alice.headers).status_code == 200
    ids = [s["id"] for s in me.get("/v1/me/sessions", headers=mallory.headers).get_json()["data"]]
    assert alice.session_id not in ids
    r = me.get(f"/v1/me/sessions?starting_after={alice.session_id}", headers=mallory.headers)
    assert_error(r, 400, "invalid_cursor")


def test_session_cache_is_invalidated_by_a_local_revocation(deps, configure):
    configure(session_cache_seconds=60)
    out = start_session(deps, user_id="usr_cache0000000000000001", amr=["pwd"], ip=None,
                        user_agent=None)
    sid = out.session.id
    assert sessions.session_is_active(deps, sid, "usr_cache0000000000000001")
    assert not sessions.session_is_active(deps, sid, "usr_someoneelse0000000001")
    run_unit(deps, lambda uow: sessions.revoke_session(uow, user_id="usr_cache0000000000000001",
                                                       session_id=sid))
    assert not sessions.session_is_active(deps, sid, "usr_cache0000000000000001")


def test_revoke_all_sessions_keeps_the_one_asked(deps):
    uid = "usr_many00000000000000001"
    outs = [start_session(deps, user_id=uid, amr=["pwd"], ip=None, user_agent=None) for _ in range(4)]
    keep = outs[0].session.id
    assert sessions.revoke_all_sessions(deps, uid, reason="test", except_session_id=keep) == 3
    assert [sessions.session_is_active(deps, o.session.id, uid) for o in outs] == \
        [True, False, False, False]
