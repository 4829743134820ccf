"""Invoices (list, a one-line draft, finalize) and payment links (list, create, turn on or off)
through the invoices capability's services; writing needs ``create_payments`` (developer and
up), reading the viewer role. The create forms carry an ``idem`` key: a resubmitted form finds
the invoice or link it already made. Both forms take optional return URLs (``success_url``,
``cancel_url``; empty: the merchant's branding defaults), checked by the API's own model and
service rules, so a URL the API refuses is a form error here."""
from __future__ import annotations

from typing import Any

from shared.dashboard import forms, guard, limits
from shared.dashboard.members import Member
from shared.invoices import invoices, links
from shared.invoices.models import (
    CreateInvoice,
    CreateLink,
    InvoiceListQuery,
    InvoiceStatus,
    LinkListQuery,
    UpdateLink,
)
from shared.ledger import assets
from shared.merchants.branding_rules import MAX_URL
from shared.platform.errors import PayloomError
from shared.platform.ratelimit import enforce
from shared.platform.uow import UnitOfWork, run_unit
from shared.web.pages import Page

PAGE_SIZE = 25
RETURN_URLS = ("success_url", "cancel_url")
KEPT_CHARS = MAX_URL   # a refused form shows each typed value back whole (the longest field)
CURRENCIES = tuple(assets.ASSETS)
STATUSES = InvoiceStatus.__args__


def _after(ctx) -> dict[str, Any]:
    after = ctx.request.args.get("after")
    return {"starting_after": after} if after else {}


# --- invoices ------------------------------------------------------------------------------------
def invoice_listing(ctx, member: Member, *, status: int = 200, **extra) -> Page:
    wanted = ctx.request.args.get("status") or None
    error, page = None, None
    try:
        query = forms.validate(InvoiceListQuery, {"limit": PAGE_SIZE, **_after(ctx),
                                                  **({"status": wanted} if wanted else {})})
        page = invoices.list_invoices(ctx.deps, member.principal, query)
    except PayloomError as exc:
        if exc.status >= 500:
            raise
        error, status = exc.message, exc.status
    values = {"page": page, "status": wanted, "statuses": STATUSES, "currencies": CURRENCIES,
              "idem": forms.new_idem(), "error": error, "form": {},
              "done": ctx.request.args.get("done"), "ref": ctx.request.args.get("ref")}
    return Page("dashboard/invoices.html", {**values, **extra}, status=status)


@guard.member_page("GET", "/invoices", section="invoices")
def invoice_list(ctx, member: Member):
    return invoice_listing(ctx, member)


def _create(ctx, member: Member, *, build, make, limit, listing, keep: tuple[str, ...],
            back: str, done: str):
    """The create forms: build the request from the form, make it idempotently under the API's
    limit; a refusal re-renders the list with the message and what was typed."""
    try:
        key = forms.idem(ctx.form)
        body = build(ctx.form, forms.text(ctx.form, "currency", 10).upper())
        enforce(ctx.deps.db, limit, member.principal.tenant_id, ctx.now)
        made = run_unit(ctx.deps, lambda uow: make(uow, member.principal, body, key))
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 403:
            raise
        return listing(ctx, member, status=exc.status, error=exc.message,
                       form={k: ctx.form.get(k, "")[:KEPT_CHARS] for k in keep})
    return guard.redirect(ctx, back, done=done, ref=made.id)


def _return_urls(f) -> dict[str, str]:
    """The return URLs typed (empty ones left out: the merchant's defaults apply)."""
    typed = {name: forms.text(f, name, MAX_URL) for name in RETURN_URLS}
    return {name: value for name, value in typed.items() if value}


def _invoice(f, currency: str) -> CreateInvoice:
    return forms.validate(CreateInvoice, {**_return_urls(f),
        "customer": {"email": forms.text(f, "email", 254),
                     "name": forms.text(f, "customer_name", 200) or None},
        "currency": currency, "memo": forms.text(f, "memo", 2000) or None,
        "lines": [{"description": forms.text(f, "description", 250),
                   "quantity": forms.integer(f, "quantity", 1, low=1, high=1_000_000),
                   "unit_amount": forms.amount(f, "unit_amount", currency)}]})


@guard.member_page("POST", "/invoices", need="create_payments", section="invoices")
def create_invoice(ctx, member: Member):
    """A draft with one line (more lines: the API)."""
    return _create(ctx, member, build=_invoice, make=invoices.create,
                   limit=limits.INVOICES_CREATE, listing=invoice_listing, back="/invoices",
                   done="invoice_created", keep=("email", "customer_name", "currency",
                                                 "description", "quantity", "unit_amount", "memo",
                                                 *RETURN_URLS))


@guard.member_page("POST", "/invoices/{invoice_id}/finalize", need="create_payments",
                   section="invoices")
def finalize_invoice(ctx, member: Member):
    """Number the draft, create its payment intent and open it for payment."""
    invoice_id = ctx.params["invoice_id"]
    made = run_unit(ctx.deps, lambda uow: invoices.finalize(uow, member.principal, invoice_id))
    return guard.redirect(ctx, "/invoices", done="invoice_finalized", ref=made.number or made.id)


# --- payment links -------------------------------------------------------------------------------
def link_listing(ctx, member: Member, *, status: int = 200, **extra) -> Page:
    page = links.list_links(ctx.deps, member.principal,
                            forms.validate(LinkListQuery, {"limit": PAGE_SIZE, **_after(ctx)}))
    values = {"page": page, "currencies": CURRENCIES, "idem": forms.new_idem(), "error": None,
              "form": {}, "done": ctx.request.args.get("done"), "ref": ctx.request.args.get("ref")}
    return Page("dashboard/links.html", {**values, **extra}, status=status)


@guard.member_page("GET", "/links", section="links")
def link_list(ctx, member: Member):
    return link_listing(ctx, member)


def _link(f, currency: str) -> CreateLink:
    return forms.validate(CreateLink, {
        **_return_urls(f), "currency": currency, "amount": forms.amount(f, "amount", currency),
        "description": forms.text(f, "description", 500) or None})


@guard.member_page("POST", "/links", need="create_payments", section="links")
def create_link(ctx, member: Member):
    """A link for a fixed amount (line items or a visitor's amount: the API)."""
    return _create(ctx, member, build=_link, make=links.create, limit=limits.LINKS_CREATE,
                   listing=link_listing, back="/links", done="link_created",
                   keep=("currency", "amount", "description", *RETURN_URLS))


@guard.member_page("POST", "/links/{link_id}/active", need="create_payments", section="links")
def set_link_active(ctx, member: Member):
    """Turn a link on, or off after a confirmation (visitors can no longer start paying)."""
    link_id, active = ctx.params["link_id"], ctx.form.get("active") == "true"
    link = links.retrieve(UnitOfWork(ctx.deps), member.principal, link_id)   # 404 unless ours
    if not active and not forms.confirmed(ctx.form):
        return Page("dashboard/confirm.html", {
            "action": f"/links/{link.id}/active", "fields": {"active": "false"}, "danger": True,
            "question": ctx._("Turn off the payment link %(id)s?", id=link.id),
            "detail": ctx._("Visitors can no longer start paying through it. You can turn it "
                            "on again later."),
            "confirm_label": ctx._("Turn off"), "cancel": "/links"})
    run_unit(ctx.deps, lambda uow: links.update(uow, member.principal, link_id,
                                                UpdateLink(active=active)))
    return guard.redirect(ctx, "/links", done="link_on" if active else "link_off", ref=link.id)
