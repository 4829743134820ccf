"""Password guessing per account (issue 7, defect 10), token response headers (defect 12),
forgot-password without an in-request send (defect 9) and the login round-trip budget."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import statistics
import time

import jwt

from shared.identity.users import accounts, login_guard
from shared.platform.clock import FrozenClock
from shared.platform.uow import run_unit
from tests.identity.helpers import PASSWORD, assert_error, fresh_ip

T0 = dt.datetime(2026, 6, 1, 12, 0, 5, tzinfo=dt.timezone.utc)


def _login(auth, password, *, username=None, email=None):
    body = {"password": password, **({"username": username} if username else {"email": email})}
    return auth.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": fresh_ip()})


def test_email_and_username_share_one_budget(auth, signup, configure):
    configure(login_attempts_per_minute=6, lockout_after=50)
    bob = signup()  # its own login counted once
    for i in range(5):
        r = _login(auth, "wrong password 1", **({"email": bob.email} if i % 2 else
                                                {"username": bob.username}))
        assert_error(r, 401, "invalid_credentials")
    r = _login(auth, PASSWORD, email=bob.email.upper())
    assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert_error(_login(auth, PASSWORD, username=bob.username), 429)


def test_consecutive_failures_lock_with_growing_backoff_then_hard_lock(deps, auth, signup,
                                                                       configure, inbox):
    deps.clock = FrozenClock(T0)
    configure(login_attempts_per_minute=1000, lockout_after=3, lockout_base_seconds=60,
              lockout_max_seconds=3600, hard_lock_after=6)
    bob = signup()
    for _ in range(3):
        assert_error(_login(auth, "wrong password 1", username=bob.username), 401)
    # Locked: even the right password is refused, before any password check, for 60 s.
    r = _login(auth, PASSWORD, email=bob.email)
    assert_error(r, 429, "login_locked")
    assert int(r.headers["Retry-After"]) == 60
    notices = [m for m in inbox(bob.email) if m["categories"] == ["login_locked"]]
    assert len(notices) == 1
    deps.clock.advance(61)
    assert_error(_login(auth, "wrong password 1", username=bob.username), 401)
    r = _login(auth, PASSWORD, username=bob.username)
    assert_error(r, 429, "login_locked")
    assert int(r.headers["Retry-After"]) == 120  # doubled
    deps.clock.advance(121)
    assert _login(auth, PASSWORD, username=bob.username).status_code == 200  # resets the count
    guard = deps.db.collection(login_guard.COLLECTION).document(bob.id).get().to_dict()
    assert guard["consecutive_failures"] == 0 and guard["locked_until"] is None
    # Six failures in a row (waiting out each lock) hard-lock password sign-in.
    for n in range(6):
        assert_error(_login(auth, "wrong password 1", username=bob.username), 401)
        deps.clock.advance(3601)
    r = _login(auth, PASSWORD, username=bob.username)
    assert_error(r, 429, "login_locked")
    assert "Retry-After" not in r.headers
    # one notice per lock episode: the first lock, this episode's lock, the hard lock
    assert len([m for m in inbox(bob.email) if m["categories"] == ["login_locked"]]) == 3
    # A password reset clears the lock.
    auth.post("/v1/auth/password/forgot", json={"email": bob.email})
    from tests.identity.helpers import token_from
    token = token_from([m for m in inbox(bob.email) if m["categories"] == ["password_reset"]][-1])
    assert auth.post("/v1/auth/password/reset",
                     json={"token": token, "password": "fresh passphrase 9"}).status_code == 200
    assert _login(auth, "fresh passphrase 9", username=bob.username).status_code == 200


def test_unknown_accounts_lock_the_same_way(deps, auth, configure):
    deps.clock = FrozenClock(T0)
    configure(login_attempts_per_minute=1000, lockout_after=3)
    for _ in range(3):
        assert_error(_login(auth, "wrong password 1", username="nobody_here"), 401)
    assert_error(_login(auth, "wrong password 1", username="nobody_here"), 429, "login_locked")


def test_concurrent_guesses_lose_no_count(deps, configure, signup):
    configure(login_attempts_per_minute=1000, lockout_after=100, hard_lock_after=1000)
    bob = signup()

    def guess(_):
        try:
            run_unit(deps, lambda uow: accounts.login(uow, username=bob.username,
                                                      password="wrong password 1"))
        except Exception as exc:  # noqa: BLE001
            return getattr(exc, "code", type(exc).__name__)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(guess, range(12)))
    assert set(codes) <= {"invalid_credentials", "contention"}, codes
    counted = codes.count("invalid_credentials")
    guard = deps.db.collection(login_guard.COLLECTION).document(bob.id).get().to_dict()
    assert guard["consecutive_failures"] == counted >= 6


def test_token_responses_are_not_cached_and_carry_client_id(auth, signup, keyset):
    bob = signup()
    r = _login(auth, PASSWORD, username=bob.username)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    access = r.get_json()["access_token"]
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"
    claims = jwt.decode(access, keyset.keys[0].public_key, algorithms=["EdDSA"],
                        audience="payloom-api")
    assert claims["client_id"] == "payloom-app"
    r = auth.post("/v1/auth/refresh", json={"refresh_token": r.get_json()["refresh_token"]})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Pragma"] == "no-cache"
    assert jwt.decode(r.get_json()["access_token"], options={"verify_signature": False})[
        "client_id"] == "payloom-app"


def test_login_costs_at_most_three_round_trips(deps, auth, signup):
    """Issue 7 budget: a whole HTTP login (route limits included) is <= 3 Firestore round
    trips, for a success and for a failure alike."""
    from bench.harness import RpcCounter
    bob = signup()
    for password, status in ((PASSWORD, 200), ("wrong password 1", 401)):
        with RpcCounter() as counter:
            r = _login(auth, password, username=bob.username)
        assert r.status_code == status
        assert counter.total <= 3, counter.counts


def test_forgot_password_sends_nothing_in_the_request_and_does_equal_work(deps, auth, signup,
                                                                          monkeypatch, configure):
    from bench.harness import RpcCounter
    from shared.identity.users import email as email_mod
    configure(forgot_per_email_per_hour=1000)
    bob = signup()
    sends = []
    # No email may leave inside the request: a send would show up here.
    monkeypatch.setattr(email_mod.HttpEmailSender, "send", lambda self, m: sends.append(m))
    import shared.notify  # noqa: F401 — the queue must be there for this to hold

    def call(email):
        return auth.post("/v1/auth/password/forgot", json={"email": email},
                         headers={"X-Forwarded-For": fresh_ip()})

    counts = {}
    for label, email in (("known", bob.email), ("unknown", "ghost@example.com")):
        with RpcCounter() as counter:
            assert call(email).status_code == 202
        counts[label] = counter.counts
    assert sends == []
    assert counts["known"] == counts["unknown"], counts
    # Timing: medians over 30 calls each are within a loose bound of each other.
    times = {"known": [], "unknown": []}
    for i in range(30):
        for label, email in (("known", bob.email), ("unknown", f"ghost{i}@example.com")):
            t0 = time.perf_counter()
            call(email if label == "unknown" else bob.email)
            times[label].append(time.perf_counter() - t0)
    ratio = statistics.median(times["known"]) / statistics.median(times["unknown"])
    assert 0.6 < ratio < 1.6, ratio
