"""Who may open a hosted payment page, and which payment intent it is about.

The URL is the payer's only credential, as Stripe's hosted pages use an unguessable session id:

- ``/pay/<client secret>``: the intent's ``client_secret`` (``pi_…_secret_…``, 192 random bits,
  stored as SHA-256 and compared in constant time). An intent id alone, another intent's
  secret, a wrong or malformed one: the same 404, and a malformed one costs no read.
- ``/pay/invoice/<in_…>``: the invoice's hosted URL (ADR 0036; the id is 143 random bits). An
  open invoice pays through ``invoices.payable_intent``, which renews an expired intent; a paid
  or void invoice shows its intent's outcome; a draft or missing one is a 404.
- ``/pay/link/<plink_…>`` makes an intent per browser (``links``) and sends the payer to the
  first form.

A ``Checkout`` carries the intent document (never rendered whole: ``view`` picks what a payer
may see) and the client secret when an action needs it. Status polls read without the secret.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from shared.payments import crypto_method, intents
from shared.platform.errors import NotFound
from shared.platform.uow import run_unit

SECRET_RE = re.compile(r"^(pi_[A-Za-z0-9]{24})_secret_[A-Za-z0-9_-]{20,64}$")
INVOICE_RE = re.compile(r"^in_[A-Za-z0-9]{16,40}$")
LINK_RE = re.compile(r"^plink_[A-Za-z0-9]{16,40}$")


@dataclasses.dataclass
class Checkout:
    intent: dict[str, Any]
    base: str                               # this page's path: /pay/<secret> | /pay/invoice/<id>
    client_secret: str | None = None        # present when an action needs it
    invoice: dict[str, Any] | None = None

    @property
    def intent_id(self) -> str:
        return self.intent["id"]


def missing(message: str = "This payment page does not exist.") -> NotFound:
    return NotFound(message, code="resource_missing")


def _intent(deps, intent_id: str) -> dict[str, Any]:
    snap = intents.intent_ref(deps.db, intent_id).get()
    if not snap.exists:
        raise missing()
    return snap.to_dict()


def by_secret(deps, secret: str, root: str) -> Checkout:
    m = SECRET_RE.match(secret or "")
    if not m:
        raise missing()
    doc = _intent(deps, m.group(1))
    if not crypto_method.secret_matches(doc, secret):
        raise missing()
    return Checkout(intent=doc, base=f"{root}/{secret}", client_secret=secret)


def by_invoice(deps, invoice_id: str, root: str, *, with_secret: bool) -> Checkout:
    """The invoice's current intent. ``with_secret``: also its client secret, renewing an
    expired intent (a unit of work); without it (status polls) two plain reads."""
    from shared.invoices import invoices
    if not INVOICE_RE.match(invoice_id or ""):
        raise missing()
    snap = invoices.invoice_ref(deps.db, invoice_id).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc.get("status") == invoices.DRAFT or not doc.get("payment_intent"):
        raise missing()
    base = f"{root}/invoice/{invoice_id}"
    if with_secret and doc["status"] in invoices.PAYABLE:
        intent_id, secret = run_unit(deps, lambda uow: invoices.payable_intent(uow, invoice_id))
        doc = invoices.invoice_ref(deps.db, invoice_id).get().to_dict() \
            if intent_id != doc["payment_intent"] else doc
        return Checkout(intent=_intent(deps, intent_id), base=base, client_secret=secret,
                        invoice=doc)
    return Checkout(intent=_intent(deps, doc["payment_intent"]), base=base, invoice=doc)


def resolve(deps, params: dict[str, str], root: str, *, with_secret: bool = True) -> Checkout:
    """The checkout a route's path names (``{secret}`` or ``{invoice_id}``)."""
    if "invoice_id" in params:
        return by_invoice(deps, params["invoice_id"], root, with_secret=with_secret)
    return by_secret(deps, params.get("secret", ""), root)
