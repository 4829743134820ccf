"""Issue 7 item 8: ``/v1/me/phone`` (add and verify a phone on an email account) and SMS as a
second factor, over HTTP, codes read from the SMS simulator after notify delivers them."""
from __future__ import annotations

import datetime as dt

from shared.platform.clock import FrozenClock
from tests.identity.helpers import assert_error, fresh_ip
from tests.support.identity import DEFAULT_PASSWORD, auth_headers, create_user_with_token


def add_phone(me, headers, phone, sms_code):
    r = me.post("/v1/me/phone", json={"phone": phone}, headers=headers)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["phone"] == phone and "code" not in r.get_json()
    return me.post("/v1/me/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                   headers=headers)


def test_email_account_adds_and_verifies_a_phone_then_signs_in_with_it(deps, auth, me, sms_code,
                                                                     new_phone):
    user_id, token = create_user_with_token(deps)
    headers = auth_headers(token)
    phone = new_phone()
    r = add_phone(me, headers, phone, sms_code)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["phone"] == phone and r.get_json()["phone_verified"] is True
    assert me.get("/v1/me", headers=headers).get_json()["phone_verified"] is True
    # the number now signs in to this same account
    ip = fresh_ip()
    assert auth.post("/v1/auth/phone/start", json={"phone": phone},
                     headers={"X-Forwarded-For": ip}).status_code == 202
    r = auth.post("/v1/auth/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                  headers={"X-Forwarded-For": ip})
    assert r.status_code == 200 and r.get_json()["user_id"] == user_id


def test_a_phone_held_by_another_account_or_a_code_of_another_user(deps, me, sms_code, new_phone,
                                                                   phone_user):
    other_id, other_headers, taken, _ = phone_user()
    _, token = create_user_with_token(deps)
    headers = auth_headers(token)
    r = me.post("/v1/me/phone", json={"phone": taken}, headers=headers)
    assert r.status_code == 202  # the start never says who holds a number
    assert_error(me.post("/v1/me/phone/verify", json={"phone": taken, "code": sms_code(taken)},
                         headers=headers), 409, "phone_in_use")
    # a code texted for one user cannot verify the number for another
    phone = new_phone()
    assert me.post("/v1/me/phone", json={"phone": phone}, headers=other_headers).status_code == 202
    assert_error(me.post("/v1/me/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                         headers=headers), 400, "otp_invalid")
    assert_error(me.post("/v1/me/phone", json={"phone": "+15005550009"}, headers=headers),
                 400, "phone_country_not_allowed")
    assert_error(me.post("/v1/me/phone/verify", json={"phone": phone, "code": "12"},
                         headers=headers), 400)
    assert_error(me.post("/v1/me/phone", json={"phone": phone}), 401)


def test_sms_second_factor_enrol_challenge_and_verify(deps, auth, me, sms_code, new_phone):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    _, token = create_user_with_token(deps, username=f"smsmfa_{new_phone()[-6:]}")
    headers = auth_headers(token)
    username = me.get("/v1/me", headers=headers).get_json()["username"]
    assert_error(me.post("/v1/me/mfa/sms", headers=headers), 422, "phone_not_verified")
    phone = new_phone()
    assert add_phone(me, headers, phone, sms_code).status_code == 200
    assert me.post("/v1/me/mfa/sms", headers=headers).status_code == 202
    assert_error(me.post("/v1/me/mfa/sms/confirm", json={"code": "000000"}, headers=headers), 400)
    r = me.post("/v1/me/mfa/sms/confirm", json={"code": sms_code(phone)}, headers=headers)
    assert r.status_code == 200 and r.get_json()["sms_enabled"] is True
    assert me.get("/v1/me", headers=headers).get_json()["mfa_enabled"] is True
    assert me.get("/v1/me/mfa", headers=headers).get_json()["methods"] == ["sms"]

    deps.clock.advance(61)  # past the resend window of the enrolment code
    r = auth.post("/v1/auth/login", json={"username": username, "password": DEFAULT_PASSWORD},
                  headers={"X-Forwarded-For": fresh_ip()})
    challenge = r.get_json()
    assert r.status_code == 200 and challenge["object"] == "mfa_challenge", challenge
    assert challenge["methods"] == ["sms"] and "access_token" not in challenge
    r = auth.post("/v1/auth/mfa/sms", json={"challenge_id": challenge["challenge_id"]},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 202 and phone not in r.get_data(as_text=True)  # masked
    code = sms_code(phone)
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"],
                                                        "code": f"{(int(code) + 1) % 10**6:06d}",
                                                        "method": "sms"}), 401, "invalid_mfa_code")
    r = auth.post("/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"],
                                               "code": code, "method": "sms"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["session"]["amr"] == ["pwd", "sms", "mfa"]
    assert r.headers["Cache-Control"] == "no-store"
    # the code is single use, and the challenge is done
    assert_error(auth.post("/v1/auth/mfa/verify", json={"challenge_id": challenge["challenge_id"],
                                                        "code": code, "method": "sms"}),
                 401, "mfa_challenge_invalid")
    assert_error(auth.post("/v1/auth/mfa/sms", json={"challenge_id": "__main__"}), 400)


def test_a_lock_on_an_account_without_email_is_told_by_sms(deps, auth, phone_user, sms_server):
    from shared.identity.users import accounts, profile
    from shared.identity.config import identity_settings
    from shared.platform.uow import run_unit
    deps.extras["identity.settings"] = identity_settings(deps).model_copy(
        update={"lockout_after": 2, "login_attempts_per_minute": 100})
    user_id, _, phone, _ = phone_user()
    name = f"ph_{phone[-6:]}"
    run_unit(deps, lambda uow: profile.update_profile(uow, user_id, username=name))
    run_unit(deps, lambda uow: accounts.set_password_for(uow, user_id, "phone owner pass 1"))
    for _ in range(2):
        r = auth.post("/v1/auth/login", json={"username": name, "password": "wrong password 1"},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert_error(r, 401, "invalid_credentials")
    texts = [m["body"] for m in sms_server.inbox(phone)]
    assert any("Password sign-in" in t for t in texts), texts
    assert_error(auth.post("/v1/auth/login", json={"username": name,
                                                   "password": "phone owner pass 1"},
                           headers={"X-Forwarded-For": fresh_ip()}), 429, "login_locked")
