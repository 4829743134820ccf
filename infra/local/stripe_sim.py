"""A loopback Stripe: PaymentIntents, 3-D Secure, refunds, disputes and signed webhooks, for local
runs and tests.

It speaks the real protocol so the production adapter (``shared/adapters/stripe_cards.py``) is the code
under test: form-encoded POSTs, ``Authorization: Bearer sk_…`` (or HTTP Basic with the key as
user), ``Idempotency-Key`` (same key + same params → the stored response, replayed; same key +
other params → 400 ``idempotency_error``), Stripe-shaped errors (402 ``card_error`` with the
PaymentIntent attached), and events delivered to the configured endpoint with
``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(whsec, "t.body")>``, retried on failure.

Test payment methods (as Stripe's test mode):
    pm_card_visa, pm_card_mastercard          → succeeded
    pm_card_chargeDeclined, pm_card_visa_chargeDeclined → declined (card_declined)
    pm_card_chargeDeclinedInsufficientFunds    → declined (insufficient_funds)
    pm_card_authenticationRequired, pm_card_threeDSecure2Required, pm_card_threeDSecureRequired
                                               → requires_action (3-D Secure)
    pm_card_createDispute                      → succeeded, then a dispute is opened at once
    pm_card_refundFail                         → succeeded; its refunds go pending, then fail

3-D Secure: confirming with ``return_url`` answers ``requires_action`` with
``next_action.redirect_to_url.url`` = ``<sim>/_sim/3ds/<pi>`` (without it: ``use_stripe_sdk``).
That page needs no API key (it is the payer's browser); ``POST /_sim/3ds/<pi>/complete`` (form
``outcome=succeed|fail``) finishes the challenge, sends the webhook (``payment_intent.succeeded``,
or ``payment_intent.payment_failed`` with ``payment_intent_authentication_failure``) and
redirects (302) to ``return_url?payment_intent=…&payment_intent_client_secret=…
&redirect_status=succeeded|failed``.

Every confirmation attempt makes a Charge (``ch_…``, the PaymentIntent's metadata copied onto
it): ``latest_charge`` of a succeeded intent, ``last_payment_error.charge`` of a declined one.
Refunds: ``POST /v1/refunds`` {payment_intent, amount?, reason?, metadata} → ``refund.created``
and ``charge.refunded`` (a refund of a ``pm_card_refundFail`` payment stays pending, then
``refund.updated`` + ``refund.failed``); ``GET /v1/refunds/<id>``. Disputes: ``POST
/_sim/disputes`` {payment_intent, amount?, reason?} opens one (``charge.dispute.created``);
``POST /_sim/disputes/<dp>/close`` {outcome: won|lost}, or the merchant accepting it with
``POST /v1/disputes/<dp>/close`` (lost), closes it (``charge.dispute.closed``); ``GET
/v1/disputes/<dp>``. The ``/_sim/disputes`` control routes take the API key too.

Hosted card entry (Stripe Checkout in ``setup`` mode, for the hosted payment page): ``POST
/v1/checkout/sessions`` {mode=setup, success_url, cancel_url, currency?, metadata} answers a
``checkout.session`` whose ``url`` (``<sim>/_sim/checkout/<cs>``, no API key: the payer's browser)
shows a card form (number, expiry, CVC). Submitting it creates a PaymentMethod ``pm_…`` (its
behaviour chosen by Stripe's test card numbers, ``TEST_CARDS``), succeeds the session's
SetupIntent ``seti_…`` and redirects (303) to ``success_url`` with ``{CHECKOUT_SESSION_ID}``
replaced. ``GET /v1/checkout/sessions/<cs>?expand[]=setup_intent``, ``GET
/v1/setup_intents/<seti>`` and ``GET /v1/payment_methods/<pm>`` read them back; confirming a
PaymentIntent with such a ``pm_…`` behaves like the test payment method of its number.

Standard library only; listens on 127.0.0.1. ``start(port=0)`` returns a running ``StripeSim``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "2024-06-20"
DISPUTE_AT_ONCE = {"pm_card_createDispute"}
REFUND_FAILS = {"pm_card_refundFail"}
SUCCEED = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex"} | DISPUTE_AT_ONCE | REFUND_FAILS
DECLINE = {"pm_card_chargeDeclined": "card_declined", "pm_card_visa_chargeDeclined": "card_declined",
           "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds"}
ACTION = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required",
          "pm_card_threeDSecureRequired"}
CURRENCIES = {"usd", "khr", "eur"}
# Stripe's test card numbers → the test payment method whose behaviour they have.
TEST_CARDS = {"4242424242424242": ("visa", "pm_card_visa"),
              "5555555555554444": ("mastercard", "pm_card_mastercard"),
              "4000000000000002": ("visa", "pm_card_chargeDeclined"),
              "4000000000009995": ("visa", "pm_card_chargeDeclinedInsufficientFunds"),
              "4000002760003184": ("visa", "pm_card_authenticationRequired"),
              "4000000000003220": ("visa", "pm_card_threeDSecure2Required"),
              "4000000000000259": ("visa", "pm_card_createDispute")}


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _rid(prefix: str) -> str:
    return f"{prefix}_" + secrets.token_hex(12)


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _parse_form(body: bytes) -> dict[str, Any]:
    """Stripe-style nested form: a[b]=c → {"a": {"b": "c"}}, a[]=x → {"a": ["x"]}."""
    out: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
        if key.endswith("[]"):
            out.setdefault(key[:-2], []).append(value)
        elif "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            out.setdefault(outer, {})[inner] = value
        else:
            out[key] = value
    return out


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(obj))


class StripeError(Exception):
    def __init__(self, status: int, error: dict[str, Any]):
        super().__init__(error.get("message"))
        self.status, self.error = status, error


def _missing(kind: str, oid: str, param: str | None = None) -> StripeError:
    err = {"type": "invalid_request_error", "code": "resource_missing",
           "message": f"No such {kind}: '{oid}'"}
    if param:
        err["param"] = param
    return StripeError(404, err)


class StripeSim:
    def __init__(self, *, api_key: str, webhook_secret: str, webhook_url: str | None,
                 max_attempts: int = 5, retry_delay: float = 0.2):
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.duplicate_deliveries = False     # tests: deliver every event twice
        self.refund_failure_delay = 0.3       # seconds before a pm_card_refundFail refund fails
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}         # checkout sessions (setup mode)
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}  # made by the hosted card form
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []   # {event_id, attempt, status}
        self._idem: dict[str, tuple[str, int, dict]] = {}
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self.server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for all webhook deliveries in flight (and those they started: a failing refund)."""
        deadline = time.time() + timeout
        joined: set[int] = set()
        while time.time() < deadline:
            pending = [t for t in list(self._threads) if id(t) not in joined]
            if not pending:
                return
            for t in pending:
                t.join(max(0.0, deadline - time.time()))
                joined.add(id(t))

    # --- payment intents -------------------------------------------------------------------
    def _intent_json(self, pi: dict[str, Any]) -> dict[str, Any]:
        return _copy(pi)

    def create_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_invalid_integer",
                                    "param": "amount", "message": "Invalid integer: amount"}) from None
        if amount < 1:
            raise StripeError(400, {"type": "invalid_request_error", "code": "amount_too_small",
                                    "param": "amount", "message": "Amount must be at least 1."})
        currency = str(params.get("currency", "")).lower()
        if currency not in CURRENCIES:
            raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_invalid",
                                    "param": "currency", "message": f"Invalid currency: {currency}"})
        pid = _rid("pi")
        pi = {"id": pid, "object": "payment_intent", "amount": amount, "amount_received": 0,
              "currency": currency, "status": "requires_payment_method",
              "client_secret": f"{pid}_secret_{secrets.token_hex(8)}", "created": int(time.time()),
              "livemode": False, "metadata": dict(params.get("metadata") or {}),
              "payment_method": params.get("payment_method"), "last_payment_error": None,
              "next_action": None, "latest_charge": None,
              "payment_method_types": params.get("payment_method_types") or ["card"]}
        with self._lock:
            self.intents[pid] = pi
        if pi["payment_method"]:
            pi["status"] = "requires_confirmation"
            if str(params.get("confirm", "false")).lower() == "true":
                return self.confirm(pid, {"return_url": params.get("return_url")})
        return self._intent_json(pi)

    def confirm(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None:
                raise _missing("payment_intent", pid, "intent")
            if pi["status"] in ("succeeded", "canceled", "processing"):
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "payment_intent_unexpected_state",
                                        "message": f"This PaymentIntent's status is {pi['status']}."})
            if params.get("payment_method"):
                pi["payment_method"] = params["payment_method"]
            if params.get("return_url"):
                pi["return_url"] = params["return_url"]
            pm = self.behaviour(pi.get("payment_method"))
            if not pm:
                raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_missing",
                                        "param": "payment_method",
                                        "message": "You must provide a payment method."})
            if pm in DECLINE:
                charge = self._charge(pi, "failed")
                err = {"type": "card_error", "code": "card_declined", "decline_code": DECLINE[pm],
                       "message": "Your card was declined.",
                       "payment_method": {"id": pi.get("payment_method")},
                       "charge": charge["id"]}
                pi.update(status="requires_payment_method", last_payment_error=err,
                          next_action=None)
                self._emit("payment_intent.payment_failed", pi)
                raise StripeError(402, {**err, "payment_intent": self._intent_json(pi)})
            if pm in ACTION:
                if pi.get("return_url"):
                    action = {"type": "redirect_to_url", "redirect_to_url": {
                        "url": f"{self.url}/_sim/3ds/{pid}", "return_url": pi["return_url"]}}
                else:
                    action = {"type": "use_stripe_sdk"}
                pi.update(status="requires_action", next_action=action, last_payment_error=None)
                self._emit("payment_intent.requires_action", pi)
                return self._intent_json(pi)
            if pm not in SUCCEED:
                raise StripeError(400, {"type": "invalid_request_error", "code": "resource_missing",
                                        "param": "payment_method",
                                        "message": "No such PaymentMethod: "
                                                   f"'{pi.get('payment_method')}'"})
            self._succeed(pi)
            return self._intent_json(pi)

    def cancel(self, pid: str) -> dict[str, Any]:
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None:
                raise _missing("payment_intent", pid)
            if pi["status"] == "succeeded":
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "payment_intent_unexpected_state",
                                        "message": "You cannot cancel a succeeded PaymentIntent."})
            pi.update(status="canceled", next_action=None)
            self._emit("payment_intent.canceled", pi)
            return self._intent_json(pi)

    def _charge(self, pi: dict[str, Any], status: str) -> dict[str, Any]:
        """One confirmation attempt's Charge (the PaymentIntent's metadata copied onto it)."""
        ch = {"id": _rid("ch"), "object": "charge", "amount": pi["amount"],
              "amount_captured": pi["amount"] if status == "succeeded" else 0,
              "amount_refunded": 0, "currency": pi["currency"], "payment_intent": pi["id"],
              "payment_method": pi.get("payment_method"), "status": status,
              "paid": status == "succeeded", "refunded": False, "disputed": False,
              "metadata": dict(pi.get("metadata") or {}), "created": int(time.time()),
              "livemode": False}
        self.charges[ch["id"]] = ch
        return ch

    def _succeed(self, pi: dict[str, Any]) -> None:
        charge = self._charge(pi, "succeeded")
        pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None,
                  next_action=None, latest_charge=charge["id"])
        self._emit("payment_intent.succeeded", pi)
        if self.behaviour(pi.get("payment_method")) in DISPUTE_AT_ONCE:
            self.open_dispute(pi["id"], {})

    # --- 3-D Secure ------------------------------------------------------------------------
    def complete_3ds(self, pid: str, succeed: bool = True) -> dict[str, Any]:
        """The payer finishes (or fails) the challenge of a requires_action intent."""
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None or pi["status"] != "requires_action":
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "payment_intent_unexpected_state",
                                        "message": "This PaymentIntent is not awaiting "
                                                   "authentication."})
            if succeed:
                self._succeed(pi)
            else:
                charge = self._charge(pi, "failed")
                err = {"type": "invalid_request_error",
                       "code": "payment_intent_authentication_failure",
                       "message": "The provided PaymentMethod has failed authentication.",
                       "payment_method": {"id": pi.get("payment_method")},
                       "charge": charge["id"]}
                pi.update(status="requires_payment_method", last_payment_error=err,
                          next_action=None)
                self._emit("payment_intent.payment_failed", pi)
            return self._intent_json(pi)

    def threeds_page(self, method: str, parts: list[str],
                     body: bytes) -> tuple[int, dict[str, str], bytes]:
        """``/_sim/3ds/<pi>`` (GET: the challenge page) and ``/_sim/3ds/<pi>/complete`` (POST)."""
        pid = parts[2] if len(parts) >= 3 else ""
        with self._lock:
            pi = self.intents.get(pid)
        text = {"Content-Type": "text/plain; charset=utf-8"}
        if pi is None:
            return 404, text, b"unknown payment"
        if method == "GET" and len(parts) == 3:
            page = (f"<!doctype html><link rel=icon href='data:,'><title>3-D Secure</title>"
                    f"<h1>Authenticate "
                    f"{pi['amount']} {pi['currency'].upper()}</h1>"
                    f"<form method=post action=/_sim/3ds/{pid}/complete>"
                    f"<button name=outcome value=succeed>Complete</button>"
                    f"<button name=outcome value=fail>Fail</button></form>").encode()
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        if method == "POST" and len(parts) == 4 and parts[3] == "complete":
            outcome = _parse_form(body).get("outcome", "succeed") if body else "succeed"
            try:
                out = self.complete_3ds(pid, succeed=outcome != "fail")
            except StripeError as exc:
                return exc.status, {"Content-Type": "application/json"}, \
                    json.dumps({"error": exc.error}).encode()
            back = pi.get("return_url")
            if not back:
                return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
            query = urllib.parse.urlencode({
                "payment_intent": pid, "payment_intent_client_secret": pi["client_secret"],
                "redirect_status": "succeeded" if out["status"] == "succeeded" else "failed"})
            return 302, {**text, "Location": f"{back}{'&' if '?' in back else '?'}{query}"}, b""
        return 404, text, b"not found"

    # --- hosted card entry (Checkout Sessions in setup mode) -------------------------------
    def behaviour(self, pm: str | None) -> str | None:
        """The test payment method a ``pm_…`` behaves as (itself for Stripe's named ones)."""
        made = self.payment_methods.get(pm or "")
        return made["behaviour"] if made else pm

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "setup":
            raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_invalid",
                                    "param": "mode",
                                    "message": "This simulator hosts setup-mode sessions only."})
        for name in ("success_url", "cancel_url"):
            url = str(params.get(name) or "")
            if not url.startswith(("http://", "https://")):
                raise StripeError(400, {"type": "invalid_request_error", "code": "url_invalid",
                                        "param": name, "message": f"Not a valid URL: {name}"})
        cs, seti = _rid("cs_test"), _rid("seti")
        now = int(time.time())
        with self._lock:
            self.setup_intents[seti] = {"id": seti, "object": "setup_intent",
                                        "status": "requires_payment_method", "payment_method": None,
                                        "metadata": dict(params.get("metadata") or {}),
                                        "created": now, "livemode": False}
            self.sessions[cs] = {"id": cs, "object": "checkout.session", "mode": "setup",
                                 "status": "open", "url": f"{self.url}/_sim/checkout/{cs}",
                                 "success_url": params["success_url"],
                                 "cancel_url": params["cancel_url"],
                                 "currency": str(params.get("currency") or "usd").lower(),
                                 "setup_intent": seti, "metadata": dict(params.get("metadata") or {}),
                                 "created": now, "expires_at": now + 86400, "livemode": False}
            return _copy(self.sessions[cs])

    def session_json(self, cs: str, query: str) -> dict[str, Any]:
        session = self._get(self.sessions, cs, "checkout.session")
        if "setup_intent" in urllib.parse.parse_qs(query).get("expand[]", []):
            session["setup_intent"] = self._get(self.setup_intents, session["setup_intent"],
                                                "setup_intent")
        return session

    def complete_session(self, cs: str, form: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The payer submitted the card form: (the session, an error message or "")."""
        with self._lock:
            session = self.sessions.get(cs)
            if session is None or session["status"] != "open":
                return session or {}, "This checkout session is no longer open."
            number = "".join(str(form.get("number") or "").split())
            exp = str(form.get("exp") or "").replace(" ", "")
            month, _, year = exp.partition("/")
            if not luhn_ok(number):
                return session, "Your card number is invalid."
            if not (month.isdigit() and year.isdigit() and 1 <= int(month) <= 12
                    and 2000 + int(year[-2:]) >= time.gmtime().tm_year):
                return session, "Your card's expiration date is invalid."
            if not (str(form.get("cvc") or "").isdigit() and 3 <= len(str(form["cvc"])) <= 4):
                return session, "Your card's security code is invalid."
            brand, behaviour = TEST_CARDS.get(number, ("visa", "pm_card_visa"))
            pm = _rid("pm")
            self.payment_methods[pm] = {
                "id": pm, "object": "payment_method", "type": "card", "behaviour": behaviour,
                "card": {"brand": brand, "last4": number[-4:], "exp_month": int(month),
                         "exp_year": 2000 + int(year[-2:])}, "created": int(time.time())}
            seti = self.setup_intents[session["setup_intent"]]
            seti.update(status="succeeded", payment_method=pm)
            session["status"] = "complete"
            self._emit("setup_intent.succeeded", seti)
            self._emit("checkout.session.completed", session)
            return _copy(session), ""

    def checkout_page(self, method: str, parts: list[str],
                      body: bytes) -> tuple[int, dict[str, str], bytes]:
        """``/_sim/checkout/<cs>`` (GET: the card form) and ``.../complete`` (POST)."""
        cs = parts[2] if len(parts) >= 3 else ""
        with self._lock:
            session = _copy(self.sessions[cs]) if cs in self.sessions else None
        text = {"Content-Type": "text/plain; charset=utf-8"}
        if session is None:
            return 404, text, b"unknown checkout session"
        if method == "POST" and len(parts) == 4 and parts[3] == "complete":
            form = _parse_form(body) if body else {}
            done, error = self.complete_session(cs, form)
            if not error:
                back = done["success_url"].replace("{CHECKOUT_SESSION_ID}", cs)
                return 303, {**text, "Location": back}, b""
            return 400, {"Content-Type": "text/html; charset=utf-8"}, \
                self._card_form(session, error).encode()
        if method == "GET" and len(parts) == 3:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, \
                self._card_form(session, "").encode()
        return 404, text, b"not found"

    @staticmethod
    def _card_form(session: dict[str, Any], error: str) -> str:
        import html
        cs = html.escape(session["id"])
        alert = f'<p role="alert" id="error">{html.escape(error)}</p>' if error else ""
        if session.get("status") != "open":
            return (f"<!doctype html><html lang=en><title>Card details</title><main>"
                    f"<h1>Card details</h1>{alert or '<p>This session is closed.</p>'}</main>")
        return (f"<!doctype html><html lang=en><meta charset=utf-8><link rel=icon href='data:,'>"
                f"<meta name=viewport content='width=device-width'><title>Card details</title>"
                f"<main><h1>Card details (test processor)</h1>{alert}"
                f"<form method=post action=/_sim/checkout/{cs}/complete>"
                f"<p><label for=number>Card number</label><br>"
                f"<input id=number name=number inputmode=numeric autocomplete=cc-number required></p>"
                f"<p><label for=exp>Expiry (MM/YY)</label><br>"
                f"<input id=exp name=exp autocomplete=cc-exp required></p>"
                f"<p><label for=cvc>Security code</label><br>"
                f"<input id=cvc name=cvc inputmode=numeric autocomplete=cc-csc required></p>"
                f"<p><button type=submit id=save>Continue</button> "
                f"<a href=\"{html.escape(session['cancel_url'])}\">Cancel</a></p></form></main>")

    # --- refunds ---------------------------------------------------------------------------
    def create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pid = str(params.get("payment_intent") or "")
            pi = self.intents.get(pid)
            if pi is None and params.get("charge") in self.charges:
                pi = self.intents.get(self.charges[params["charge"]]["payment_intent"])
            if pi is None:
                if not pid:
                    raise StripeError(400, {"type": "invalid_request_error",
                                            "code": "parameter_missing", "param": "payment_intent",
                                            "message": "One of charge or payment_intent is "
                                                       "required."})
                raise _missing("payment_intent", pid, "payment_intent")
            if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "charge_not_refundable", "param": "payment_intent",
                                        "message": "This PaymentIntent has no successful charge "
                                                   "to refund."})
            charge = self.charges[pi["latest_charge"]]
            in_flight = sum(r["amount"] for r in self.refunds.values()
                            if r["charge"] == charge["id"] and r["status"] == "pending")
            left = charge["amount"] - charge["amount_refunded"] - in_flight
            if left <= 0:
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "charge_already_refunded",
                                        "message": f"Charge {charge['id']} has already been "
                                                   "refunded."})
            raw = params.get("amount")
            try:
                amount = left if raw in (None, "") else int(raw)
            except (TypeError, ValueError):
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "parameter_invalid_integer", "param": "amount",
                                        "message": "Invalid integer: amount"}) from None
            if amount < 1:
                raise StripeError(400, {"type": "invalid_request_error", "code": "amount_too_small",
                                        "param": "amount", "message": "Amount must be at least 1."})
            if amount > left:
                raise StripeError(400, {"type": "invalid_request_error", "code": "amount_too_large",
                                        "param": "amount",
                                        "message": f"Refund amount ({amount}) is greater than "
                                                   f"unrefunded amount on charge ({left})"})
            fails = self.behaviour(pi.get("payment_method")) in REFUND_FAILS
            refund = {"id": _rid("re"), "object": "refund", "amount": amount,
                      "currency": charge["currency"], "charge": charge["id"],
                      "payment_intent": pi["id"], "reason": params.get("reason"),
                      "status": "pending" if fails else "succeeded", "failure_reason": None,
                      "metadata": dict(params.get("metadata") or {}),
                      "created": int(time.time())}
            self.refunds[refund["id"]] = refund
            self._emit("refund.created", refund)
            if fails:
                timer = threading.Timer(self.refund_failure_delay, self._fail_refund,
                                        (refund["id"],))
                timer.daemon = True
                self._threads.append(timer)
                timer.start()
            else:
                charge["amount_refunded"] += amount
                charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
                self._emit("charge.refunded", {**charge, "refunds": {
                    "object": "list", "data": [r for r in self.refunds.values()
                                               if r["charge"] == charge["id"]]}})
            return _copy(refund)

    def _fail_refund(self, refund_id: str) -> None:
        with self._lock:
            refund = self.refunds[refund_id]
            if refund["status"] != "pending":
                return
            refund.update(status="failed", failure_reason="expired_or_canceled_card")
            self._emit("refund.updated", refund)
            self._emit("refund.failed", refund)

    # --- disputes --------------------------------------------------------------------------
    def open_dispute(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        """The cardholder disputes a succeeded payment → ``charge.dispute.created``."""
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None or pi["status"] != "succeeded":
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "charge_not_disputable", "param": "payment_intent",
                                        "message": "Only a succeeded payment can be disputed."})
            charge = self.charges[pi["latest_charge"]]
            try:
                amount = int(params.get("amount") or charge["amount"])
            except (TypeError, ValueError):
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "parameter_invalid_integer", "param": "amount",
                                        "message": "Invalid integer: amount"}) from None
            now = int(time.time())
            dispute = {"id": _rid("dp"), "object": "dispute", "amount": amount,
                       "currency": charge["currency"], "charge": charge["id"],
                       "payment_intent": pid, "reason": params.get("reason") or "fraudulent",
                       "status": "needs_response", "created": now, "livemode": False,
                       "is_charge_refundable": False, "metadata": {},
                       "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False,
                                            "past_due": False, "submission_count": 0}}
            self.disputes[dispute["id"]] = dispute
            charge["disputed"] = True
            self._emit("charge.dispute.created", dispute)
            return _copy(dispute)

    def close_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        """Close a dispute won or lost → ``charge.dispute.closed`` (once)."""
        with self._lock:
            dispute = self.disputes.get(dispute_id)
            if dispute is None:
                raise _missing("dispute", dispute_id)
            if outcome not in ("won", "lost"):
                raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_invalid",
                                        "param": "outcome", "message": "outcome is won or lost."})
            if dispute["status"] not in ("won", "lost"):
                dispute["status"] = outcome
                self._emit("charge.dispute.closed", dispute)
            return _copy(dispute)

    # --- events and webhooks ----------------------------------------------------------
    def _emit(self, etype: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {"id": _rid("evt"), "object": "event", "api_version": API_VERSION,
                 "created": int(time.time()), "type": etype, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": _rid("req"), "idempotency_key": None},
                 "data": {"object": _copy(obj)}}
        self.events.append(event)
        copies = 2 if self.duplicate_deliveries else 1
        for _ in range(copies):
            self._deliver_async(event)
        return event

    def resend(self, event_id: str) -> None:
        """Deliver an event again (Stripe may deliver any event more than once)."""
        event = next(e for e in self.events if e["id"] == event_id)
        self._deliver_async(event)

    def _deliver_async(self, event: dict[str, Any]) -> None:
        if not self.webhook_url:
            return
        t = threading.Thread(target=self._deliver, args=(event,), daemon=True)
        self._threads.append(t)
        t.start()

    def _deliver(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, separators=(",", ":")).encode()
        for attempt in range(1, self.max_attempts + 1):
            header = sign(self.webhook_secret, payload, int(time.time()))
            req = urllib.request.Request(self.webhook_url, data=payload, method="POST", headers={
                "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
            try:
                with urllib.request.urlopen(req, timeout=15) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            with self._lock:
                self.deliveries.append({"event_id": event["id"], "attempt": attempt,
                                        "status": status})
            if 200 <= status < 300:
                return
            time.sleep(self.retry_delay * attempt)

    # --- HTTP ------------------------------------------------------------------------
    def authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.api_key.encode())
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value.strip()).decode().split(":", 1)[0]
            except ValueError:
                return False
            return hmac.compare_digest(user.encode(), self.api_key.encode())
        return False

    def _get(self, table: dict[str, dict[str, Any]], oid: str, kind: str) -> dict[str, Any]:
        with self._lock:
            obj = table.get(oid)
            if obj is None:
                raise _missing(kind, oid)
            return _copy(obj)

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path.split("?")[0] == "/_health":
            return 200, {"ok": True, "intents": len(self.intents), "events": len(self.events)}
        if not self.authorized(headers.get("Authorization", "")):
            return 401, {"error": {"type": "invalid_request_error",
                                   "message": "Invalid API Key provided."}}
        params = _parse_form(body) if body else {}
        key = headers.get("Idempotency-Key") if method == "POST" else None
        fp = hashlib.sha256(f"{method} {path} {sorted(params.items(), key=str)}".encode()).hexdigest()
        if key:
            with self._lock:
                seen = self._idem.get(key)
            if seen:
                if seen[0] != fp:
                    return 400, {"error": {"type": "idempotency_error",
                                           "message": "Keys for idempotent requests can only be "
                                                      "used with the same parameters they were "
                                                      "first used with."}}
                return seen[1], seen[2]
        parts = [p for p in path.split("?")[0].split("/") if p]
        pi_path = len(parts) >= 3 and parts[:2] == ["v1", "payment_intents"]
        try:
            if method == "POST" and parts == ["v1", "payment_intents"]:
                status, out = 200, self.create_intent(params)
            elif method == "GET" and pi_path and len(parts) == 3:
                status, out = 200, self._get(self.intents, parts[2], "payment_intent")
            elif method == "POST" and pi_path and len(parts) == 4 and parts[3] == "confirm":
                status, out = 200, self.confirm(parts[2], params)
            elif method == "POST" and pi_path and len(parts) == 4 and parts[3] == "cancel":
                status, out = 200, self.cancel(parts[2])
            elif method == "POST" and parts == ["v1", "checkout", "sessions"]:
                status, out = 200, self.create_session(params)
            elif method == "GET" and len(parts) == 4 and parts[:3] == ["v1", "checkout", "sessions"]:
                status, out = 200, self.session_json(parts[3], path.partition("?")[2])
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "setup_intents"]:
                status, out = 200, self._get(self.setup_intents, parts[2], "setup_intent")
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payment_methods"]:
                out = self._get(self.payment_methods, parts[2], "payment_method")
                out.pop("behaviour", None)
                status = 200
            elif method == "POST" and parts == ["v1", "refunds"]:
                status, out = 200, self.create_refund(params)
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "refunds"]:
                status, out = 200, self._get(self.refunds, parts[2], "refund")
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "charges"]:
                status, out = 200, self._get(self.charges, parts[2], "charge")
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "disputes"]:
                status, out = 200, self._get(self.disputes, parts[2], "dispute")
            elif method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "disputes"] \
                    and parts[3] == "close":
                status, out = 200, self.close_dispute(parts[2], "lost")
            elif method == "POST" and parts == ["_sim", "disputes"]:
                status, out = 200, self.open_dispute(str(params.get("payment_intent") or ""),
                                                     params)
            elif method == "POST" and len(parts) == 4 and parts[:2] == ["_sim", "disputes"] \
                    and parts[3] == "close":
                status, out = 200, self.close_dispute(parts[2], str(params.get("outcome") or ""))
            else:
                raise StripeError(404, {"type": "invalid_request_error",
                                        "message": f"Unrecognized request URL ({method}: {path})."})
        except StripeError as exc:
            status, out = exc.status, {"error": exc.error}
        if key and status < 500:
            with self._lock:
                self._idem[key] = (fp, status, out)
        return status, out


def _handler_for(sim: StripeSim):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _run(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if parts[:2] == ["_sim", "3ds"]:          # the payer's browser: no API key
                status, headers, data = sim.threeds_page(method, parts, body)
            elif parts[:2] == ["_sim", "checkout"]:   # the hosted card form: no API key either
                status, headers, data = sim.checkout_page(method, parts, body)
            else:
                status, out = sim.handle(method, self.path, self.headers, body)
                headers, data = {"Content-Type": "application/json"}, json.dumps(out).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", _rid("req"))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._run("GET")

        def do_POST(self):
            self._run("POST")

        def log_message(self, *args):  # quiet
            pass
    return Handler


def start(port: int = 0, *, api_key: str = "sk_test_local", webhook_secret: str | None = None,
          webhook_url: str | None = None) -> StripeSim:
    """Start the simulator on 127.0.0.1 (``port=0``: a free port) in a daemon thread."""
    sim = StripeSim(api_key=api_key, webhook_secret=webhook_secret or "whsec_" + secrets.token_hex(24),
                    webhook_url=webhook_url)
    sim.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(sim))
    sim.server.daemon_threads = True
    threading.Thread(target=sim.server.serve_forever, daemon=True).start()
    return sim


def main(argv: list[str] | None = None) -> None:
    """``python -m infra.local.stripe_sim --port N [--webhook-url URL]`` (as the local stack runs
    its simulators). The webhook URL may also come from ``PAYLOOM_STRIPE_WEBHOOK_URL``."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_local")
    parser.add_argument("--webhook-secret", default="whsec_local")
    parser.add_argument("--webhook-url", default=os.environ.get("PAYLOOM_STRIPE_WEBHOOK_URL"))
    args = parser.parse_args(argv)
    sim = start(args.port, api_key=args.api_key, webhook_secret=args.webhook_secret,
                webhook_url=args.webhook_url)
    print(f"stripe sim on {sim.url}, webhooks to {args.webhook_url or '(none)'}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
