"""Email/password accounts over HTTP: register, login, enumeration, verification, reset."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.identity import config as identity_config
from shared.identity.users import passwords
from shared.identity.users.credentials import credentials_ref
from shared.identity.config import IdentitySettings
from shared.platform.clock import FrozenClock
from tests.identity.helpers import PASSWORD, assert_error, events_of, fresh_ip, token_from


def body(email="bob@example.com", username="bob", password=PASSWORD, **extra):
    return {"email": email, "username": username, "password": password, **extra}


def test_production_argon2_parameters_are_the_documented_ones(monkeypatch):
    for var in ("TIME_COST", "MEMORY_COST_KIB", "PARALLELISM"):
        monkeypatch.delenv(f"PAYLOOM_IDENTITY_ARGON2_{var}", raising=False)
    s = IdentitySettings()
    # OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB (19456 KiB), t=2, p=1 (ADR 0010).
    assert (s.argon2_time_cost, s.argon2_memory_cost_kib, s.argon2_parallelism) == (2, 19456, 1)
    assert (identity_config.ARGON2_TIME_COST, identity_config.ARGON2_MEMORY_COST_KIB) == (2, 19456)
    h = passwords.hasher_for(s)
    assert (h.time_cost, h.memory_cost, h.parallelism, h.hash_len, h.salt_len) == (2, 19456, 1, 32, 16)
    assert h.type.name == "ID"


def test_register_creates_user_handles_credentials_event_and_email(deps, auth, inbox):
    r = auth.post("/v1/auth/register", json=body(email="  Bob.Smith@EXAMPLE.Com ", username="Bob_S",
                                                   display_name="Bob", locale="km"))
    assert r.status_code == 201, r.get_json()
    user = r.get_json()
    assert user["object"] == "user" and user["id"].startswith("usr_")
    assert user["email"] == "Bob.Smith@example.com" and user["email_verified"] is False
    assert user["username"] == "Bob_S" and user["locale"] == "km" and user["display_name"] == "Bob"
    assert user["kyc_status"] == "none" and user["kyc_tier"] == 0
    assert "password" not in r.get_data(as_text=True)
    cred = credentials_ref(deps.db, user["id"]).get().to_dict()
    assert cred["password_hash"].startswith("$argon2id$") and PASSWORD not in str(cred)
    stored = deps.db.collection("users").document(user["id"]).get().to_dict()
    assert "password_hash" not in stored
    [event] = events_of(deps, "user.created")
    assert event["tenant"] == user["id"] and event["data"]["object"]["id"] == user["id"]
    [mail] = inbox("Bob.Smith@example.com")
    assert mail["subject"].startswith("Confirm") and mail["categories"] == ["verify_email"]


def test_usernames_and_emails_are_unique_case_insensitively(auth):
    assert auth.post("/v1/auth/register", json=body()).status_code == 201
    assert_error(auth.post("/v1/auth/register", json=body(email="other@example.com", username="BOB")),
                 409, "username_taken")
    assert_error(auth.post("/v1/auth/register", json=body(email="BOB@Example.COM", username="bobby")),
                 409, "email_taken")


def test_replayed_idempotency_key_returns_the_identical_response(deps, auth):
    headers = {"Idempotency-Key": "signup-1"}
    first = auth.post("/v1/auth/register", json=body(), headers=headers)
    again = auth.post("/v1/auth/register", json=body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_data() == again.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(events_of(deps, "user.created")) == 1
    other = auth.post("/v1/auth/register", json=body(username="bob2"), headers=headers)
    assert_error(other, 409, "idempotency_key_reused")


@pytest.mark.parametrize("payload,param", [
    ({"email": "bob@example.com", "password": PASSWORD}, "username"),
    ({"username": "bob", "password": PASSWORD}, "email"),
    ({"email": "bob@example.com", "username": "bob"}, "password"),
    (body(email="not-an-email"), "email"),
    (body(email="bob@localhost"), "email"),
    (body(email="a b@example.com"), "email"),
    (body(username="ab"), "username"),
    (body(username="bad name!"), "username"),
    (body(username="x" * 31), "username"),
    (body(username="admin"), "username"),
    (body(password="short"), "password"),
    (body(password="x" * 2000), "password"),
    (body(password="password123"), "password"),
    (body(locale="fr"), "locale"),
    (body(extra_field=1), "extra_field"),
    (body(email=["list"]), "email"),
])
def test_bad_registration_input_is_a_400_envelope(auth, payload, param):
    err = assert_error(auth.post("/v1/auth/register", json=payload), 400)
    assert err["error"]["param"] == param


@pytest.mark.parametrize("raw,ctype", [
    (b"{not json", "application/json"), (b"[1,2]", "application/json"),
    (b'"string"', "application/json"), (b"\xff\xfe", "application/json"),
    (b"email=a", "application/x-www-form-urlencoded"),
])
def test_malformed_bodies_are_4xx_never_500(auth, raw, ctype):
    for path in ("/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/v1/auth/mfa/verify",
                 "/v1/auth/password/reset", "/v1/auth/email/verify", "/v1/auth/password/forgot"):
        r = auth.post(path, data=raw, content_type=ctype)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert_error(r, r.status_code)


def test_login_by_email_or_username(auth, signup):
    bob = signup(username="Bob_Login")
    for ident in ({"username": "bob_login"}, {"email": bob.email.upper().replace("EXAMPLE.COM", "Example.com").lower()}):
        r = auth.post("/v1/auth/login", json={**ident, "password": PASSWORD},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code == 200 and r.get_json()["session"]["user_id"] == bob.id
    assert_error(auth.post("/v1/auth/login", json={"username": "x", "email": "a@b.co",
                                                   "password": "p"}), 400)
    assert_error(auth.post("/v1/auth/login", json={"password": "p"}), 400)


def test_unknown_user_and_wrong_password_look_the_same(deps, auth, signup, monkeypatch):
    bob = signup()
    seen = []
    real = passwords.verify_password

    def spy(deps, stored, password):
        seen.append(stored)
        return real(deps, stored, password)
    monkeypatch.setattr(passwords, "verify_password", spy)

    wrong = auth.post("/v1/auth/login", json={"username": bob.username, "password": "wrong password 1"})
    unknown = auth.post("/v1/auth/login", json={"username": "nobody_here", "password": "wrong password 1"})
    unknown_email = auth.post("/v1/auth/login", json={"email": "ghost@example.com", "password": "x"})
    assert wrong.status_code == unknown.status_code == unknown_email.status_code == 401
    assert wrong.get_json() == unknown.get_json() == unknown_email.get_json()
    assert wrong.get_json()["error"]["code"] == "invalid_credentials"
    # every path ran exactly one argon2 verification; unknown users against the dummy hash
    assert len(seen) == 3
    assert seen[1] == seen[2] == passwords.dummy_hash(deps)
    assert seen[0] != seen[1] and seen[0].startswith("$argon2id$")


def test_user_without_password_gets_the_same_error(deps, auth):
    from shared.identity.users import directory
    batch = deps.db.batch()
    now = deps.clock.now()
    batch.set(directory.user_ref(deps.db, "usr_phoneonly00000000000001"),
              {"id": "usr_phoneonly00000000000001", "username": "phoney", "status": "active"})
    batch.set(directory.handle_ref(deps.db, "username", "phoney"),
              {"kind": "username", "value": "phoney", "user_id": "usr_phoneonly00000000000001",
               "created_at": now})
    batch.commit()
    assert_error(auth.post("/v1/auth/login", json={"username": "phoney", "password": "anything 123"}),
                 401, "invalid_credentials")


def test_login_rehashes_when_parameters_change(deps, auth, signup, configure):
    bob = signup()
    before = credentials_ref(deps.db, bob.id).get().get("password_hash")
    assert "t=1" in before
    configure(argon2_time_cost=2)
    r = auth.post("/v1/auth/login", json={"username": bob.username, "password": PASSWORD},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 200
    after = credentials_ref(deps.db, bob.id).get().get("password_hash")
    assert after != before and "t=2" in after
    assert passwords.verify_password(deps, after, PASSWORD)


def test_disabled_account_cannot_log_in(deps, auth, signup):
    bob = signup()
    deps.db.collection("users").document(bob.id).update({"status": "disabled"})
    assert_error(auth.post("/v1/auth/login", json={"username": bob.username, "password": PASSWORD},
                           headers={"X-Forwarded-For": fresh_ip()}), 403, "account_disabled")


def test_login_rate_limit_per_ip_gives_429_with_retry_after(auth):
    headers = {"X-Forwarded-For": "203.0.113.7"}
    codes = [auth.post("/v1/auth/login", json={"username": f"nobody{i}", "password": "x"},
                       headers=headers).status_code for i in range(11)]
    assert codes == [401] * 10 + [429]
    r = auth.post("/v1/auth/login", json={"username": "nobody", "password": "x"}, headers=headers)
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # another IP still gets through
    assert auth.post("/v1/auth/login", json={"username": "nobody", "password": "x"},
                     headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 401


def test_login_rate_limit_per_account_across_ips(auth, signup, deps):
    bob = signup()
    # the budget is per fixed minute: eleven argon2 logins on a loaded machine may straddle one
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc).replace(second=5))
    for _ in range(10):
        r = auth.post("/v1/auth/login", json={"username": bob.username, "password": "wrong pass 12"},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code in (401, 429)
    r = auth.post("/v1/auth/login", json={"username": bob.username.upper(), "password": PASSWORD},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert_error(r, 429)
    assert "Retry-After" in r.headers


def test_register_is_rate_limited_per_ip(auth, monkeypatch):
    from shared.identity import limits
    from shared.identity.http.api import auth_api
    from shared.platform.ratelimit import Limit
    # The route captured its limits at import; give it a small budget for this test.
    route = next(r for r in auth_api.routes if r.path == "/register")
    small = Limit(limits.REGISTER_IP.name, 2, 3600)
    monkeypatch.setattr(route, "rate_limits", ((small, "ip"),))
    headers = {"X-Forwarded-For": "198.51.100.1"}
    codes = [auth.post("/v1/auth/register", json=body(email=f"r{i}@example.com", username=f"reg_{i}"),
                       headers=headers).status_code for i in range(3)]
    assert codes == [201, 201, 429]


# --- email verification -------------------------------------------------------------------------

def test_email_verification_is_single_use(deps, auth, me, signup, inbox):
    bob = signup()
    token = token_from(inbox(bob.email)[-1])
    r = auth.post("/v1/auth/email/verify", json={"token": token})
    assert r.status_code == 200 and r.get_json()["email_verified"] is True
    assert me.get("/v1/me", headers=bob.headers).get_json()["email_verified"] is True
    assert_error(auth.post("/v1/auth/email/verify", json={"token": token}), 400, "token_already_used")
    [event] = events_of(deps, "user.email_verified")
    assert event["tenant"] == bob.id
    assert_error(auth.post("/v1/auth/email/verify", json={"token": "vfy_" + "A" * 43}), 400, "invalid_token")
    assert_error(auth.post("/v1/auth/email/verify", json={"token": "garbage"}), 400, "invalid_token")
    # resending after verification is refused
    assert_error(auth.post("/v1/auth/email/resend", headers=bob.headers), 422, "email_already_verified")


def test_email_verification_expires(deps, auth, signup, inbox):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    bob = signup()
    old = token_from(inbox(bob.email)[-1])
    deps.clock.advance(24 * 3600 + 1)
    assert_error(auth.post("/v1/auth/email/verify", json={"token": old}), 400, "token_expired")
    # a fresh one works (the day-old access token has expired: refresh it first)
    fresh_at = auth.post("/v1/auth/refresh", json={"refresh_token": bob.refresh}).get_json()["access_token"]
    assert auth.post("/v1/auth/email/resend",
                     headers={"Authorization": f"Bearer {fresh_at}"}).status_code == 202
    fresh = token_from(inbox(bob.email)[-1])
    assert fresh != old
    assert auth.post("/v1/auth/email/verify", json={"token": fresh}).status_code == 200


def test_reset_token_cannot_verify_email(auth, signup, inbox):
    bob = signup()
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    reset = token_from(inbox(bob.email)[-1])
    assert reset.startswith("pwr_")
    assert_error(auth.post("/v1/auth/email/verify", json={"token": reset}), 400, "invalid_token")


# --- password reset -------------------------------------------------------------------------

def test_forgot_password_does_not_reveal_accounts(auth, signup, inbox):
    bob = signup()
    known = auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    unknown = auth.post("/v1/auth/password/forgot", json={"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 202
    k, u = known.get_json(), unknown.get_json()
    assert k.pop("email") == bob.email and u.pop("email") == "ghost@example.com" and k == u
    assert [m["categories"] for m in inbox(bob.email)][-1] == ["password_reset"]
    assert inbox("ghost@example.com") == []


def test_password_reset_is_single_use_and_revokes_every_session(deps, auth, me, signup, inbox):
    bob = signup()
    laptop = auth.post("/v1/auth/login", json={"username": bob.username, "password": PASSWORD},
                       headers={"X-Forwarded-For": fresh_ip()}).get_json()
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    token = token_from(inbox(bob.email)[-1])
    new_password = "a brand new passphrase"
    r = auth.post("/v1/auth/password/reset", json={"token": token, "password": new_password})
    assert r.status_code == 200 and r.get_json()["sessions_revoked"] == 2
    for headers in (bob.headers, {"Authorization": f"Bearer {laptop['access_token']}"}):
        assert_error(me.get("/v1/me", headers=headers), 401)
    assert_error(auth.post("/v1/auth/refresh", json={"refresh_token": bob.refresh}), 401)
    assert_error(auth.post("/v1/auth/password/reset", json={"token": token, "password": "another one 123"}),
                 400, "token_already_used")
    assert_error(auth.post("/v1/auth/login", json={"username": bob.username, "password": PASSWORD},
                           headers={"X-Forwarded-For": fresh_ip()}), 401)
    assert auth.post("/v1/auth/login", json={"username": bob.username, "password": new_password},
                     headers={"X-Forwarded-For": fresh_ip()}).status_code == 200
    reasons = {e["data"]["reason"] for e in events_of(deps, "session.revoked")}
    assert reasons == {"password_reset"}


def test_password_reset_expires_and_older_tokens_are_superseded(deps, auth, signup, inbox):
    deps.clock = FrozenClock(dt.datetime.now(dt.timezone.utc))
    bob = signup()
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    first = token_from(inbox(bob.email)[-1])
    deps.clock.advance(3600 + 1)
    assert_error(auth.post("/v1/auth/password/reset", json={"token": first, "password": "new passphrase 1"}),
                 400, "token_expired")
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    second = token_from(inbox(bob.email)[-1])
    deps.clock.advance(1)
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    third = token_from(inbox(bob.email)[-1])
    deps.clock.advance(1)
    assert auth.post("/v1/auth/password/reset", json={"token": third, "password": "new passphrase 1"}).status_code == 200
    # an older outstanding link dies with the password change
    assert_error(auth.post("/v1/auth/password/reset", json={"token": second, "password": "new passphrase 2"}),
                 400, "invalid_token")


def test_password_reset_enforces_the_policy(auth, signup, inbox):
    bob = signup()
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    token = token_from(inbox(bob.email)[-1])
    assert_error(auth.post("/v1/auth/password/reset", json={"token": token, "password": "short"}),
                 400, "password_too_short")
    assert auth.post("/v1/auth/password/reset", json={"token": token, "password": "long enough now"}).status_code == 200


def test_change_password_keeps_this_session_and_revokes_the_others(auth, me, signup):
    bob = signup()
    other = auth.post("/v1/auth/login", json={"username": bob.username, "password": PASSWORD},
                      headers={"X-Forwarded-For": fresh_ip()}).get_json()
    assert_error(me.post("/v1/me/password", json={"current_password": "nope nope nope",
                                                  "new_password": "new passphrase 9"},
                         headers=bob.headers), 400, "incorrect_password")
    r = me.post("/v1/me/password", json={"current_password": PASSWORD, "new_password": "new passphrase 9"},
                headers=bob.headers)
    assert r.status_code == 200 and r.get_json()["sessions_revoked"] == 1
    assert me.get("/v1/me", headers=bob.headers).status_code == 200
    assert_error(me.get("/v1/me", headers={"Authorization": f"Bearer {other['access_token']}"}), 401)


def test_with_the_email_provider_down_signup_and_forgot_answer_at_once_and_mail_follows(
        deps, auth, email_server):
    """Issue 7 item 6: no send inside the request; the queued emails go out once the provider
    is back (attempt 1 after commit fails, the scheduled retry succeeds)."""
    import time

    from shared.adapters.email_sendgrid import HttpEmailSender
    from shared.notify import delivery
    from tests.support.identity import deliver_outbound
    deps.extras["notify.email"] = HttpEmailSender("http://127.0.0.1:9", "k",  # nothing listens
                                                  from_email="no-reply@payloom.dev", timeout=2)
    t0 = time.perf_counter()
    r = auth.post("/v1/auth/register", json=body(email="nomail@example.com", username="nomail"))
    assert r.status_code == 201
    r = auth.post("/v1/auth/password/forgot", json={"email": "nomail@example.com"})
    assert r.status_code == 202
    assert time.perf_counter() - t0 < 3.0
    queued = [s.id for s in deps.db.collection("outbound_messages").stream()]
    assert len(queued) == 2
    assert deliver_outbound(deps) == ["retrying", "retrying"]
    assert email_server.inbox("nomail@example.com") == []
    deps.extras.pop("notify.email")  # the provider is back: the retries deliver
    assert sorted(delivery.attempt(deps, mid, 2) for mid in queued) == ["sent", "sent"]
    kinds = sorted(m["categories"][0] for m in email_server.inbox("nomail@example.com"))
    assert kinds == ["password_reset", "verify_email"]
