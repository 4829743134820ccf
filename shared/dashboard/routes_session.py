"""Sign-in (password, then the MFA code when the account has one), sign-out, and the merchant
and mode switches. Sign-in pages are the only dashboard pages a stranger may open."""
from __future__ import annotations

import flask

from shared.dashboard import cookies, forms, guard, session
from shared.dashboard.fmt import safe_next
from shared.dashboard.members import Member
from shared.dashboard.site import pages
from shared.identity.responses import MfaChallenge
from shared.merchants import context
from shared.platform.errors import InvalidRequest, PayloomError

YEAR = 365 * 86400
SECTIONS = ("payments", "refunds", "webhooks", "keys", "invoices", "links", "reports", "analytics")


def _message(ctx, exc: PayloomError) -> str:
    """What the sign-in form says: the same words whether or not the account exists."""
    known = {
        "invalid_credentials": ctx._("The email or password is not right."),
        "login_locked": ctx._("Too many failed attempts. Wait a while, or reset your password."),
        "rate_limited": ctx._("Too many attempts. Wait a minute and try again."),
        "account_disabled": ctx._("This account is disabled."),
        "invalid_mfa_code": ctx._("The code is not right. Try the current code from your app."),
        "mfa_challenge_invalid": ctx._("This sign-in has expired. Sign in again."),
        "mfa_challenge_expired": ctx._("This sign-in has expired. Sign in again."),
    }
    return known.get(exc.code, exc.message)


def _form(ctx, template: str, jar: cookies.Jar, status: int = 200, headers=None, **values):
    return jar.apply(guard.html(ctx, template, {**guard.layout(None, ""), **values}, status, headers))


@pages.get("/")
def home(ctx):
    return guard.redirect(ctx, "/payments")


@pages.get("/signin")
def signin_form(ctx):
    jar = cookies.Jar(ctx.deps)
    nxt = safe_next(ctx.request.args.get("next"), ctx.root)
    if session.current(ctx, jar) is not None:
        return jar.apply(flask.redirect(nxt or f"{ctx.root}/payments", code=303))
    return _form(ctx, "dashboard/signin.html", jar, next=nxt, error=None, identifier="",
                 signed_out=ctx.request.args.get("signed_out") == "1")


@pages.post("/signin")
def signin(ctx):
    jar = cookies.Jar(ctx.deps)
    nxt = safe_next(ctx.form.get("next"), ctx.root)
    identifier = (ctx.form.get("email") or "").strip()[:254]
    try:
        answer = session.sign_in(ctx, jar, identifier, (ctx.form.get("password") or "")[:1024])
    except PayloomError as exc:
        if exc.status >= 500:
            raise
        return _form(ctx, "dashboard/signin.html", jar, exc.status, exc.headers, next=nxt,
                     error=_message(ctx, exc), identifier=identifier, signed_out=False)
    if isinstance(answer, MfaChallenge):
        return jar.apply(guard.redirect(ctx, "/signin/mfa", next=nxt))
    return jar.apply(flask.redirect(nxt or f"{ctx.root}/payments", code=303))


@pages.get("/signin/mfa")
def mfa_form(ctx):
    jar = cookies.Jar(ctx.deps)
    if not cookies.read(ctx.deps, ctx.request, cookies.CHALLENGE):
        return guard.redirect(ctx, "/signin")
    return _form(ctx, "dashboard/mfa.html", jar, next=safe_next(ctx.request.args.get("next"),
                                                                ctx.root), error=None)


@pages.post("/signin/mfa")
def mfa(ctx):
    jar = cookies.Jar(ctx.deps)
    nxt = safe_next(ctx.form.get("next"), ctx.root)
    try:
        session.verify_code(ctx, jar, (ctx.form.get("code") or "")[:64])
    except PayloomError as exc:
        if exc.status >= 500:
            raise
        if exc.code in ("mfa_challenge_invalid", "mfa_challenge_expired"):
            jar.clear(cookies.CHALLENGE)
        return _form(ctx, "dashboard/mfa.html", jar, exc.status, exc.headers, next=nxt,
                     error=_message(ctx, exc))
    return jar.apply(flask.redirect(nxt or f"{ctx.root}/payments", code=303))


@pages.post("/signout")
def signout(ctx):
    jar = cookies.Jar(ctx.deps)
    session.sign_out(ctx, jar, session.current(ctx, jar))
    return jar.apply(guard.redirect(ctx, "/signin", signed_out="1"))


@guard.member_page("POST", "/merchant", need=None)
def switch_merchant(ctx, member: Member):
    """Look at another merchant: only one the user is a member of (403 otherwise)."""
    wanted = forms.text(ctx.form, "merchant", 80)
    context.enter(ctx.deps, member.user.principal, wanted, member.livemode)
    ctx.jar.set(cookies.MERCHANT, wanted, YEAR)
    return guard.redirect(ctx, "/payments")


@guard.member_page("POST", "/mode", need=None)
def switch_mode(ctx, member: Member):
    """Test or live: everything shown and done afterwards is in that mode only."""
    mode = ctx.form.get("mode")
    if mode not in ("test", "live"):
        raise InvalidRequest(ctx._("Choose test or live mode."), param="mode", code="invalid_mode")
    ctx.jar.set(cookies.MODE, mode, YEAR)
    section = ctx.form.get("section")
    return guard.redirect(ctx, f"/{section if section in SECTIONS else 'payments'}")
