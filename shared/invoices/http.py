"""``/v1/invoices`` and ``/v1/payment_links``, and the consumer that marks invoices paid.

Merchant routes take a user in a merchant context (``Payloom-Merchant``) with a high enough
role (read: viewer; write: developer, the ``create_payments`` action) or one of the merchant's
API keys with the ``payments:read`` / ``payments:write`` scopes (invoices and links are
ways of taking payments; a separate scope family would need ``shared/identity/apikeys/scopes.py``). The one public route is a
visitor starting to pay a payment link (rate-limited per address, counted in Firestore so the
limit holds across instances).
"""
from __future__ import annotations

import logging

from pydantic import Field

from shared.invoices import button, invoices, links
from shared.invoices.models import (
    Button,
    Checkout,
    CreateInvoice,
    CreateLink,
    Invoice,
    InvoiceListQuery,
    Line,
    LinkListQuery,
    PaymentLink,
    StartCheckout,
    UpdateInvoice,
    UpdateLink,
)
from shared.merchants.roles import require
from shared.platform import logs
from shared.platform.consumer import EventConsumer
from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import PUBLIC, Context, Router

MERCHANT = ("user", "api_key")
invoices_api = Router("invoices", public_prefix="invoices", tags=["invoices"])
links_api = Router("payment_links", public_prefix="payment_links", tags=["payment_links"])
CHECKOUT_IP = Limit("payment_links.checkout.ip", 30, 60, shared=True)
_log = logs.get_logger(__name__)


# --- invoices ------------------------------------------------------------------------------------
@invoices_api.post("/", body=CreateInvoice, response=Invoice, status=201,
                   scopes=["payments:write"], auth=MERCHANT,
                   rate_limits=[(Limit("invoices.create", 300, 60), "tenant")])
def create_invoice(ctx: Context):
    """Create a draft invoice."""
    require(ctx.principal, "create_payments")
    return invoices.create(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@invoices_api.get("/", query=InvoiceListQuery, response=ListResponse[Invoice],
                  scopes=["payments:read"], auth=MERCHANT)
def list_invoices(ctx: Context):
    """The merchant's invoices in the caller's mode, newest first; filter by status or
    customer_email."""
    require(ctx.principal, "read")
    return invoices.list_invoices(ctx.deps, ctx.principal, ctx.query)


@invoices_api.get("/{invoice_id}", response=Invoice, scopes=["payments:read"], auth=MERCHANT)
def get_invoice(ctx: Context, invoice_id: str):
    """One invoice."""
    require(ctx.principal, "read")
    return invoices.retrieve(ctx.uow, ctx.principal, invoice_id)


@invoices_api.get("/{invoice_id}/lines", response=ListResponse[Line], scopes=["payments:read"],
                  auth=MERCHANT)
def get_lines(ctx: Context, invoice_id: str):
    """Every line of an invoice (the resource shows the first ten)."""
    require(ctx.principal, "read")
    return invoices.all_lines(ctx.uow, ctx.principal, invoice_id)


@invoices_api.post("/{invoice_id}", body=UpdateInvoice, response=Invoice,
                   scopes=["payments:write"], auth=MERCHANT)
def update_invoice(ctx: Context, invoice_id: str):
    """Change a draft."""
    require(ctx.principal, "create_payments")
    return invoices.update(ctx.uow, ctx.principal, invoice_id, ctx.body)


@invoices_api.delete("/{invoice_id}", status=204, scopes=["payments:write"], auth=MERCHANT)
def delete_invoice(ctx: Context, invoice_id: str):
    """Delete a draft (a finalized invoice is voided instead)."""
    require(ctx.principal, "create_payments")
    invoices.delete_draft(ctx.uow, ctx.principal, invoice_id)


@invoices_api.post("/{invoice_id}/finalize", response=Invoice, scopes=["payments:write"],
                   auth=MERCHANT)
def finalize_invoice(ctx: Context, invoice_id: str):
    """Number the invoice, create its payment intent and open it."""
    require(ctx.principal, "create_payments")
    return invoices.finalize(ctx.uow, ctx.principal, invoice_id)


@invoices_api.post("/{invoice_id}/void", response=Invoice, scopes=["payments:write"],
                   auth=MERCHANT)
def void_invoice(ctx: Context, invoice_id: str):
    """Void an open or uncollectible invoice (its intent is canceled)."""
    require(ctx.principal, "create_payments")
    return invoices.void(ctx.uow, ctx.principal, invoice_id)


@invoices_api.post("/{invoice_id}/mark_uncollectible", response=Invoice,
                   scopes=["payments:write"], auth=MERCHANT)
def mark_uncollectible(ctx: Context, invoice_id: str):
    """Stop collecting an open invoice (the customer may still pay it)."""
    require(ctx.principal, "create_payments")
    return invoices.mark_uncollectible(ctx.uow, ctx.principal, invoice_id)


# --- payment links -------------------------------------------------------------------------------
@links_api.post("/", body=CreateLink, response=PaymentLink, status=201,
                scopes=["payments:write"], auth=MERCHANT,
                rate_limits=[(Limit("payment_links.create", 300, 60), "tenant")])
def create_link(ctx: Context):
    """Create a payment link."""
    require(ctx.principal, "create_payments")
    return links.create(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@links_api.get("/", query=LinkListQuery, response=ListResponse[PaymentLink],
               scopes=["payments:read"], auth=MERCHANT)
def list_links(ctx: Context):
    """The merchant's payment links in the caller's mode, newest first."""
    require(ctx.principal, "read")
    return links.list_links(ctx.deps, ctx.principal, ctx.query)


@links_api.get("/{link_id}", response=PaymentLink, scopes=["payments:read"], auth=MERCHANT)
def get_link(ctx: Context, link_id: str):
    """One payment link."""
    require(ctx.principal, "read")
    return links.retrieve(ctx.uow, ctx.principal, link_id)


@links_api.post("/{link_id}", body=UpdateLink, response=PaymentLink,
                scopes=["payments:write"], auth=MERCHANT)
def update_link(ctx: Context, link_id: str):
    """Activate or deactivate a link; change its description or metadata."""
    require(ctx.principal, "create_payments")
    return links.update(ctx.uow, ctx.principal, link_id, ctx.body)


class ButtonQuery(RequestModel):
    label: str | None = Field(None, min_length=1, max_length=60,
                              description="The button's text; default \"Pay <amount>\".")


@links_api.get("/{link_id}/button", query=ButtonQuery, response=Button,
               scopes=["payments:read"], auth=MERCHANT)
def get_button(ctx: Context, link_id: str):
    """An HTML snippet (a styled link, no script) to embed the payment link on a page."""
    require(ctx.principal, "read")
    doc = links.load(ctx.uow, ctx.principal, link_id)[1]
    label = ctx.query.label if ctx.query and ctx.query.label else button.default_label(doc)
    return Button(payment_link=link_id, html=button.snippet(
        links.link_url(ctx.deps, link_id), label, title=doc.get("description")))


@links_api.post("/{link_id}/intents", body=StartCheckout, response=Checkout, status=201,
                auth=PUBLIC, rate_limits=[(CHECKOUT_IP, "ip")])
def start_checkout(ctx: Context, link_id: str):
    """A visitor starts paying: a payment intent for this link (the same one for the same
    client_key) with its client secret."""
    return links.start_checkout(ctx.uow, link_id, ctx.body)


# --- events ----------------------------------------------------------------------------------------
consume = EventConsumer("invoices_events")


@consume.on("payment_intent.succeeded")
@consume.on("payment_intent.overpaid")
@consume.on("payment_intent.paid_late")
def _intent_paid(uow, event):
    outcome = invoices.on_intent_paid(uow, event)
    if outcome not in ("paid", "not_an_invoice"):
        logs.log(_log, logging.INFO, "invoice not marked paid", event_id=event.id, outcome=outcome)


@consume.on("payment_intent.reorged")
def _intent_reorged(uow, event):
    invoices.on_intent_reorged(uow, event)
