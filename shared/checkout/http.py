"""The checkout pages (``/pay/...``), on ``shared.web.pages.Pages``.

Every intent page exists twice, under ``/pay/<client secret>`` and ``/pay/invoice/<id>``
(``access``): the page, its ``/status`` poll (JSON, ETag/304), the methods' forms (crypto,
wallet sign-in/MFA/pay/sign-out, card) which answer 303 back to the page (POST-redirect-GET),
the card processor's returns, and ``/done`` / ``/cancel`` which send the payer to the merchant.
``/pay/link/<id>`` shows a payment link and its form makes the visitor's intent.

A refused action re-renders the page with a message from the catalogue (never a service's
English text, never a traceback) and the service's 4xx status (503 when a dependency is down).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import flask

from shared.checkout import (
    access,
    branding,
    card_entry,
    crypto,
    links,
    money,
    view,
    wallet,
)
from shared.checkout.config import checkout_settings
from shared.payments import card_events
from shared.platform.errors import InvalidRequest, NotFound, PayloomError
from shared.web import security
from shared.web.pages import Page, PageContext, Pages

pages = Pages("checkout", web_root="pay", package_dir=Path(__file__).resolve().parent)
PREFIXES = ("/{secret}", "/invoice/{invoice_id}")
T = TypeVar("T")


def N_(message: str) -> str:       # marks a msgid for extraction; translated when shown
    return message


MESSAGES = {
    "invalid_credentials": N_("The email or password is not right."),
    "login_locked": N_("Too many sign-in attempts. Try again later."),
    "account_disabled": N_("This account is disabled."),
    "invalid_mfa_code": N_("That code is not valid. Try again."),
    "mfa_challenge_invalid": N_("Your sign-in expired. Sign in again."),
    "mfa_challenge_expired": N_("Your sign-in expired. Sign in again."),
    "insufficient_funds": N_("Your wallet's balance does not cover this payment."),
    "intent_not_payable": N_("This payment can no longer be made."),
    "intent_unexpected_state": N_("This payment can no longer be made."),
    "rate_limited": N_("Too many attempts. Wait a minute and try again."),
    "rates_unavailable": N_("Exchange rates are not available right now. Try again in a moment."),
    "crypto_already_chosen": N_("A crypto payment was already started for this payment."),
    "custody_unavailable": N_("Crypto payments are not available right now."),
    "card_payment_in_progress": N_("Your card payment is already being processed."),
    "too_many_card_attempts": N_("Too many card attempts. Choose another way to pay."),
    "provider_unavailable": N_("The card processor cannot be reached. Try again in a moment."),
    "card_processor_invalid": N_("The card processor cannot be reached. Try again in a moment."),
    "card_session_invalid": N_("The card details could not be used. Try again."),
    "payment_method_not_accepted": N_("This way to pay is not accepted for this payment."),
    "amount_required": N_("This way to pay needs a fixed amount."),
    "currency_not_supported_for_card": N_("This currency cannot be paid by card."),
    "amount_out_of_range": N_("Enter an amount within the limits shown."),
    "amount_invalid": N_("Enter an amount within the limits shown."),
    "amount_too_precise": N_("Enter an amount within the limits shown."),
    "parameter_missing": N_("Enter an amount within the limits shown."),
    "wallet_signed_out": N_("Sign in to your Payloom wallet first."),
}
OPTION_CODES = {"parameter_invalid", "network_unknown", "asset_unknown", "asset_not_accepted",
                "asset_unsupported_on_network", "network_mode_mismatch", "asset_not_onchain",
                "amount_too_small"}
GENERIC = N_("Something went wrong. Please try again.")
CARD_NOTICES = {"card_declined": N_("Your card was declined. Try another card or another way to pay."),
                "insufficient_funds": N_("Your card has insufficient funds. Try another card or "
                                         "another way to pay."),
                "authentication_failed": N_("Your bank did not confirm the payment. Try again or "
                                            "choose another way to pay.")}


def resolve(ctx: PageContext, *, with_secret: bool = True) -> access.Checkout:
    """The checkout of this URL; a 404 page in the payer's language otherwise."""
    try:
        return access.resolve(ctx.deps, ctx.params, ctx.root, with_secret=with_secret)
    except NotFound:
        raise NotFound(ctx._("This payment page does not exist."),
                       code="resource_missing") from None


def message_for(ctx: PageContext, exc: PayloomError) -> str:
    if exc.code in OPTION_CODES:
        return ctx._("Choose a network and a currency.")
    return ctx._(MESSAGES.get(exc.code, GENERIC))


# --- helpers ---------------------------------------------------------------------------------
def _redirect(location: str, *, no_referrer: bool = False) -> flask.Response:
    response = flask.redirect(location, code=303)
    response.headers["Cache-Control"] = "no-store"
    if no_referrer:   # the page's URL carries the client secret: the merchant never sees it
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _absolute(ctx: PageContext, path: str) -> str:
    """An absolute URL of ours (for the processor's redirects back)."""
    settings = ctx.deps.settings
    base = settings.public_base_url if settings.is_production else ctx.request.host_url
    return base.rstrip("/") + path


def _card_offered(doc: dict[str, Any]) -> bool:
    if card_events.METHOD not in (doc.get("payment_method_types") or []) or doc.get("amount") is None:
        return False
    try:
        card_events.processor_amount(int(doc["amount"]), doc["currency"])
    except PayloomError:
        return False
    return True


def _panel(ctx: PageContext, co: access.Checkout, merchant: branding.Merchant,
           error: str | None = None, email: str = "", forget_mfa: bool = False) -> dict[str, Any]:
    """Everything ``checkout/panel.html`` shows (the page and the status poll share it)."""
    deps, doc, lang, now = ctx.deps, co.intent, ctx.lang, ctx.now
    state = view.state_of(doc, now)
    methods = set(doc.get("payment_method_types") or [])
    payable = state == view.AWAITING
    card = doc.get("card") or {}
    card_retry = state == view.PROCESSING and card.get("status") == "requires_action" \
        and not card_events.paid_by_card(doc)
    wallet_open = payable and "wallet" in methods and doc.get("amount") is not None
    notice = view.card_notice(doc)
    return {
        "state": state, "status": doc["status"], "base": co.base, "method": doc.get("method"),
        "currency": doc["currency"],
        "amount": money.ledger(doc.get("amount"), doc["currency"], lang),
        "received": money.ledger(int(doc.get("amount_received") or 0), doc["currency"], lang),
        "remaining": money.ledger(view.remaining(doc), doc["currency"], lang)
        if state == view.UNDERPAID else "",
        "overpaid_by": money.ledger(view.overpaid_by(doc), doc["currency"], lang)
        if view.overpaid_by(doc) else "",
        "merchant_name": merchant.name,
        "crypto": crypto.details(doc, lang),
        "crypto_options": crypto.options(deps, doc, merchant.accepted_assets, lang)
        if payable and "crypto" in methods and not doc.get("crypto") else [],
        "confirmations": int(doc.get("required_confirmations") or 0),
        "wallet": wallet_open,
        "payer": wallet.payer(deps, ctx.request) if wallet_open else None,
        "mfa": bool(wallet_open and not forget_mfa and wallet.pending_challenge(deps, ctx.request)),
        "card": (payable and _card_offered(doc)) or card_retry,
        "card_retry": card_retry,
        "card_notice": ctx._(CARD_NOTICES[notice]) if notice else "",
        "expires_at": view.unix(doc["expires_at"]), "now": view.unix(now),
        "time_left": view.time_left(doc, now),
        "done_url": f"{co.base}/done" if branding.redirect_url(doc, merchant, "success") else "",
        "cancel_url": f"{co.base}/cancel" if branding.redirect_url(doc, merchant, "cancel") else "",
        "redirect_delay": checkout_settings(deps).redirect_delay_s,
        "error": error or "", "email": email,
    }


def _conversion(ctx: PageContext, doc: dict[str, Any]) -> str:
    """An indicative amount in a second currency (USD ↔ KHR, anything else → USD)."""
    if doc.get("amount") is None:
        return ""
    target = {"USD": "KHR"}.get(doc["currency"], "USD")
    from shared.rates import service as rates
    try:
        conv = rates.convert(ctx.deps, int(doc["amount"]), doc["currency"], target,
                             rounding="down")
    except PayloomError:
        return ""
    return money.ledger(conv.amount, target, ctx.lang)


def _invoice(ctx: PageContext, inv: dict[str, Any] | None) -> dict[str, Any] | None:
    if inv is None:
        return None
    from babel.dates import format_date
    due = inv.get("due_date")
    return {"number": inv.get("number") or "", "status": inv["status"],
            "due": format_date(due, format="long", locale=ctx.lang) if due else "",
            "lines": [{"description": x.get("description", ""), "quantity": x.get("quantity", 1),
                       "amount": money.ledger(int(x.get("amount") or 0), inv["currency"], ctx.lang)}
                      for x in (inv.get("lines") or [])[:10]],
            "total": money.ledger(int(inv.get("total") or 0), inv["currency"], ctx.lang)}


def _csp(ctx: PageContext, doc: dict[str, Any]) -> dict[str, str]:
    """The strict policy, whose form-action also allows the card processor's hosted step."""
    origins = card_entry.allowed_origins(ctx.deps) if _card_offered(doc) else ()
    return {"Content-Security-Policy": security.content_security_policy(
        ctx.nonce, form_action=list(origins))}


def render(ctx: PageContext, co: access.Checkout, *, error: str | None = None,
           status: int = 200, email: str = "", forget_mfa: bool = False) -> Page:
    doc = co.intent
    merchant = branding.load(ctx.deps, doc["tenant"])
    panel = _panel(ctx, co, merchant, error, email, forget_mfa)
    values = {
        "panel": panel, "merchant": merchant, "livemode": bool(doc["livemode"]), "here": co.base,
        "description": doc.get("description") or "", "conversion": _conversion(ctx, doc),
        "invoice": _invoice(ctx, co.invoice),
        "etag": view.version(doc, ctx.now, ctx.lang),
        "poll_max": checkout_settings(ctx.deps).poll_max_ms,
    }
    return Page("checkout/page.html", values, status, _csp(ctx, doc))


def _refused(ctx: PageContext, exc: PayloomError, **kw) -> Page:
    """Re-render the page (freshly read) with the refusal's message and status."""
    co = resolve(ctx)
    status = exc.status if 400 <= exc.status < 600 else 400
    return render(ctx, co, error=message_for(ctx, exc), status=status, **kw)


def _attempt(ctx: PageContext, act: Callable[[access.Checkout], T],
             then: Callable[[access.Checkout, T], flask.Response],
             **refused: Any) -> flask.Response | Page:
    """A payer's form (or the card processor's return) acting on the intent of this URL: load it
    by its client secret or invoice (a 404 page otherwise), ``act`` on it (the methods' services
    refuse an intent that can no longer be paid that way), then answer ``then(checkout, what
    act returned)``, a redirect. A refusal (``PayloomError``) from ``act``, and only from it,
    re-renders the page with its message and status, ``refused`` passed on (what the page
    keeps, such as the typed email)."""
    co = resolve(ctx)
    try:
        result = act(co)
    except PayloomError as exc:
        return _refused(ctx, exc, **refused)
    return then(co, result)


def on_both(method: str, suffix: str):
    """Register a handler under both page prefixes."""
    def register(fn):
        for prefix in PREFIXES:
            pages.route(method, prefix + suffix)(fn)
        return fn
    return register


# --- the page and its status ---------------------------------------------------------------------
@on_both("GET", "")
def page(ctx: PageContext):
    return render(ctx, resolve(ctx))


@on_both("GET", "/status")
def status(ctx: PageContext):
    """JSON for the page's poll: the panel's state and HTML when it changed (ETag), else 304.
    It shows exactly what the page shows; one read when nothing changed."""
    co = resolve(ctx, with_secret=False)
    etag = view.version(co.intent, ctx.now, ctx.lang)
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if etag in ctx.request.headers.get("If-None-Match", ""):
        return flask.Response(status=304, headers=headers)
    merchant = branding.load(ctx.deps, co.intent["tenant"])
    panel = _panel(ctx, co, merchant)
    html = pages.render(ctx, "checkout/panel.html", {"panel": panel})
    body = {"state": panel["state"], "etag": etag, "html": html,
            "final": panel["state"] in view.FINAL, "redirect": panel["done_url"] or None}
    return flask.Response(flask.json.dumps(body), status=200, headers=headers,
                          content_type="application/json")


@on_both("GET", "/done")
def done(ctx: PageContext):
    """To the merchant's success_url once paid (else back to the page)."""
    co = resolve(ctx, with_secret=False)
    doc = co.intent
    if view.state_of(doc, ctx.now) == view.SUCCEEDED:
        url = branding.redirect_url(doc, branding.load(ctx.deps, doc["tenant"]), "success")
        if url:
            return _redirect(url, no_referrer=True)
    return _redirect(co.base)


@on_both("GET", "/cancel")
def cancel(ctx: PageContext):
    """Back to the merchant's cancel_url (the intent stays as it is, as Stripe's)."""
    co = resolve(ctx, with_secret=False)
    doc = co.intent
    url = branding.redirect_url(doc, branding.load(ctx.deps, doc["tenant"]), "cancel")
    return _redirect(url, no_referrer=True) if url else _redirect(co.base)


# --- crypto ------------------------------------------------------------------------------------
@on_both("POST", "/crypto")
def choose_crypto(ctx: PageContext):
    return _attempt(ctx, lambda co: crypto.choose(ctx.deps, ctx.request, co.client_secret,
                                                  co.intent, ctx.form.get("option", "")),
                    lambda co, _: _redirect(co.base + "#crypto"))


# --- wallet ------------------------------------------------------------------------------------
@on_both("POST", "/wallet/signin")
def wallet_signin(ctx: PageContext):
    email = (ctx.form.get("email") or "")[:254]

    def signed_in(co: access.Checkout, answer) -> flask.Response:
        response = _redirect(co.base + "#wallet")
        if wallet.is_challenge(answer):
            wallet.set_cookie(ctx.deps, response, wallet.MFA_COOKIE, answer.challenge_id,
                              answer.expires_in)
        else:
            wallet.keep_token(ctx.deps, response, answer)
        return response
    return _attempt(ctx, lambda co: wallet.sign_in(ctx.deps, ctx.request, email,
                                                   ctx.form.get("password") or ""),
                    signed_in, email=email)


@on_both("POST", "/wallet/mfa")
def wallet_mfa(ctx: PageContext):
    co = resolve(ctx)
    challenge = wallet.pending_challenge(ctx.deps, ctx.request)
    try:
        if challenge is None:
            raise InvalidRequest("no challenge", code="mfa_challenge_invalid")
        pair = wallet.verify_mfa(ctx.deps, ctx.request, challenge, ctx.form.get("code") or "")
    except PayloomError as exc:
        if exc.code not in ("mfa_challenge_invalid", "mfa_challenge_expired"):
            return _refused(ctx, exc)
        # the challenge is gone: forget it, so the page offers the sign-in form again
        page_ = _refused(ctx, exc, forget_mfa=True)
        page_.headers["Set-Cookie"] = wallet.expired_cookie_header(ctx.deps, wallet.MFA_COOKIE)
        return page_
    response = _redirect(co.base + "#wallet")
    wallet.keep_token(ctx.deps, response, pair)
    return response


@on_both("POST", "/wallet/pay")
def wallet_pay(ctx: PageContext):
    def pay(co: access.Checkout) -> wallet.Payer:
        who = wallet.payer(ctx.deps, ctx.request)      # never raises: None when signed out
        if who is None:
            raise InvalidRequest("not signed in", code="wallet_signed_out")
        wallet.pay(ctx.deps, who, co.intent_id, co.client_secret or "")
        return who

    def paid(co: access.Checkout, who: wallet.Payer) -> flask.Response:
        wallet.end_session(ctx.deps, who, "logout")
        response = _redirect(co.base)
        wallet.clear_cookie(ctx.deps, response, wallet.TOKEN_COOKIE)
        return response
    return _attempt(ctx, pay, paid)


@on_both("POST", "/wallet/signout")
def wallet_signout(ctx: PageContext):
    co = resolve(ctx, with_secret=False)
    who = wallet.payer(ctx.deps, ctx.request)
    if who is not None:
        wallet.end_session(ctx.deps, who, "logout")
    response = _redirect(co.base + "#wallet")
    wallet.clear_cookie(ctx.deps, response, wallet.TOKEN_COOKIE)
    wallet.clear_cookie(ctx.deps, response, wallet.MFA_COOKIE)
    return response


# --- card ----------------------------------------------------------------------------------------
@on_both("POST", "/card")
def card_start(ctx: PageContext):
    return _attempt(ctx, lambda co: card_entry.start(ctx.deps, co.intent, _absolute(ctx, co.base)),
                    lambda co, url: _redirect(url, no_referrer=True))


@on_both("GET", "/card/return")
def card_return(ctx: PageContext):
    """The processor's card page sends the browser here with its session id."""
    return _attempt(ctx, lambda co: card_entry.complete(ctx.deps, ctx.request, co,
                                                        ctx.request.args.get("session", ""),
                                                        _absolute(ctx, co.base)),
                    lambda co, nxt: _redirect(nxt, no_referrer=True) if nxt else _redirect(co.base))


@on_both("GET", "/card/done")
def card_done(ctx: PageContext):
    """Back from 3-D Secure: the page polls until the processor's webhook has paid it."""
    co = resolve(ctx, with_secret=False)
    return _redirect(co.base)


# --- payment links --------------------------------------------------------------------------------
def _link(ctx: PageContext) -> dict[str, Any]:
    try:
        return links.load(ctx.deps, ctx.params["link_id"])
    except NotFound:
        raise NotFound(ctx._("This payment page does not exist."),
                       code="resource_missing") from None


@pages.get("/link/{link_id}")
def link_page(ctx: PageContext):
    return _link_page(ctx, _link(ctx))


def _link_page(ctx: PageContext, doc: dict[str, Any], *, error: str = "", status: int = 200,
               amount: str = "") -> Page:
    merchant = branding.load(ctx.deps, doc["tenant"])
    return Page("checkout/link.html", {
        "merchant": merchant, "livemode": bool(doc["livemode"]),
        "link": links.describe(doc, ctx.lang), "action": f"{ctx.root}/link/{doc['id']}",
        "here": f"{ctx.root}/link/{doc['id']}",
        "error": error, "typed": amount}, status)


@pages.post("/link/{link_id}")
def link_start(ctx: PageContext):
    visitor, fresh = links.visitor(ctx.request)
    try:
        secret = links.start(ctx.deps, ctx.request, ctx.params["link_id"], visitor)
    except PayloomError as exc:
        if exc.status == 404:
            raise NotFound(ctx._("This payment page does not exist."),
                           code="resource_missing") from None
        return _link_page(ctx, _link(ctx), error=message_for(ctx, exc), status=exc.status,
                          amount=(ctx.form.get("amount") or "")[:40])
    response = _redirect(f"{ctx.root}/{secret}")
    if fresh:
        links.set_visitor(ctx.deps, response, visitor)
    return response
