"""TOTP enrolment, the MFA login challenge, backup codes, replay and attempt caps."""
from __future__ import annotations

import base64
import datetime as dt

import pyotp
import pytest

from shared.identity.factors import mfa
from shared.platform.clock import FrozenClock
from tests.identity.helpers import PASSWORD, assert_error, fresh_ip

T0 = dt.datetime(2026, 7, 1, 8, 0, 0, tzinfo=dt.timezone.utc)


def code_at(secret: str, when: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(when)


@pytest.fixture
def enrolled(deps, signup, me):
    """A signed-in user with TOTP on; returns (user, secret, backup_codes)."""
    deps.clock = FrozenClock(T0)
    user = signup()
    r = me.post("/v1/me/mfa/totp", headers=user.headers)
    assert r.status_code == 200
    enrolment = r.get_json()
    secret = enrolment["secret"]
    r = me.post("/v1/me/mfa/totp/confirm", json={"code": code_at(secret, deps.clock.now())},
                headers=user.headers)
    assert r.status_code == 200, r.get_json()
    deps.clock.advance(30)  # the confirming code's step is spent
    return user, secret, r.get_json()["backup_codes"]


def login(auth, user):
    return auth.post("/v1/auth/login", json={"username": user.username, "password": PASSWORD},
                     headers={"X-Forwarded-For": fresh_ip()})


def test_enrolment_returns_uri_and_png_qr(deps, signup, me):
    user = signup()
    r = me.post("/v1/me/mfa/totp", headers=user.headers)
    e = r.get_json()
    assert e["object"] == "totp_enrollment" and len(e["secret"]) == 32
    assert e["otpauth_uri"].startswith("otpauth://totp/Payloom:") and f"secret={e['secret']}" in e["otpauth_uri"]
    assert "issuer=Payloom" in e["otpauth_uri"]
    prefix = "data:image/png;base64,"
    assert e["qr_code"].startswith(prefix)
    png = base64.b64decode(e["qr_code"][len(prefix):])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" in png[-12:]
    # not enabled until confirmed
    assert me.get("/v1/me/mfa", headers=user.headers).get_json()["totp_enabled"] is False
    assert_error(me.post("/v1/me/mfa/totp/confirm", json={"code": "000000"}, headers=user.headers),
                 400, "invalid_mfa_code")
    assert_error(me.post("/v1/me/mfa/totp/confirm", json={"code": "abc"}, headers=user.headers), 400)


def test_restarting_enrolment_replaces_the_pending_secret(deps, signup, me):
    user = signup()
    first = me.post("/v1/me/mfa/totp", headers=user.headers)
    second = me.post("/v1/me/mfa/totp", headers=user.headers)
    assert first.status_code == second.status_code == 200, second.get_json()
    assert first.get_json()["secret"] != second.get_json()["secret"]
    old = first.get_json()["secret"]
    assert_error(me.post("/v1/me/mfa/totp/confirm", json={"code": pyotp.TOTP(old).now()},
                         headers=user.headers), 400, "invalid_mfa_code")


def test_confirm_enables_mfa_and_shows_ten_backup_codes_once(deps, enrolled, me):
    user, _, codes = enrolled
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(c) == 19 and c.count("-") == 3 for c in codes)
    status = me.get("/v1/me/mfa", headers=user.headers).get_json()
    assert status == {"object": "mfa_status", "totp_enabled": True, "sms_enabled": False,
                      "backup_codes_remaining": 10, "methods": ["totp", "backup_code"]}
    assert me.get("/v1/me", headers=user.headers).get_json()["mfa_enabled"] is True
    stored = deps.db.collection("user_mfa").document(user.id).get().to_dict()
    assert not any(c in str(stored) for c in codes)  # only hashes are stored
    assert_error(me.post("/v1/me/mfa/totp", headers=user.headers), 409, "mfa_already_enabled")


def test_login_with_mfa_returns_a_challenge_and_verify_completes_it(deps, enrolled, auth, me):
    user, secret, _ = enrolled
    r = login(auth, user)
    assert r.status_code == 200
    challenge = r.get_json()
    assert challenge["object"] == "mfa_challenge" and challenge["methods"] == ["totp", "backup_code"]
    assert "access_token" not in challenge and "refresh_token" not in challenge
    r = auth.post("/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"],
                                               "code": code_at(secret, deps.clock.now())})
    assert r.status_code == 200, r.get_json()
    tokens = r.get_json()
    assert tokens["session"]["amr"] == ["pwd", "otp", "mfa"]
    assert me.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    # a challenge is single use
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"],
                                                        "code": code_at(secret, deps.clock.now())}),
                 401, "mfa_challenge_invalid")


def test_a_totp_code_is_not_accepted_twice(deps, enrolled, auth):
    user, secret, _ = enrolled
    code = code_at(secret, deps.clock.now())
    first = login(auth, user).get_json()
    assert auth.post("/v1/auth/mfa/verify", json={"challenge_id": first["challenge_id"],
                                                  "code": code}).status_code == 200
    second = login(auth, user).get_json()
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": second["challenge_id"],
                                                        "code": code}), 401, "invalid_mfa_code")
    # nor an older one from the drift window
    older = code_at(secret, deps.clock.now() - dt.timedelta(seconds=30))
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": second["challenge_id"],
                                                        "code": older}), 401, "invalid_mfa_code")
    deps.clock.advance(30)
    assert auth.post("/v1/auth/mfa/verify", json={"challenge_id": second["challenge_id"],
                                                  "code": code_at(secret, deps.clock.now())}).status_code == 200


def test_backup_codes_work_once(deps, enrolled, auth, me):
    user, _, codes = enrolled
    c1 = login(auth, user).get_json()
    r = auth.post("/v1/auth/mfa/verify", json={"challenge_id": c1["challenge_id"],
                                               "code": codes[0].upper(), "method": "backup_code"})
    assert r.status_code == 200 and r.get_json()["session"]["amr"] == ["pwd", "mfa"]
    c2 = login(auth, user).get_json()
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": c2["challenge_id"],
                                                        "code": codes[0]}), 401, "invalid_mfa_code")
    assert auth.post("/v1/auth/mfa/verify", json={"challenge_id": c2["challenge_id"],
                                                  "code": codes[1].replace("-", "")}).status_code == 200
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    assert me.get("/v1/me/mfa", headers=headers).get_json()["backup_codes_remaining"] == 8


def test_totp_method_does_not_accept_a_backup_code(deps, enrolled, auth):
    user, _, codes = enrolled
    c = login(auth, user).get_json()
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": c["challenge_id"],
                                                        "code": codes[0], "method": "totp"}), 401)


def test_challenge_expires_after_five_minutes(deps, enrolled, auth):
    user, secret, _ = enrolled
    c = login(auth, user).get_json()
    assert c["expires_in"] == 300
    deps.clock.advance(301)
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": c["challenge_id"],
                                                        "code": code_at(secret, deps.clock.now())}),
                 401, "mfa_challenge_expired")


def test_challenge_attempts_are_capped(deps, enrolled, auth):
    user, secret, _ = enrolled
    c = login(auth, user).get_json()
    for _ in range(5):
        assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": c["challenge_id"],
                                                            "code": "000000"}), 401, "invalid_mfa_code")
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": c["challenge_id"],
                                                        "code": code_at(secret, deps.clock.now())}),
                 401, "mfa_challenge_invalid")


def test_unknown_challenge_and_bad_input(auth):
    unknown = "mfc_" + "A" * 32
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": unknown, "code": "123456"}),
                 401, "mfa_challenge_invalid")
    # Ids that Firestore cannot name (or that are not ours) are a 400, never a 500 (issue 7, #2).
    for bad in ("__main__", "a/b", "mfc_nope", "..", "mfc_" + "A" * 32 + "/x", "usr_" + "A" * 24):
        assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": bad, "code": "123456"}),
                     400, "parameter_invalid")
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": unknown}), 400,
                 "parameter_missing")
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": unknown, "code": "1",
                                                        "method": "fax"}), 400)


def test_disable_and_regenerate_need_a_valid_code(deps, enrolled, me, auth):
    user, secret, codes = enrolled
    assert_error(me.post("/v1/me/mfa/totp/disable", json={"code": "123456"}, headers=user.headers),
                 400, "invalid_mfa_code")
    r = me.post("/v1/me/mfa/backup_codes", json={"code": codes[0]}, headers=user.headers)
    assert r.status_code == 200
    new_codes = r.get_json()["backup_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    # old codes are gone
    assert_error(me.post("/v1/me/mfa/totp/disable", json={"code": codes[1]}, headers=user.headers), 400)
    r = me.post("/v1/me/mfa/totp/disable", json={"code": code_at(secret, deps.clock.now())},
                headers=user.headers)
    assert r.status_code == 200 and r.get_json()["totp_enabled"] is False
    assert me.get("/v1/me", headers=user.headers).get_json()["mfa_enabled"] is False
    assert "access_token" in login(auth, user).get_json()
    assert_error(me.post("/v1/me/mfa/totp/disable", json={"code": "123456"}, headers=user.headers),
                 422, "mfa_not_enabled")


def test_match_totp_window(deps):
    secret = pyotp.random_base32()
    now = T0
    step = int(now.timestamp()) // 30
    assert mfa.match_totp(secret, code_at(secret, now), now, None) == step
    assert mfa.match_totp(secret, code_at(secret, now - dt.timedelta(seconds=30)), now, None) == step - 1
    assert mfa.match_totp(secret, code_at(secret, now + dt.timedelta(seconds=30)), now, None) == step + 1
    assert mfa.match_totp(secret, code_at(secret, now - dt.timedelta(seconds=60)), now, None) is None
    assert mfa.match_totp(secret, code_at(secret, now), now, step) is None
    assert mfa.match_totp(secret, "12345", now, None) is None
