"""The card method: ``POST /v1/payment_intents/{id}/card`` {payment_method, return_url} by the payer
(with the client secret) or the merchant charges a card through the card-processor port
(Stripe's protocol: ``shared.adapters.stripe_cards``).

Claim → call → record, as webhook delivery does: the processor is called OUTSIDE any unit of
work (the route is not atomic).

1. claim (unit): the intent is payable by card (accepts card, has an amount in a currency the
   processor takes, ``requires_payment_method`` — or ``processing`` on an abandoned 3-D Secure
   challenge — and not expired); no other confirmation is in flight (a 60 s lease on
   ``card.confirming_until``: two clicks do not charge twice); ``card.attempts`` grows (at most
   ``MAX_ATTEMPTS``: a stolen-card tester gets a 409, not an oracle).
2. call: ONE processor PaymentIntent per intent, created without a payment method under the
   idempotency key ``derived(intent)`` (same amount, currency, metadata ``payloom_intent_id``
   every time: a lost answer is re-found, never duplicated), then confirmed with the card under
   ``derived(intent, attempt)``.
3. record (unit): ``requires_action`` → the intent is ``processing`` with ``card.next_action``
   {redirect_to_url}; ``succeeded``/``processing`` → ``processing`` too: ONLY the signed webhook
   marks it paid (``card_events``); declined → ``payment_intent.payment_failed`` (once per
   charge), the intent stays payable, and the caller gets 402 ``card_declined``.

A provider outage releases the claim and answers 503 (retry with the same Idempotency-Key); a
confirmation refused because the processor's PaymentIntent already moved on (the previous
answer was lost) is reconciled by reading it back.
"""
from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from pydantic import Field, field_validator

from shared.adapters.stripe_cards import PaymentIntent as ProcessorIntent
from shared.adapters.stripe_cards import ProviderDeclined
from shared.payments import card_events, intents, states
from shared.payments.card_events import CONFIRMING, METHOD, PROCESSOR
from shared.payments.models import (  # noqa: F401  (re-exported)
    CardDetails,
    CardPaymentIntent,
    NextAction,
    RedirectToUrl,
)
from shared.platform.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloomError,
    ServiceUnavailable,
)
from shared.platform.ids import derived_id
from shared.platform.models import RequestModel, is_doc_id
from shared.platform.uow import UnitOfWork, run_unit

PROCESSOR_KEY = "payments.card_processor"
LEASE = dt.timedelta(seconds=60)
MAX_ATTEMPTS = 10
REDIRECT_PAYABLE = "requires_action"   # a processing intent whose payer abandoned 3-D Secure


class CardDeclined(PayloomError):
    status, type, code = 402, "card_error", "card_declined"


class PayWithCard(RequestModel):
    payment_method: str = Field(..., min_length=4, max_length=100, pattern=r"^pm_[A-Za-z0-9_]+$",
                                description="A processor PaymentMethod id (pm_…), e.g. "
                                            "pm_card_visa in test mode.")
    return_url: str = Field(..., min_length=10, max_length=2000,
                            description="Where the payer's browser returns after a 3-D Secure "
                                        "challenge (http or https).")
    client_secret: str | None = Field(None, min_length=10, max_length=200,
                                      description="The payer's client secret; merchants "
                                                  "authenticate instead.")

    @field_validator("return_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
            raise ValueError("return_url must be an absolute http(s) URL")
        return value


def card_resource(doc: dict[str, Any]) -> CardPaymentIntent:
    """The intent as every read shows it: ``card`` and ``next_action`` included (intents.resource)."""
    return intents.resource(doc)


# --- the processor port ------------------------------------------------------------------------------
def processor(deps):
    """The card processor: the one Stripe account the wallet's top-ups use (tests install their
    own under ``PROCESSOR_KEY`` or the wallet's key)."""
    from shared.wallet import config
    return deps.get(PROCESSOR_KEY, lambda: config.topup_provider(deps))


def create_key(intent_id: str) -> str:
    return derived_id("card", intent_id)


def confirm_key(intent_id: str, attempt: int) -> str:
    return derived_id("cardconfirm", intent_id, str(attempt))


# --- rules ------------------------------------------------------------------------------------------
def check_payable(doc: dict[str, Any], now: dt.datetime) -> None:
    if METHOD not in (doc.get("payment_method_types") or []):
        raise InvalidRequest("This payment intent does not accept card payments.",
                             code="payment_method_not_accepted", param="payment_method_types")
    if doc.get("amount") is None:
        raise InvalidRequest("A payment intent without an amount cannot be paid by card.",
                             code="amount_required")
    card_events.processor_amount(doc["amount"], doc["currency"])      # 400 when not payable
    card = doc.get("card") or {}
    resumable = doc["status"] == states.PROCESSING and card.get("status") == REDIRECT_PAYABLE \
        and not card_events.paid_by_card(doc)
    if (doc["status"] != states.REQUIRES_PAYMENT_METHOD and not resumable) \
            or now >= doc["expires_at"]:
        status = states.EXPIRED if doc["status"] in (states.REQUIRES_PAYMENT_METHOD,
                                                     states.PROCESSING) else doc["status"]
        raise intents.IntentNotPayable(f"This payment intent is {status} and cannot be paid.")


def _load_plain(deps, intent_id: str) -> dict[str, Any]:
    if not is_doc_id(intent_id) or not intent_id.startswith("pi_"):
        raise NotFound("No such payment intent.", code="resource_missing")
    snap = intents.intent_ref(deps.db, intent_id).get()
    if not snap.exists:
        raise NotFound("No such payment intent.", code="resource_missing")
    return snap.to_dict()


def _claim(uow: UnitOfWork, intent_id: str, payment_method: str) -> dict[str, Any]:
    ref, doc = intents.load_for_update(uow, intent_id)
    check_payable(doc, uow.now)
    card = dict(doc.get("card") or {})
    until = card.get("confirming_until")
    if card.get("status") == CONFIRMING and until is not None and until > uow.now:
        raise Conflict("A card payment of this intent is being confirmed; retry shortly.",
                       code="card_payment_in_progress")
    attempts = int(card.get("attempts") or 0)
    if attempts >= MAX_ATTEMPTS:
        raise Conflict("Too many card attempts for this payment intent.",
                       code="too_many_card_attempts")
    card.update(processor=PROCESSOR, status=CONFIRMING, attempts=attempts + 1,
                payment_method=payment_method, confirming_until=uow.now + LEASE,
                previous_status=card.get("status"), next_action=None)
    fields = {"card": card, "updated_at": uow.now}
    uow.update(ref, fields)
    return {**doc, **fields}


def _release(deps, intent_id: str, attempt: int, processor_id: str | None) -> None:
    """The call failed without an answer: free the claim (keeping the processor id learnt)."""
    def unit(uow: UnitOfWork) -> None:
        ref, doc = intents.load_for_update(uow, intent_id)
        card = dict(doc.get("card") or {})
        if card.get("attempts") != attempt or card.get("status") != CONFIRMING:
            return
        card.update(status=card.get("previous_status"), confirming_until=None)
        if processor_id:
            card["processor_id"] = processor_id
        uow.update(ref, {"card": card, "updated_at": uow.now})
    run_unit(deps, unit)


def _record(uow: UnitOfWork, intent_id: str, attempt: int, processor_id: str,
            answer: ProcessorIntent | None, declined: ProviderDeclined | None) -> dict[str, Any]:
    ref, doc = intents.load_for_update(uow, intent_id)
    card = dict(doc.get("card") or {})
    card.update(processor=PROCESSOR, processor_id=processor_id, confirming_until=None)
    card_events.remember_payment(uow, doc, processor_id)
    if card_events.paid_by_card(doc):              # the webhook got here first: it is final
        card.update(status="succeeded", next_action=None)
        fields = {"card": card, "updated_at": uow.now}
        uow.update(ref, fields)
        return {**doc, **fields}
    if declined is not None:
        err = card_events.error_of(answer.last_payment_error if answer else None) or \
            {"code": "card_declined", "decline_code": declined.code, "message": declined.message}
        card.update(status=states.REQUIRES_PAYMENT_METHOD, last_payment_error=err, next_action=None)
        doc, _ = card_events.record_failure(
            uow, ref, doc, card, key=err.get("charge") or f"attempt:{attempt}",
            reason=f"card:{err.get('decline_code') or err.get('code') or 'declined'}")
        return doc
    assert answer is not None
    card.update(status=answer.status, last_payment_error=None,
                next_action=card_events.next_action_of(answer.next_action))
    if answer.status in ("requires_action", "processing", "succeeded") and \
            doc["status"] in (states.REQUIRES_PAYMENT_METHOD, states.EXPIRED):
        return intents.transition(uow, ref, doc, states.PROCESSING,
                                  reason=f"card:{answer.status}", card=card)
    fields = {"card": card, "updated_at": uow.now}
    uow.update(ref, fields)
    return {**doc, **fields}


def pay(ctx, intent_id: str, body: PayWithCard) -> CardPaymentIntent:
    """Charge a card for the intent (see the module doc). Cost: one plain read (authorisation),
    the claim unit, one or two processor calls, the record unit."""
    from shared.payments import crypto_method
    deps = ctx.deps
    doc = _load_plain(deps, intent_id)
    crypto_method.authorize(ctx, doc, body.client_secret, write=True)
    check_payable(doc, deps.clock.now())
    claimed = run_unit(deps, lambda uow: _claim(uow, intent_id, body.payment_method))
    attempt = int(claimed["card"]["attempts"])
    port = processor(deps)
    pid: str | None = claimed["card"].get("processor_id")
    answer, declined = None, None
    try:
        if not pid:
            pid = port.create_payment_intent(
                amount=card_events.processor_amount(doc["amount"], doc["currency"]),
                currency=doc["currency"].lower(), payment_method=None, confirm=False,
                metadata={card_events.METADATA_KEY: intent_id, "merchant": doc["tenant"]},
                idempotency_key=create_key(intent_id)).id
        answer = port.confirm_payment_intent(pid, payment_method=body.payment_method,
                                             return_url=body.return_url,
                                             idempotency_key=confirm_key(intent_id, attempt))
    except ProviderDeclined as exc:
        answer, declined = exc.intent, exc
    except InvalidRequest as exc:
        answer = _reconcile(port, pid, exc)
        if answer is None:
            _release(deps, intent_id, attempt, pid)
            raise InvalidRequest(f"The card could not be charged: {exc.message}",
                                 code="card_payment_invalid",
                                 param="payment_method" if exc.param == "payment_method" else None) from None
    except ServiceUnavailable:
        _release(deps, intent_id, attempt, pid)
        raise
    assert pid is not None
    doc = run_unit(deps, lambda uow: _record(uow, intent_id, attempt, pid, answer, declined))
    if declined is not None:
        raise CardDeclined(declined.message or "The card was declined.", param="payment_method")
    return card_resource(doc)


def _reconcile(port, pid: str | None, exc: InvalidRequest) -> ProcessorIntent | None:
    """A confirmation refused because the processor's PaymentIntent is no longer confirmable
    (an earlier answer was lost): what it is now, when that is something to record."""
    if not pid or exc.code != "provider_invalid_request" or exc.param == "payment_method":
        return None
    try:
        current = port.retrieve_payment_intent(pid)
    except PayloomError:
        return None
    return current if current.status in ("succeeded", "processing", "requires_action") else None


# --- routes (registered on the payments router by shared/payments/http.py) ---------------------------
def register(api) -> None:
    """Add ``POST /v1/payment_intents/{id}/card`` to the payments router (idempotent). Public:
    the caller is the payer (client_secret) or the merchant (authenticated in ``authorize``)."""
    from shared.platform.ratelimit import Limit
    from shared.platform.router import PUBLIC

    if any(r.path == "/{intent_id}/card" for r in api.routes):
        return

    @api.post("/{intent_id}/card", body=PayWithCard, response=CardPaymentIntent, auth=PUBLIC,
              atomic=False,
              rate_limits=[(Limit("payments.card", 120, 60), "ip")],
              summary="Pay with a card (3-D Secure by redirect); paid only by the processor's "
                      "webhook")
    def pay_with_card(ctx, intent_id: str):
        return pay(ctx, intent_id, ctx.body)
