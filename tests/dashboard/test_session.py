"""Signing in and out of the dashboard: the cookies (HttpOnly, SameSite=Strict, scoped to
/dashboard), the same refusals as the API (no account enumeration, lockout), MFA, the
transparent refresh (rotation; a reused token revokes the session), sign-out revoking the
session, and the redirects (never to another site)."""
from __future__ import annotations

import datetime as dt

import pyotp
import pytest

from shared.identity.factors import mfa
from shared.identity.sessions import sessions
from shared.platform.errors import AuthenticationError
from shared.platform.uow import run_unit
from tests.dashboard.conftest import ROOT, email_of
from tests.support.identity import DEFAULT_PASSWORD


def _set_cookies(resp) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in resp.headers.getlist("Set-Cookie")}


def test_pages_send_strangers_to_sign_in_with_the_page_to_return_to(browser):
    b = browser()
    r = b.get("/payments?status=succeeded")
    assert r.status_code == 303
    assert r.headers["Location"] == f"{ROOT}/signin?next=%2Fdashboard%2Fpayments%3Fstatus%3Dsucceeded"
    r = b.post("/keys/key_x/revoke", {})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/signin"
    r = b.get("/signin")
    assert r.status_code == 200 and 'autocomplete="current-password"' in r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]


def test_sign_in_keeps_the_tokens_in_strict_http_only_cookies_scoped_to_the_dashboard(
        wiring, browser, shop):
    b = browser()
    r = b.post("/signin", {"email": email_of(wiring, shop.users["viewer"][0]),
                           "password": DEFAULT_PASSWORD, "next": "/dashboard/refunds"})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/refunds"
    cookies = _set_cookies(r)
    for name in ("dash_at", "dash_rt"):
        header = cookies[name]
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/dashboard" in header
        assert "Secure" not in header   # plain http locally; production sets Secure and __Secure-
    assert "Max-Age=3600" in cookies["dash_at"] and f"Max-Age={30 * 86400}" in cookies["dash_rt"]
    assert "rt_" not in r.get_data(as_text=True) and "eyJ" not in r.get_data(as_text=True)
    page = b.get("/refunds")
    assert page.status_code == 200 and "Refunds" in page.get_data(as_text=True)


@pytest.mark.parametrize("nxt", ["https://evil.example/x", "//evil.example", "/dashboard/../v1",
                                 "/pay/x", "/dashboard\\evil", "javascript:alert(1)"])
def test_after_sign_in_only_dashboard_paths_are_followed(wiring, browser, shop, nxt):
    b = browser()
    r = b.post("/signin", {"email": email_of(wiring, shop.users["owner"][0]),
                           "password": DEFAULT_PASSWORD, "next": nxt})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/payments"


def test_wrong_password_and_unknown_account_get_the_same_answer(wiring, browser, shop):
    b = browser()
    wrong = b.post("/signin", {"email": email_of(wiring, shop.users["owner"][0]), "password": "nope"})
    unknown = b.post("/signin", {"email": "nobody@example.com", "password": "nope"})
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "The email or password is not right." in r.get_data(as_text=True)
        assert "dash_at" not in _set_cookies(r)
    assert b.get("/payments").status_code == 303


def test_repeated_failures_lock_password_sign_in_like_the_api(wiring, browser, shop):
    b = browser()
    email = email_of(wiring, shop.users["owner"][0])
    statuses = [b.post("/signin", {"email": email, "password": f"wrong {i}"}).status_code
                for i in range(11)]
    # the account's consecutive-failure lock (and the per-IP failure budget) of the API
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429
    r = b.post("/signin", {"email": email, "password": DEFAULT_PASSWORD})
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert "Too many" in r.get_data(as_text=True)


def test_a_form_without_its_csrf_token_is_refused(wiring, browser, shop):
    b = browser()
    r = b.post("/signin", {"email": email_of(wiring, shop.users["owner"][0]),
                           "password": DEFAULT_PASSWORD}, csrf=False)
    assert r.status_code == 403 and "dash_at" not in _set_cookies(r)
    member = browser()
    member.sign_in(email_of(wiring, shop.users["owner"][0]))
    r = member.post("/signout", {}, csrf=False)
    assert r.status_code == 403
    r = member.post("/signout", {"csrf_token": "x" * 43}, csrf=False)
    assert r.status_code == 403
    cross = member.client.post(f"{ROOT}/signout", data={"csrf_token": member.csrf},
                               headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert member.get("/payments").status_code == 200   # still signed in


def test_mfa_user_enters_the_code_before_getting_a_session(wiring, browser, shop):
    uid = shop.users["owner"][0]
    enrol = run_unit(wiring, lambda uow: mfa.begin_totp(uow, uid))
    run_unit(wiring, lambda uow: mfa.confirm_totp(uow, uid, pyotp.TOTP(enrol.secret).now()))
    b = browser()
    r = b.post("/signin", {"email": email_of(wiring, uid), "password": DEFAULT_PASSWORD,
                           "next": "/dashboard/keys"})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{ROOT}/signin/mfa")
    assert "dash_at" not in _set_cookies(r) and "dash_mfa" in _set_cookies(r)
    assert b.get("/payments").status_code == 303          # no session yet
    assert b.get("/signin/mfa?next=/dashboard/keys").status_code == 200
    wrong = b.post("/signin/mfa", {"code": "000000", "next": "/dashboard/keys"})
    assert wrong.status_code == 401 and "The code is not right" in wrong.get_data(as_text=True)
    challenge = b.cookie("dash_mfa").value
    step = pyotp.TOTP(enrol.secret)
    # the confirming code's step is spent: the next step's code is accepted (±1 step window)
    code = step.at(wiring.clock.now() + dt.timedelta(seconds=30))
    r = b.post("/signin/mfa", {"code": code, "next": "/dashboard/keys"})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/keys", r.get_data(as_text=True)
    assert "dash_at" in _set_cookies(r)
    assert b.get("/keys").status_code == 200
    replay = browser()
    replay.client.set_cookie("dash_mfa", challenge, path=ROOT)   # a completed challenge
    assert replay.post("/signin/mfa", {"code": code}).status_code == 401
    assert b.cookie("dash_mfa") is None


def test_an_expired_access_token_is_refreshed_transparently_and_rotated(wiring, browser, shop):
    b = browser()
    b.sign_in(email_of(wiring, shop.users["owner"][0]))
    first_rt = b.cookie("dash_rt").value
    b.client.set_cookie("dash_at", "eyJ.expired.token", path=ROOT)
    r = b.get("/payments")
    assert r.status_code == 200
    cookies = _set_cookies(r)
    assert "dash_at" in cookies and "dash_rt" in cookies
    second_rt = b.cookie("dash_rt").value
    assert second_rt != first_rt and second_rt.startswith("rt_")
    # a thief replaying the first refresh token after the grace: the whole session is revoked
    wiring.clock = _Later(wiring.clock, 60)
    thief = browser()
    thief.client.set_cookie("dash_rt", first_rt, path=ROOT)
    assert thief.get("/payments").status_code == 303
    assert b.get("/payments").status_code == 303   # the victim's tokens died with the session


def test_sign_out_revokes_the_session_and_clears_the_cookies(wiring, browser, shop):
    b = browser()
    b.sign_in(email_of(wiring, shop.users["owner"][0]))
    access, refresh = b.cookie("dash_at").value, b.cookie("dash_rt").value
    r = b.post("/signout", {})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/signin?signed_out=1"
    assert b.cookie("dash_at") is None and b.cookie("dash_rt") is None
    # the old cookies are worthless now: the session is revoked server-side
    again = browser()
    again.client.set_cookie("dash_at", access, path=ROOT)
    again.client.set_cookie("dash_rt", refresh, path=ROOT)
    assert again.get("/payments").status_code == 303
    with pytest.raises(AuthenticationError):
        run_unit(wiring, lambda uow: sessions.refresh_session(uow, refresh))


def test_a_tampered_access_token_without_a_refresh_token_is_no_session(wiring, browser, shop):
    b = browser()
    b.sign_in(email_of(wiring, shop.users["owner"][0]))
    forged = browser()
    forged.client.set_cookie("dash_at", b.cookie("dash_at").value[:-4] + "AAAA", path=ROOT)
    r = forged.get("/payments")
    assert r.status_code == 303 and "dash_at=;" in r.headers.get("Set-Cookie", "")


class _Later:
    """A clock ``seconds`` ahead of another (the refresh grace window has passed)."""

    def __init__(self, clock, seconds: float):
        self.clock, self.seconds = clock, seconds

    def now(self):
        return self.clock.now() + dt.timedelta(seconds=self.seconds)

    def __getattr__(self, name):
        return getattr(self.clock, name)
