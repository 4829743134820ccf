"""A loopback Stripe: the PaymentIntents HTTP API and signed webhooks, for local runs and tests.

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
    pm_card_authenticationRequired             → requires_action (3-D Secure)

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
SUCCEED = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex"}
DECLINE = {"pm_card_chargeDeclined": "card_declined", "pm_card_visa_chargeDeclined": "card_declined",
           "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds"}
ACTION = {"pm_card_authenticationRequired"}
CURRENCIES = {"usd", "khr", "eur"}


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


class StripeError(Exception):
    def __init__(self, status: int, error: dict[str, Any]):
        super().__init__(error.get("message"))
        self.status, self.error = status, error


class StripeSim:
    def __init__(self, *, api_key: str, webhook_secret: str, webhook_url: str | None,
                 max_attempts: int = 5, retry_delay: float = 0.2):
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.duplicate_deliveries = False     # tests: deliver every event twice
        self.intents: dict[str, dict[str, Any]] = {}
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
        """Wait for all webhook deliveries in flight."""
        deadline = time.time() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.time()))

    # --- API ---------------------------------------------------------------------------
    def _intent_json(self, pi: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(pi))

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
              "payment_method_types": params.get("payment_method_types") or ["card"]}
        with self._lock:
            self.intents[pid] = pi
        if pi["payment_method"]:
            pi["status"] = "requires_confirmation"
            if str(params.get("confirm", "false")).lower() == "true":
                return self.confirm(pid, {})
        return self._intent_json(pi)

    def confirm(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None:
                raise StripeError(404, {"type": "invalid_request_error", "code": "resource_missing",
                                        "param": "intent", "message": f"No such payment_intent: '{pid}'"})
            if params.get("payment_method"):
                pi["payment_method"] = params["payment_method"]
            if pi["status"] in ("succeeded", "canceled", "processing"):
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "payment_intent_unexpected_state",
                                        "message": f"This PaymentIntent's status is {pi['status']}."})
            pm = pi.get("payment_method")
            if not pm:
                raise StripeError(400, {"type": "invalid_request_error", "code": "parameter_missing",
                                        "param": "payment_method",
                                        "message": "You must provide a payment method."})
            if pm in DECLINE:
                err = {"type": "card_error", "code": "card_declined", "decline_code": DECLINE[pm],
                       "message": "Your card was declined.", "payment_method": {"id": pm}}
                pi.update(status="requires_payment_method", last_payment_error=err)
                self._emit("payment_intent.payment_failed", pi)
                raise StripeError(402, {**err, "payment_intent": self._intent_json(pi)})
            if pm in ACTION:
                pi.update(status="requires_action",
                          next_action={"type": "use_stripe_sdk"}, last_payment_error=None)
                return self._intent_json(pi)
            if pm not in SUCCEED:
                raise StripeError(400, {"type": "invalid_request_error", "code": "resource_missing",
                                        "param": "payment_method",
                                        "message": f"No such PaymentMethod: '{pm}'"})
            pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
            self._emit("payment_intent.succeeded", pi)
            return self._intent_json(pi)

    def cancel(self, pid: str) -> dict[str, Any]:
        with self._lock:
            pi = self.intents.get(pid)
            if pi is None:
                raise StripeError(404, {"type": "invalid_request_error", "code": "resource_missing",
                                        "message": f"No such payment_intent: '{pid}'"})
            if pi["status"] == "succeeded":
                raise StripeError(400, {"type": "invalid_request_error",
                                        "code": "payment_intent_unexpected_state",
                                        "message": "You cannot cancel a succeeded PaymentIntent."})
            pi["status"] = "canceled"
            self._emit("payment_intent.canceled", pi)
            return self._intent_json(pi)

    # --- events and webhooks ----------------------------------------------------------
    def _emit(self, etype: str, pi: dict[str, Any]) -> dict[str, Any]:
        event = {"id": _rid("evt"), "object": "event", "api_version": API_VERSION,
                 "created": int(time.time()), "type": etype, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": _rid("req"), "idempotency_key": None},
                 "data": {"object": self._intent_json(pi)}}
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
        try:
            if method == "POST" and parts == ["v1", "payment_intents"]:
                status, out = 200, self.create_intent(params)
            elif method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payment_intents"]:
                with self._lock:
                    pi = self.intents.get(parts[2])
                if pi is None:
                    raise StripeError(404, {"type": "invalid_request_error", "code": "resource_missing",
                                            "message": f"No such payment_intent: '{parts[2]}'"})
                status, out = 200, self._intent_json(pi)
            elif method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "payment_intents"] \
                    and parts[3] == "confirm":
                status, out = 200, self.confirm(parts[2], params)
            elif method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "payment_intents"] \
                    and parts[3] == "cancel":
                status, out = 200, self.cancel(parts[2])
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
            status, out = sim.handle(method, self.path, self.headers, body)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", _rid("req"))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._run("GET")

        def do_POST(self):  # noqa: N802
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
