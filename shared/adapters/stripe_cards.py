"""Stripe-protocol card payments client (the wallet's top-up provider and the card method of
merchant payment intents in production).

``StripeTopUpProvider`` speaks Stripe's PaymentIntents HTTP API (form-encoded, ``Authorization: Bearer sk_…``,
``Idempotency-Key``) and verifying Stripe's webhook signatures
(``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``, 5 min tolerance).
Locally and in tests it talks to ``infra/local/stripe_sim.py``, which speaks the same protocol,
so this adapter is the code under test. It reads no settings: the caller passes the keys and
the base URL (``shared.wallet.config.topup_provider``).

Beyond PaymentIntents: Checkout Sessions in ``setup`` mode (``create_setup_session``,
``retrieve_session``: the hosted payment page's card entry, where the payer types the card on
the processor's own page), refunds (``create_refund``/``retrieve_refund``: helper F's card refunds)
and disputes (``retrieve_dispute``, ``close_dispute`` = accept it; ``Dispute.from_json`` parses
the object of ``charge.dispute.*`` events). Parsing never trusts a field's type: a provider
object that is not shaped as documented is a ``ValueError`` (the inbox dead-letters it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import urllib.parse
from typing import Any, Mapping

import requests

from shared.platform.errors import AuthenticationError, InvalidRequest, ServiceUnavailable

DEFAULT_TOLERANCE_SECONDS = 300


@dataclasses.dataclass
class PaymentIntent:
    id: str
    status: str              # requires_payment_method | requires_confirmation | requires_action
    amount: int              # | processing | succeeded | canceled
    currency: str
    client_secret: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    last_payment_error: dict[str, Any] | None = None
    # requires_action: {"type": "redirect_to_url", "redirect_to_url": {"url", "return_url"}}
    next_action: dict[str, Any] | None = None
    latest_charge: str | None = None
    livemode: bool = False

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "PaymentIntent":
        next_action = obj.get("next_action")
        charge = obj.get("latest_charge")
        if isinstance(charge, Mapping):           # expanded
            charge = charge.get("id")
        return cls(id=obj["id"], status=obj["status"], amount=int(obj["amount"]),
                   currency=obj["currency"], client_secret=obj.get("client_secret"),
                   metadata=dict(obj.get("metadata") or {}),
                   last_payment_error=obj.get("last_payment_error"),
                   next_action=dict(next_action) if isinstance(next_action, Mapping) else None,
                   latest_charge=charge if isinstance(charge, str) else None,
                   livemode=obj.get("livemode") is True)

    @property
    def redirect_url(self) -> str | None:
        """Where the payer authenticates (3-D Secure), when the processor asks for a redirect."""
        na = self.next_action or {}
        target = na.get("redirect_to_url") if na.get("type") == "redirect_to_url" else None
        url = target.get("url") if isinstance(target, Mapping) else None
        return url if isinstance(url, str) else None


def _str(obj: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if isinstance(value, Mapping):                # an expanded object: its id
        value = value.get("id")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is not a string")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value


@dataclasses.dataclass
class Refund:
    """Stripe's Refund: ``status`` pending | requires_action | succeeded | failed | canceled."""
    id: str
    status: str
    amount: int
    currency: str
    payment_intent: str | None = None
    charge: str | None = None
    reason: str | None = None
    failure_reason: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Refund":
        if not isinstance(obj, Mapping) or obj.get("object", "refund") != "refund":
            raise ValueError("not a refund object")
        md = obj.get("metadata")
        return cls(id=_str(obj, "id"), status=_str(obj, "status"), amount=_int(obj, "amount"),
                   currency=_str(obj, "currency").lower(),
                   payment_intent=_str(obj, "payment_intent", required=False),
                   charge=_str(obj, "charge", required=False),
                   reason=obj.get("reason") if isinstance(obj.get("reason"), str) else None,
                   failure_reason=obj.get("failure_reason")
                   if isinstance(obj.get("failure_reason"), str) else None,
                   metadata={str(k): str(v) for k, v in md.items()} if isinstance(md, Mapping) else {})


DISPUTE_CLOSED = {"won": "won", "lost": "lost", "warning_closed": "won"}


@dataclasses.dataclass
class Dispute:
    """Stripe's Dispute (the object of ``charge.dispute.*`` events). ``status``:
    warning_needs_response | warning_under_review | warning_closed | needs_response |
    under_review | won | lost. ``outcome`` is won/lost once closed (an inquiry closed without
    becoming a chargeback, ``warning_closed``, counts as won: the merchant keeps the money)."""
    id: str
    status: str
    amount: int
    currency: str
    payment_intent: str | None
    charge: str | None
    reason: str | None = None
    created: int | None = None
    evidence_due_by: int | None = None
    livemode: bool = False

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Dispute":
        if not isinstance(obj, Mapping) or obj.get("object") != "dispute":
            raise ValueError("not a dispute object")
        details = obj.get("evidence_details")
        due = details.get("due_by") if isinstance(details, Mapping) else None
        created = obj.get("created")
        return cls(id=_str(obj, "id"), status=_str(obj, "status"), amount=_int(obj, "amount"),
                   currency=_str(obj, "currency").lower(),
                   payment_intent=_str(obj, "payment_intent", required=False),
                   charge=_str(obj, "charge", required=False),
                   reason=obj.get("reason") if isinstance(obj.get("reason"), str) else None,
                   created=created if isinstance(created, int) and not isinstance(created, bool)
                   else None,
                   evidence_due_by=due if isinstance(due, int) and not isinstance(due, bool)
                   else None,
                   livemode=obj.get("livemode") is True)

    @property
    def outcome(self) -> str | None:
        return DISPUTE_CLOSED.get(self.status)


@dataclasses.dataclass
class CheckoutSession:
    """Stripe's Checkout Session as the card entry uses it (``setup`` mode). ``status``: open |
    complete | expired. ``payment_method`` is known once the session is complete and was read
    with its ``setup_intent`` expanded."""
    id: str
    status: str | None
    url: str | None
    metadata: dict[str, str]
    setup_intent: str | None = None
    payment_method: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> "CheckoutSession":
        if not isinstance(obj, Mapping) or obj.get("object", "checkout.session") != "checkout.session":
            raise ValueError("not a checkout session")
        md = obj.get("metadata")
        seti = obj.get("setup_intent")
        pm = seti.get("payment_method") if isinstance(seti, Mapping) else None
        if isinstance(pm, Mapping):
            pm = pm.get("id")
        status, url = obj.get("status"), obj.get("url")
        return cls(id=_str(obj, "id"), status=status if isinstance(status, str) else None,
                   url=url if isinstance(url, str) else None,
                   metadata={str(k): str(v) for k, v in md.items()} if isinstance(md, Mapping) else {},
                   setup_intent=_str(obj, "setup_intent", required=False),
                   payment_method=pm if isinstance(pm, str) else None)


def parse_dispute(obj: Any) -> Dispute:
    return Dispute.from_json(obj)


class ProviderDeclined(Exception):
    """The provider refused the payment (card declined): a final answer, not an outage."""

    def __init__(self, code: str, message: str, intent: PaymentIntent | None):
        super().__init__(message)
        self.code, self.message, self.intent = code, message, intent


# --- Stripe ------------------------------------------------------------------------------
def parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                timestamp = None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise AuthenticationError("Malformed Stripe-Signature header.", code="invalid_signature")
    return timestamp, signatures


def compute_signature(secret: str, timestamp: int, payload: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def verify_stripe_signature(payload: bytes, header: str | None, secret: str, now_unix: int,
                            tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> None:
    """Stripe's scheme: any v1 signature may match (secret rotation); timestamp within tolerance."""
    if not header:
        raise AuthenticationError("Missing Stripe-Signature header.", code="invalid_signature")
    if not secret:
        raise AuthenticationError("Webhook secret not configured.", code="invalid_signature")
    timestamp, signatures = parse_signature_header(header)
    expected = compute_signature(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise AuthenticationError("No signature matches the payload.", code="invalid_signature")
    if abs(now_unix - timestamp) > tolerance:
        raise AuthenticationError("The signature timestamp is outside the tolerance.",
                                  code="signature_timestamp_out_of_tolerance")


def _form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as a[b]=c, lists as a[]=x, booleans lowercase."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if value is None:
            continue
        if isinstance(value, Mapping):
            out += _form(value, name)
        elif isinstance(value, (list, tuple)):
            out += [(f"{name}[]", str(v)) for v in value]
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, str(value)))
    return out


class StripeTopUpProvider:
    name = "stripe"

    def __init__(self, secret_key: str, webhook_secret: str, *,
                 base_url: str = "https://api.stripe.com", timeout: float = 15.0,
                 session: requests.Session | None = None,
                 tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS):
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.tolerance = tolerance_seconds

    def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                 idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.secret_key}",
                   "Content-Type": "application/x-www-form-urlencoded"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            resp = self.session.request(method, self.base_url + path, headers=headers,
                                        data=_form(params or {}) if method != "GET" else None,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise ServiceUnavailable("The payment provider could not be reached; retry with the "
                                     "same Idempotency-Key.", code="provider_unavailable") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code < 300:
            return body
        err = body.get("error") or {}
        if resp.status_code == 402 or err.get("type") == "card_error":
            pi = err.get("payment_intent")
            raise ProviderDeclined(err.get("decline_code") or err.get("code") or "card_declined",
                                   err.get("message") or "The card was declined.",
                                   PaymentIntent.from_json(pi) if pi else None)
        if resp.status_code in (400, 404) and err.get("type") == "invalid_request_error":
            raise InvalidRequest(f"Payment provider rejected the request: {err.get('message')}",
                                 code="provider_invalid_request", param=err.get("param"))
        raise ServiceUnavailable("The payment provider failed; retry with the same "
                                 "Idempotency-Key.", code="provider_unavailable")

    def create_payment_intent(self, *, amount: int, currency: str, payment_method: str | None,
                              metadata: dict[str, str], idempotency_key: str,
                              confirm: bool = True) -> PaymentIntent:
        params: dict[str, Any] = {"amount": amount, "currency": currency.lower(),
                                  "payment_method_types": ["card"], "metadata": metadata}
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = confirm
        return PaymentIntent.from_json(self._request("POST", "/v1/payment_intents", params,
                                                     idempotency_key))

    def confirm_payment_intent(self, intent_id: str, *, payment_method: str | None = None,
                               idempotency_key: str | None = None,
                               return_url: str | None = None) -> PaymentIntent:
        """Confirm (charge) with ``payment_method``. ``return_url``: where the payer comes back
        after a redirect (3-D Secure); with it, ``requires_action`` carries ``redirect_to_url``."""
        return PaymentIntent.from_json(self._request(
            "POST", f"/v1/payment_intents/{intent_id}/confirm",
            {"payment_method": payment_method, "return_url": return_url}, idempotency_key))

    def retrieve_payment_intent(self, intent_id: str) -> PaymentIntent:
        return PaymentIntent.from_json(self._request("GET", f"/v1/payment_intents/{intent_id}"))

    # --- Checkout Sessions: card entry on the processor's own page ---------------------------
    def create_setup_session(self, *, currency: str, success_url: str, cancel_url: str,
                             metadata: dict[str, str],
                             idempotency_key: str | None = None) -> CheckoutSession:
        """A ``setup``-mode session (nothing is charged): the payer's browser goes to its
        ``url``, types the card there and comes back to ``success_url`` (Stripe replaces
        ``{CHECKOUT_SESSION_ID}`` in it). A malformed answer is a ``ValueError``."""
        return CheckoutSession.from_json(self._request("POST", "/v1/checkout/sessions", {
            "mode": "setup", "currency": currency.lower(), "payment_method_types": ["card"],
            "success_url": success_url, "cancel_url": cancel_url, "metadata": metadata},
            idempotency_key))

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        """The session with its SetupIntent expanded (so ``payment_method`` is filled once the
        payer completed it). An unknown id is ``InvalidRequest``; a malformed answer a
        ``ValueError``."""
        return CheckoutSession.from_json(self._request(
            "GET", f"/v1/checkout/sessions/{urllib.parse.quote(session_id, safe='')}"
                   "?expand[]=setup_intent"))

    # --- refunds (helper F's card refunds) ---------------------------------------------
    def create_refund(self, payment_intent: str, amount: int | None, idempotency_key: str, *,
                      reason: str | None = None,
                      metadata: dict[str, str] | None = None) -> Refund:
        """Refund ``amount`` (processor minor units; None: what is left) of a succeeded
        PaymentIntent. The same ``idempotency_key`` with the same arguments answers the same
        refund (Stripe's rule), so a retried call never refunds twice."""
        return Refund.from_json(self._request(
            "POST", "/v1/refunds", {"payment_intent": payment_intent, "amount": amount,
                                    "reason": reason, "metadata": metadata or None},
            idempotency_key))

    def retrieve_refund(self, refund_id: str) -> Refund:
        return Refund.from_json(self._request("GET", f"/v1/refunds/{refund_id}"))

    # --- disputes ------------------------------------------------------------------------
    def retrieve_dispute(self, dispute_id: str) -> Dispute:
        return Dispute.from_json(self._request("GET", f"/v1/disputes/{dispute_id}"))

    def close_dispute(self, dispute_id: str, idempotency_key: str | None = None) -> Dispute:
        """Accept the dispute (Stripe's "close"): it becomes lost."""
        return Dispute.from_json(self._request("POST", f"/v1/disputes/{dispute_id}/close", {},
                                               idempotency_key))

    def verify_webhook(self, payload: bytes, signature_header: str | None, now_unix: int) -> dict[str, Any]:
        verify_stripe_signature(payload, signature_header, self.webhook_secret, now_unix,
                                self.tolerance)
        try:
            event = json.loads(payload)
        except ValueError:
            raise InvalidRequest("The webhook body is not JSON.", code="invalid_json") from None
        if not isinstance(event, dict) or event.get("object") != "event" or not event.get("id"):
            raise InvalidRequest("The webhook body is not a Stripe event.", code="invalid_event")
        return event


# The same client serves merchants' card payments: one processor account, one webhook endpoint.
StripeCardProcessor = StripeTopUpProvider
