"""Invoices (Stripe-shaped): drafts, finalization, void, uncollectible, paid by their intent.

Document ``invoices/{in_…}``: the resource's fields plus ``intent_client_secret`` (sealed, for
the hosted page of issue 10) and the computed lines. ``tenant`` is the merchant; every read is
filtered on tenant AND livemode, and another merchant's or the other mode's invoice is a 404.

Statuses: ``draft`` → (finalize) ``open`` → ``paid`` | ``void`` | ``uncollectible``; an
uncollectible invoice may still be paid (its intent stays open) or voided. Money is only ever
taken by the invoice's payment intent (``shared.payments``), created by finalization in the same
unit of work as the number, so a finalization either commits number + intent + status together
or not at all: one number and one intent however many callers finalize at once. The intent's id
derives from the invoice id (``intents.create`` with the key ``invoice:<id>``), a second guard
against a second intent.

Paid: the ``invoices_events`` consumer (``on_intent_paid``) moves an open or uncollectible
invoice to paid when its intent reaches a paid status (succeeded, overpaid, paid_late).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.invoices import numbering, totals
from shared.invoices.models import (
    INVOICE_EVENTS,
    LINES_SHOWN,
    CreateInvoice,
    Invoice,
    InvoiceListQuery,
    Line,
    LineList,
    UpdateInvoice,
)
from shared.ledger import assets
from shared.merchants.branding_rules import return_urls
from shared.payments import intents, states
from shared.payments.models import CreateIntent
from shared.platform import secrets_at_rest
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest, NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse, paginate, tenant_mode_query
from shared.platform.uow import UnitOfWork

COLLECTION = "invoices"
DRAFT, OPEN, PAID, VOID, UNCOLLECTIBLE = "draft", "open", "paid", "void", "uncollectible"
PAYABLE = frozenset({OPEN, UNCOLLECTIBLE})
# The invoice's intent lives until the due date, at least a day, at most what intents allow.
MIN_INTENT_S, MAX_INTENT_S = 86400, 7 * 86400
SECRET_PURPOSE = "intent_client_secret"
MAX_INTENTS = 20          # an invoice's intents over its life (renewals): bounded history


class InvoiceStateError(Conflict):
    code = "invoice_unexpected_state"


def invoice_ref(db, invoice_id: str):
    return db.collection(COLLECTION).document(invoice_id)


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def _line(d: dict[str, Any]) -> Line:
    return Line(**{k: d[k] for k in Line.model_fields if k in d and k != "object"})


def resource(doc: dict[str, Any]) -> Invoice:
    lines = doc.get("lines") or []
    return Invoice(
        id=doc["id"], merchant=doc["tenant"], project_id=doc.get("project_id"),
        livemode=doc["livemode"], status=doc["status"], number=doc.get("number"),
        customer=doc["customer"], currency=doc["currency"],
        lines=LineList(data=[_line(x) for x in lines[:LINES_SHOWN]],
                       has_more=len(lines) > LINES_SHOWN, total_count=len(lines),
                       url=f"/v1/invoices/{doc['id']}/lines"),
        default_tax_rate_bps=doc.get("default_tax_rate_bps") or 0, discount=doc.get("discount"),
        subtotal=doc["subtotal"], total_discount=doc["total_discount"],
        total_tax=doc["total_tax"], total=doc["total"], amount_due=doc["total"],
        amount_paid=doc.get("amount_paid", 0),
        amount_remaining=max(0, doc["total"] - doc.get("amount_paid", 0)),
        due_date=_ts(doc.get("due_date")), memo=doc.get("memo"),
        metadata=doc.get("metadata") or {}, payment_method_types=doc.get("payment_method_types"),
        success_url=doc.get("success_url"), cancel_url=doc.get("cancel_url"),
        payment_intent=doc.get("payment_intent"),
        hosted_invoice_url=doc.get("hosted_invoice_url"),
        created=_ts(doc["created_at"]), updated=_ts(doc["updated_at"]),
        finalized_at=_ts(doc.get("finalized_at")), paid_at=_ts(doc.get("paid_at")),
        voided_at=_ts(doc.get("voided_at")),
        marked_uncollectible_at=_ts(doc.get("marked_uncollectible_at")))


def _emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(INVOICE_EVENTS[name].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data={"object": resource(doc).model_dump(mode="json")})


# --- drafts ------------------------------------------------------------------------------------
def _priced(fields: dict[str, Any]) -> dict[str, Any]:
    """The computed lines and totals of ``fields`` (lines as given, discount, default rate)."""
    given = fields.get("lines") or []
    discount = fields.get("discount") or {}
    t = totals.compute([totals.LineInput(x["quantity"], x["unit_amount"], x.get("tax_rate_bps"))
                        for x in given],
                       default_tax_rate_bps=fields.get("default_tax_rate_bps") or 0,
                       amount_off=discount.get("amount_off"),
                       percent_off_bps=discount.get("percent_off_bps"))
    lines = [{"id": x.get("id") or new_id("il", 16), "description": x["description"],
              "quantity": x["quantity"], "unit_amount": x["unit_amount"],
              "tax_rate_bps_given": x.get("tax_rate_bps"), "amount": lt.amount,
              "discount_amount": lt.discount_amount, "tax_rate_bps": lt.tax_rate_bps,
              "tax_amount": lt.tax_amount} for x, lt in zip(given, t.lines)]
    return {"lines": lines, "subtotal": t.subtotal, "total_discount": t.total_discount,
            "total_tax": t.total_tax, "total": t.total}


def _given_lines(doc_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored lines back to their inputs (the explicit rate, not the computed one)."""
    return [{"id": x["id"], "description": x["description"], "quantity": x["quantity"],
             "unit_amount": x["unit_amount"], "tax_rate_bps": x.get("tax_rate_bps_given")}
            for x in doc_lines]


def _due(value: int | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    when = dt.datetime.fromtimestamp(value, dt.UTC)
    if when <= now:
        raise InvalidRequest("due_date must be in the future.", code="parameter_invalid",
                             param="due_date")
    return when


def create(uow: UnitOfWork, principal: Principal, body: CreateInvoice,
           idempotency_key: str | None) -> Invoice:
    """A draft (nothing is owed yet). With an Idempotency-Key the id derives from it, so a
    retry after the stored response expired re-finds the draft."""
    asset = assets.get_asset(body.currency, param="currency")
    merchant = principal.tenant_id
    invoice_id = (derived_id("in", merchant, str(principal.livemode), idempotency_key)
                  if idempotency_key else new_id("in"))
    ref = invoice_ref(uow.db, invoice_id)
    snap = uow.get(ref)
    if snap.exists:
        return resource(_owned(snap.to_dict(), principal))
    now = uow.now
    fields = {
        "lines": [x.model_dump() for x in body.lines or []],
        "default_tax_rate_bps": body.default_tax_rate_bps,
        "discount": body.discount.model_dump(exclude_none=True) if body.discount else None,
    }
    doc = {
        "id": invoice_id, "object": "invoice", "tenant": merchant, "livemode": principal.livemode,
        "project_id": principal.project_id, "status": DRAFT, "number": None,
        "customer": {"email": body.customer.email.lower(), "name": body.customer.name},
        "customer_email": body.customer.email.lower(), "currency": asset.code,
        **fields, **_priced(fields),
        "amount_paid": 0, "due_date": _due(body.due_date, now), "memo": body.memo,
        "metadata": body.metadata or {}, "payment_method_types": body.payment_method_types,
        **return_urls(body, {"success_url", "cancel_url"}, livemode=principal.livemode),
        "payment_intent": None, "hosted_invoice_url": None, "created_at": now, "updated_at": now,
        "created_by": principal.actor_id or principal.id,
    }
    uow.create(ref, doc)
    _emit(uow, doc, "created")
    return resource(doc)


def update(uow: UnitOfWork, principal: Principal, invoice_id: str, body: UpdateInvoice) -> Invoice:
    """Change a draft; a finalized invoice is immutable (void it and issue another)."""
    ref, doc = load(uow, principal, invoice_id)
    _expect(doc, (DRAFT,), "changed")
    given = body.model_fields_set
    change: dict[str, Any] = {}
    if "customer" in given:
        if body.customer is None:
            raise InvalidRequest("An invoice needs a customer.", code="parameter_invalid",
                                 param="customer")
        change["customer"] = {"email": body.customer.email.lower(), "name": body.customer.name}
        change["customer_email"] = body.customer.email.lower()
    if "due_date" in given:
        change["due_date"] = _due(body.due_date, uow.now)
    for name in ("memo", "payment_method_types"):
        if name in given:
            change[name] = getattr(body, name)
    change.update(return_urls(body, given, livemode=principal.livemode))
    if "metadata" in given:
        change["metadata"] = body.metadata or {}
    pricing = {"lines": _given_lines(doc.get("lines") or []),
               "default_tax_rate_bps": doc.get("default_tax_rate_bps"),
               "discount": doc.get("discount")}
    if "lines" in given:
        pricing["lines"] = [x.model_dump() for x in body.lines or []]
    if "default_tax_rate_bps" in given:
        pricing["default_tax_rate_bps"] = body.default_tax_rate_bps
    if "discount" in given:
        pricing["discount"] = body.discount.model_dump(exclude_none=True) if body.discount else None
    change.update(pricing, **_priced(pricing), updated_at=uow.now)
    uow.update(ref, change)
    return resource({**doc, **change})


def delete_draft(uow: UnitOfWork, principal: Principal, invoice_id: str) -> None:
    """Stripe: only a draft is deleted (it never had a number); others are voided."""
    ref, doc = load(uow, principal, invoice_id)
    _expect(doc, (DRAFT,), "deleted")
    uow.delete(ref)


# --- finalize, void, uncollectible ------------------------------------------------------------
def _intent_key(invoice_id: str) -> str:
    return f"invoice:{invoice_id}"


def _intent_seconds(due: dt.datetime | None, now: dt.datetime) -> int:
    if due is None:
        return MAX_INTENT_S
    return max(MIN_INTENT_S, min(MAX_INTENT_S, int((due - now).total_seconds())))


def _new_intent(uow: UnitOfWork, principal: Principal, doc: dict[str, Any], number: str,
                key: str) -> dict[str, Any]:
    """Create the invoice's (next) payment intent in this unit; the invoice fields to write."""
    invoice_id = doc["id"]
    body = CreateIntent(
        amount=doc["total"], currency=doc["currency"],
        payment_method_types=doc.get("payment_method_types"),
        description=f"Invoice {number}", customer_email=doc["customer"]["email"],
        metadata={"invoice": invoice_id, "invoice_number": number},
        success_url=doc.get("success_url"), cancel_url=doc.get("cancel_url"),
        expires_in_seconds=_intent_seconds(doc.get("due_date"), uow.now))
    intent = intents.create(uow, principal, body, key)
    fields: dict[str, Any] = {
        "payment_intent": intent.id,
        "payment_intents": [*(doc.get("payment_intents") or []), intent.id][-MAX_INTENTS:]}
    if intent.client_secret:
        fields["intent_client_secret"] = secrets_at_rest.envelope(uow.deps).seal(
            intent.client_secret, reuse_key=True,
            context=secrets_at_rest.context(COLLECTION, invoice_id, SECRET_PURPOSE))
    return fields


def finalize(uow: UnitOfWork, principal: Principal, invoice_id: str) -> Invoice:
    """Number the invoice, create its payment intent (amount = total) and open it, in ONE unit:
    one batch read (invoice, counter, merchant, settings, the intent's derived id), one commit.
    A zero total is paid at once (no intent, as Stripe). Finalizing twice: 409."""
    from shared.merchants import settings as msettings
    from shared.merchants import store
    db = uow.db
    merchant = principal.tenant_id
    key = _intent_key(invoice_id)
    intent_id = derived_id("pi", merchant, str(principal.livemode), key)
    for extra in (numbering.counter_ref(db, merchant, principal.livemode),
                  store.merchant_ref(db, merchant), msettings.settings_ref(db, merchant),
                  intents.intent_ref(db, intent_id)):
        uow.prefetch(extra)
    ref, doc = load(uow, principal, invoice_id)
    _expect(doc, (DRAFT,), "finalized")
    if not doc.get("lines"):
        raise InvalidRequest("An invoice needs at least one line to be finalized.",
                             code="invoice_no_lines", param="lines")
    now = uow.now
    _, number = numbering.take_next(uow, merchant, principal.livemode)
    change: dict[str, Any] = {"status": OPEN, "number": number, "finalized_at": now,
                              "updated_at": now,
                              "hosted_invoice_url": hosted_url(uow.deps, invoice_id)}
    if doc["total"] > 0:
        change.update(_new_intent(uow, principal, doc, number, key))
    uow.update(ref, change)
    doc = {**doc, **change}
    _emit(uow, doc, "finalized")
    if doc["total"] == 0:
        doc = _mark_paid(uow, ref, doc, amount_paid=0)
    return resource(doc)


def void(uow: UnitOfWork, principal: Principal, invoice_id: str) -> Invoice:
    """Void an open or uncollectible invoice and cancel its intent in the same unit. Refused
    (409 ``invoice_payment_in_progress``) while its intent holds money that may still pay it
    (processing, underpaid... anything not cancelable) — or has paid it already."""
    ref, doc = load(uow, principal, invoice_id)
    _expect(doc, (OPEN, UNCOLLECTIBLE), "voided")
    if doc.get("payment_intent"):
        pref, pi = intents.load_for_update(uow, doc["payment_intent"])
        if pi["status"] in states.PAID or pi.get("amount_received") or pi.get("amount_pending"):
            raise Conflict("This invoice's payment intent has received money; it cannot be "
                           "voided.", code="invoice_payment_in_progress")
        if pi["status"] in states.CANCELABLE:
            intents.transition(uow, pref, pi, states.CANCELED, reason="invoice_voided",
                               canceled_at=uow.now, cancellation_reason="abandoned")
    change = {"status": VOID, "voided_at": uow.now, "updated_at": uow.now}
    uow.update(ref, change)
    doc = {**doc, **change}
    _emit(uow, doc, "voided")
    return resource(doc)


def mark_uncollectible(uow: UnitOfWork, principal: Principal, invoice_id: str) -> Invoice:
    """The merchant gives up collecting; the intent stays payable (the customer may still pay)."""
    ref, doc = load(uow, principal, invoice_id)
    _expect(doc, (OPEN,), "marked uncollectible")
    change = {"status": UNCOLLECTIBLE, "marked_uncollectible_at": uow.now, "updated_at": uow.now}
    uow.update(ref, change)
    doc = {**doc, **change}
    _emit(uow, doc, "marked_uncollectible")
    return resource(doc)


def _mark_paid(uow: UnitOfWork, ref, doc: dict[str, Any], *, amount_paid: int) -> dict[str, Any]:
    change = {"status": PAID, "paid_at": uow.now, "updated_at": uow.now,
              "amount_paid": amount_paid}
    uow.update(ref, change)
    doc = {**doc, **change}
    _emit(uow, doc, "paid")
    return doc


def _invoice_of(uow: UnitOfWork, event) -> tuple[dict[str, Any], Any, dict[str, Any] | None]:
    """(intent, invoice ref, invoice) of a payment_intent event, read through the unit; the
    invoice is None (and the ref an outcome) when the event's intent is not really the
    invoice's own (same id, merchant and mode): forged or foreign metadata changes nothing."""
    pi = (event.data or {}).get("object") or {}
    invoice_id = (pi.get("metadata") or {}).get("invoice")
    if not invoice_id or not _is_invoice_id(invoice_id):
        return pi, "not_an_invoice", None
    ref = invoice_ref(uow.db, invoice_id)
    snap = uow.get(ref)
    if not snap.exists:
        return pi, "missing", None
    doc = snap.to_dict()
    own = doc.get("payment_intents") or [doc.get("payment_intent")]
    if (pi.get("id") not in own or doc["tenant"] != event.tenant
            or doc["livemode"] != bool(pi.get("livemode"))):
        return pi, "foreign", None
    return pi, ref, doc


def on_intent_paid(uow: UnitOfWork, event) -> str:
    """Consumer of ``payment_intent.succeeded|overpaid|paid_late``: the invoice named in the
    intent's metadata becomes paid if it is still payable and the intent is really its intent
    (same merchant, mode and id). Anything else (a void invoice, a foreign intent) is ignored
    and said so in the outcome; a redelivery finds the invoice paid. Returns the outcome."""
    pi, ref, doc = _invoice_of(uow, event)
    if doc is None:
        return ref
    if doc["status"] not in PAYABLE:
        return f"ignored:{doc['status']}"
    _mark_paid(uow, ref, doc, amount_paid=int(pi.get("amount_received") or 0))
    return "paid"


def on_intent_reorged(uow: UnitOfWork, event) -> str:
    """Consumer of ``payment_intent.reorged``: a paid invoice whose intent is no longer paid
    (the chain payment that paid it was reorganised out) is open again (uncollectible if it had
    been marked so), ``amount_paid`` follows the intent, and ``invoice.reopened`` says so. When
    the payment confirms again, ``payment_intent.succeeded`` pays the invoice again. Cost: one
    more read (the intent itself), for a rare event."""
    pi, ref, doc = _invoice_of(uow, event)
    if doc is None:
        return ref
    if doc["status"] != PAID:
        return f"ignored:{doc['status']}"
    # Pub/Sub does not keep order: judge by the intent as it is now, not by the event's copy
    # (a re-confirmation may have been delivered first)
    current = intents.load_for_update(uow, pi["id"])[1]
    if current["status"] in states.PAID:
        return "ignored:still_paid"
    change = {"status": UNCOLLECTIBLE if doc.get("marked_uncollectible_at") else OPEN,
              "paid_at": None, "amount_paid": int(current.get("amount_received") or 0),
              "updated_at": uow.now}
    uow.update(ref, change)
    _emit(uow, {**doc, **change}, "reopened")
    return "reopened"


def payable_intent(uow: UnitOfWork, invoice_id: str) -> tuple[str, str | None]:
    """For the hosted page (issue 10): the intent the customer should pay NOW and its client
    secret. An open or uncollectible invoice whose intent can no longer be paid and holds no
    money (expired: the due date was more than 7 days away or has passed; canceled by the
    merchant through the intents API) gets a fresh intent in this unit, its id derived from
    (invoice, generation) so concurrent page loads make one; the old ones stay listed in
    ``payment_intents`` and a late payment to one still pays the invoice (a second payment is
    then the merchant's to refund, as on Stripe). 404 for a missing invoice, 409 for one that
    is not payable. No tenant check: the caller (the hosted page) holds the invoice's URL."""
    if not _is_invoice_id(invoice_id):
        raise NotFound("No such invoice.", code="resource_missing")
    ref = invoice_ref(uow.db, invoice_id)
    snap = uow.get(ref)
    if not snap.exists:
        raise NotFound("No such invoice.", code="resource_missing")
    doc = snap.to_dict()
    _expect(doc, tuple(PAYABLE), "paid")
    if not doc.get("payment_intent"):
        return "", None   # pragma: no cover — a payable invoice always has one (total > 0)
    pi = intents.load_for_update(uow, doc["payment_intent"])[1]
    dead = pi["status"] in (states.EXPIRED, states.CANCELED) or (
        pi["status"] == states.REQUIRES_PAYMENT_METHOD and uow.now >= pi["expires_at"])
    if not dead or pi.get("amount_received") or pi.get("amount_pending"):
        return pi["id"], payer_client_secret(uow.deps, doc)
    generation = len(doc.get("payment_intents") or [pi["id"]])
    if generation >= MAX_INTENTS:
        raise Conflict("This invoice's payment was renewed too many times; contact the "
                       "merchant.", code="invoice_renewals_exhausted")
    principal = Principal(kind="service", id=f"invoice:{invoice_id}", tenant_id=doc["tenant"],
                          livemode=doc["livemode"], project_id=doc.get("project_id"))
    fields = _new_intent(uow, principal, {**doc, "payment_intents": doc.get("payment_intents")
                                          or [pi["id"]]},
                         doc["number"], f"{_intent_key(invoice_id)}:{generation}")
    fields["updated_at"] = uow.now
    uow.update(ref, fields)
    return fields["payment_intent"], payer_client_secret(uow.deps, {**doc, **fields})


# --- reads ---------------------------------------------------------------------------------------
def _is_invoice_id(value: str) -> bool:
    return isinstance(value, str) and is_doc_id(value) and value.startswith("in_")


def _owned(doc: dict[str, Any] | None, principal: Principal) -> dict[str, Any]:
    if doc is None or doc.get("tenant") != principal.tenant_id or \
            doc.get("livemode") != principal.livemode:
        raise NotFound("No such invoice.", code="resource_missing")
    return doc


def load(uow: UnitOfWork, principal: Principal, invoice_id: str) -> tuple[Any, dict[str, Any]]:
    """The caller's invoice through the unit, or 404 (another merchant's, the other mode's and a
    malformed id look the same)."""
    if not _is_invoice_id(invoice_id):
        raise NotFound("No such invoice.", code="resource_missing")
    ref = invoice_ref(uow.db, invoice_id)
    snap = uow.get(ref)
    return ref, _owned(snap.to_dict() if snap.exists else None, principal)


def _expect(doc: dict[str, Any], allowed: tuple[str, ...], action: str) -> None:
    if doc["status"] not in allowed:
        raise InvoiceStateError(f"An invoice that is {doc['status']} cannot be {action}.")


def retrieve(uow: UnitOfWork, principal: Principal, invoice_id: str) -> Invoice:
    return resource(load(uow, principal, invoice_id)[1])


def all_lines(uow: UnitOfWork, principal: Principal, invoice_id: str) -> ListResponse[Line]:
    """Every line (at most ``MAX_LINES``: one page)."""
    doc = load(uow, principal, invoice_id)[1]
    return ListResponse[Line](data=[_line(x) for x in doc.get("lines") or []], has_more=False,
                              url=f"/v1/invoices/{invoice_id}/lines")


def list_invoices(deps, principal: Principal, query: InvoiceListQuery) -> ListResponse[Invoice]:
    """Newest first. Composite indexes: (tenant, livemode, created_at desc), and the same with
    status or customer_email between livemode and created_at."""
    col = deps.db.collection(COLLECTION)
    q, belongs = tenant_mode_query(col, principal)
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    if query.customer_email:
        q = q.where(filter=FieldFilter("customer_email", "==", query.customer_email.lower()))
    page = paginate(q, col, query, url="/v1/invoices", to_resource=resource,
                    belongs=belongs)
    return ListResponse[Invoice](data=page.data, has_more=page.has_more, url=page.url)


def hosted_url(deps, invoice_id: str) -> str:
    return f"{deps.settings.public_base_url.rstrip('/')}/pay/invoice/{invoice_id}"


def payer_client_secret(deps, doc: dict[str, Any]) -> str | None:
    """The invoice intent's client secret, for the hosted page (issue 10) to let the customer
    pay; None for a draft or a zero invoice."""
    sealed = doc.get("intent_client_secret")
    if not sealed:
        return None
    return secrets_at_rest.envelope(deps).open_text(
        sealed, context=secrets_at_rest.context(COLLECTION, doc["id"], SECRET_PURPOSE))
