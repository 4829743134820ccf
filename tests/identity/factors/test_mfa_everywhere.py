"""A second factor is enforced on every sign-in method (issue 7, defect 7): with TOTP on, phone
OTP, SIWE and social sign-in answer an ``mfa_challenge`` and no tokens, exactly as password
login does; the challenge completes with the TOTP code."""
from __future__ import annotations

import datetime as dt

import pyotp
from eth_account import Account

from shared.platform.clock import FrozenClock
from tests.identity.helpers import assert_error, fresh_ip
from tests.identity.social.test_social import _user, authorize, callback, consent, oauth  # noqa: F401
from tests.identity.web3.test_wallets import link, message_for, nonce_for, sign

T0 = dt.datetime(2026, 7, 1, 9, 0, 0, tzinfo=dt.timezone.utc)


def enable_totp(deps, me, headers) -> str:
    r = me.post("/v1/me/mfa/totp", headers=headers)
    assert r.status_code == 200, r.get_json()
    secret = r.get_json()["secret"]
    r = me.post("/v1/me/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).at(deps.clock.now())},
                headers=headers)
    assert r.status_code == 200, r.get_json()
    deps.clock.advance(30)  # the confirming code's step is spent
    return secret


def assert_challenge_then_tokens(deps, auth, resp, secret, first_amr: str) -> dict:
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["object"] == "mfa_challenge" and "totp" in body["methods"]
    assert "access_token" not in body and "refresh_token" not in body and "user_id" not in body
    assert resp.headers["Cache-Control"] == "no-store"
    wrong = auth.post("/v1/auth/mfa/verify", json={"challenge_id": body["challenge_id"],
                                                   "code": "000000"})
    assert_error(wrong, 401, "invalid_mfa_code")
    r = auth.post("/v1/auth/mfa/verify",
                  json={"challenge_id": body["challenge_id"],
                        "code": pyotp.TOTP(secret).at(deps.clock.now())})
    assert r.status_code == 200, r.get_json()
    tokens = r.get_json()
    assert tokens["access_token"] and tokens["session"]["amr"][0] == first_amr
    assert "mfa" in tokens["session"]["amr"]
    return tokens


def test_phone_otp_sign_in_needs_the_second_factor(deps, auth, me, phone_user, sms_code):
    deps.clock = FrozenClock(T0)
    user_id, headers, phone, _ = phone_user()
    secret = enable_totp(deps, me, headers)
    ip = fresh_ip()
    deps.clock.advance(61)  # past the resend window
    assert auth.post("/v1/auth/phone/start", json={"phone": phone},
                     headers={"X-Forwarded-For": ip}).status_code == 202
    r = auth.post("/v1/auth/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                  headers={"X-Forwarded-For": ip})
    tokens = assert_challenge_then_tokens(deps, auth, r, secret, "sms")
    assert tokens["session"]["user_id"] == user_id


def test_siwe_sign_in_needs_the_second_factor(deps, auth, me, phone_user):
    deps.clock = FrozenClock(T0)
    user_id, headers, _, _ = phone_user()
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    secret = enable_totp(deps, me, headers)
    ip = fresh_ip()
    nonce = auth.post("/v1/auth/siwe/nonce", headers={"X-Forwarded-For": ip}).get_json()["nonce"]
    text = message_for(acct.address, nonce, deps.clock.now(), statement="Sign in to Payloom.")
    r = auth.post("/v1/auth/siwe/verify", json={"message": text, "signature": sign(acct, text)},
                  headers={"X-Forwarded-For": ip})
    tokens = assert_challenge_then_tokens(deps, auth, r, secret, "swk")
    assert tokens["session"]["user_id"] == user_id


def test_social_sign_in_needs_the_second_factor(deps, auth, me, oidc_server):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))  # id tokens carry real times
    person = _user("google", "mfa")
    start = authorize(auth, "google")
    oidc_server.queue_login("google", person)
    r = callback(auth, "google", consent(start["url"]))
    assert r.status_code == 201, r.get_json()
    headers = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
    user_id = r.get_json()["user_id"]
    secret = enable_totp(deps, me, headers)
    start = authorize(auth, "google")
    oidc_server.queue_login("google", person)
    r = callback(auth, "google", consent(start["url"]))
    tokens = assert_challenge_then_tokens(deps, auth, r, secret, "fed")
    assert tokens["session"]["user_id"] == user_id
