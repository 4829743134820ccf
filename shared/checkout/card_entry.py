"""The card method on the page: the card is typed on the PROCESSOR's own hosted page, never ours
(no card number reaches Payloom, so the page stays out of PCI DSS card-data scope).

1. ``start``: a Checkout Session in ``setup`` mode at the processor (Stripe's protocol:
   ``POST /v1/checkout/sessions``), its metadata naming the intent; the payer's browser goes to
   its ``url`` (an allowed origin only) and types the card there.
2. The processor sends the browser back to ``<page>/card/return?session=cs_…``. ``complete``
   claims the session once (``checkout_card_sessions/{cs}``, a create: a refresh or a replayed
   return does nothing twice), reads it back server-to-server with its SetupIntent, checks it
   names this intent, and pays with its PaymentMethod through ``card_method.pay`` (claim → call
   → record; only the processor's signed webhook makes the intent paid).
3. 3-D Secure: ``card_method.pay`` answers ``next_action.redirect_to_url``; the browser goes there
   and comes back to ``<page>/card/done``, which returns to the page; the page polls until the
   webhook has paid the intent.

The processor is the card method's port (``card_method.processor``), whose
``create_setup_session`` / ``retrieve_session`` speak Stripe's Checkout Sessions. A processor outage is a 503 message on the page; a decline is
recorded on the intent by ``card_method`` and shown as the card notice.
"""
from __future__ import annotations

import datetime as dt
import re
import types
import urllib.parse
from typing import Any

from shared.checkout.config import checkout_settings
from shared.payments import card_method
from shared.payments.card_events import METADATA_KEY
from shared.payments.card_method import CardDeclined, PayWithCard
from shared.platform.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.platform.uow import run_unit

SESSIONS = "checkout_card_sessions"          # TTL on expires_at
SESSION_RE = re.compile(r"^cs_[A-Za-z0-9_]{8,200}$")
CLAIM_TTL = dt.timedelta(days=2)


def origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def allowed_origins(deps) -> tuple[str, ...]:
    """Where the processor's hosted steps may be (the page's CSP form-action, redirects)."""
    configured = checkout_settings(deps).card_origins
    if configured:
        return tuple(configured)
    port = card_method.processor(deps)
    base = getattr(port, "base_url", "")
    return (origin(base),) if origin(base) else ()


def _safe_redirect(deps, url: Any) -> str:
    if not isinstance(url, str) or origin(url) not in allowed_origins(deps):
        raise ServiceUnavailable("The card processor answered an unexpected address.",
                                 code="card_processor_invalid")
    return url


def start(deps, doc: dict[str, Any], page_url: str) -> str:
    """The processor's card-entry URL for this intent (raises 4xx when card cannot pay it)."""
    card_method.check_payable(doc, deps.clock.now())
    port = card_method.processor(deps)
    try:
        session = port.create_setup_session(
            currency=doc["currency"], cancel_url=page_url,
            success_url=f"{page_url}/card/return?session={{CHECKOUT_SESSION_ID}}",
            metadata={METADATA_KEY: doc["id"]})
    except ValueError:
        raise ServiceUnavailable("The card processor answered something unexpected.",
                                 code="card_processor_invalid") from None
    return _safe_redirect(deps, session.url)


def _claim(deps, session_id: str, intent_id: str) -> bool:
    """True the first time this session comes back; False for a refresh or a replay."""
    def unit(uow) -> bool:
        ref = uow.db.collection(SESSIONS).document(session_id)
        if uow.get(ref).exists:
            return False
        uow.create(ref, {"intent_id": intent_id, "created_at": uow.now,
                         "expires_at": uow.now + CLAIM_TTL})
        return True
    return run_unit(deps, unit)


def payment_method_of(deps, session_id: str, intent_id: str) -> str:
    port = card_method.processor(deps)
    try:
        session = port.retrieve_session(session_id)
    except (InvalidRequest, ValueError):
        raise InvalidRequest("This card session is unknown.", code="card_session_invalid") from None
    if session.status != "complete" or session.metadata.get(METADATA_KEY) != intent_id:
        raise InvalidRequest("This card session does not belong to this payment.",
                             code="card_session_invalid")
    pm = session.payment_method
    if not isinstance(pm, str) or not re.match(r"^pm_[A-Za-z0-9_]{1,96}$", pm):
        raise InvalidRequest("The card session holds no card.", code="card_session_invalid")
    return pm


def complete(deps, request, checkout, session_id: str, page_url: str) -> str | None:
    """Pay with the card typed at the processor. Returns where to send the browser next (the
    3-D Secure page) or None (back to the page). The session is read back and checked before
    it is claimed (a stranger's session id cannot use up this page's claim); a decline is not
    an error here: the intent records it and the page shows it."""
    if not SESSION_RE.match(session_id or ""):
        raise InvalidRequest("This card session is unknown.", code="card_session_invalid")
    pm = payment_method_of(deps, session_id, checkout.intent_id)
    if not _claim(deps, session_id, checkout.intent_id):
        return None
    body = PayWithCard(payment_method=pm, return_url=f"{page_url}/card/done",
                       client_secret=checkout.client_secret)
    ctx = types.SimpleNamespace(deps=deps, request=request)
    try:
        result = card_method.pay(ctx, checkout.intent_id, body)
    except CardDeclined:
        return None
    except Conflict as exc:
        if exc.code == "card_payment_in_progress":
            return None
        raise
    except ServiceUnavailable:
        # nothing was charged: free the session so the payer's retry (a refresh) can run
        deps.db.collection(SESSIONS).document(session_id).delete()
        raise
    if result.next_action is not None:
        return _safe_redirect(deps, result.next_action.redirect_to_url.url)
    return None
