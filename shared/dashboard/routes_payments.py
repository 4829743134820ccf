"""Payments (list with filters, detail with its timeline) and refunds (list; refund a payment
after a confirmation step). Reads and the refund go through the payments and refunds services
with the member's principal: another merchant's or the other mode's intent is a 404."""
from __future__ import annotations

from typing import Any

from shared.dashboard import forms, guard, limits, timeline
from shared.dashboard.members import Member
from shared.payments import intents, states
from shared.payments.models import IntentListQuery
from shared.platform.errors import NotFound, PayloomError
from shared.platform.models import is_doc_id
from shared.platform.ratelimit import enforce
from shared.platform.uow import UnitOfWork, run_unit
from shared.refunds import service as refunds
from shared.refunds.models import CreateRefund, Reason, RefundListQuery
from shared.reports import days
from shared.web.pages import Page

PAGE_SIZE = 25
REASONS = Reason.__args__


def _filters(args) -> dict[str, str]:
    keys = ("status", "email", "from", "to")
    return {k: (args.get(k) or "").strip()[:254] for k in keys if (args.get(k) or "").strip()}


def _query(filters: dict[str, str], after: str | None) -> IntentListQuery:
    data: dict[str, Any] = {"limit": PAGE_SIZE, "starting_after": after or None,
                            "status": filters.get("status"), "customer_email": filters.get("email")}
    if "from" in filters:
        start, _ = days.bounds(days.parse_day(filters["from"], param="from"))
        data["created[gte]"] = int(start.timestamp())
    if "to" in filters:
        _, end = days.bounds(days.parse_day(filters["to"], param="to"))
        data["created[lte]"] = int(end.timestamp()) - 1
    return forms.validate(IntentListQuery, {k: v for k, v in data.items() if v is not None})


@guard.member_page("GET", "/payments", section="payments")
def payments(ctx, member: Member):
    """The merchant's payments in this mode, newest first; filters; go to a payment by id."""
    wanted = (ctx.request.args.get("id") or "").strip()
    if wanted:
        if not (is_doc_id(wanted) and wanted.startswith("pi_")):
            raise NotFound(ctx._("No such payment."), code="resource_missing")
        return guard.redirect(ctx, f"/payments/{wanted}")
    filters = _filters(ctx.request.args)
    error, page = None, None
    try:
        page = intents.list_intents(ctx.deps, member.principal,
                                    _query(filters, ctx.request.args.get("after")))
    except PayloomError as exc:
        if exc.status >= 500:
            raise
        error = exc.message
    return Page("dashboard/payments.html", {"page": page, "filters": filters, "error": error,
                                            "statuses": states.STATUSES},
                status=400 if error else 200)


def refundable(intent) -> int:
    """What the form offers at most (the refunds service decides exactly)."""
    if intent.status not in states.PAID:
        return 0
    return max(0, intent.amount_received - intent.amount_refunded)


def detail(ctx, member: Member, intent_id: str, *, status: int = 200, **extra) -> Page:
    intent = intents.retrieve(UnitOfWork(ctx.deps), member.principal, intent_id)
    found = refunds.list_refunds(ctx.deps, member.principal,
                                 RefundListQuery(payment_intent=intent.id, limit=100))
    values = {"intent": intent, "refunds": found.data, "refundable": refundable(intent),
              "history": timeline.of_payment(ctx.deps, member.principal, intent.id),
              "reasons": REASONS, "idem": forms.new_idem(), "error": None,
              "done": ctx.request.args.get("done"), "ref": ctx.request.args.get("ref")}
    return Page("dashboard/payment.html", {**values, **extra}, status=status)


@guard.member_page("GET", "/payments/{intent_id}", section="payments")
def payment(ctx, member: Member):
    return detail(ctx, member, ctx.params["intent_id"])


@guard.member_page("POST", "/payments/{intent_id}/refund", need="refund_payments",
                   section="payments")
def refund(ctx, member: Member):
    """Refund all or part of a captured payment: first a confirmation page, then the refund.
    The form's ``idem`` is the refund's idempotency key: resubmitting creates nothing new."""
    intent_id = ctx.params["intent_id"]
    intent = intents.retrieve(UnitOfWork(ctx.deps), member.principal, intent_id)
    try:
        key = forms.idem(ctx.form)
        units = forms.amount(ctx.form, "amount", intent.currency, required=False)
        address = forms.text(ctx.form, "address", 100) or None   # crypto: where to send
        body = forms.validate(CreateRefund, {"payment_intent": intent.id, "amount": units,
                                             "reason": ctx.form.get("reason") or None,
                                             "address": address})
        if not forms.confirmed(ctx.form):
            return Page("dashboard/refund_confirm.html", {
                "intent": intent, "amount": units if units is not None else refundable(intent),
                "amount_field": ctx.form.get("amount") or "", "reason": body.reason,
                "address": body.address, "idem": key})
        enforce(ctx.deps.db, limits.REFUNDS_CREATE, member.principal.tenant_id, ctx.now)
        made = run_unit(ctx.deps, lambda uow: refunds.create(uow, member.principal, body, key))
    except PayloomError as exc:
        if exc.status >= 500 or exc.status in (403, 404):
            raise
        return detail(ctx, member, intent_id, status=exc.status, error=exc.message)
    return guard.redirect(ctx, f"/payments/{intent.id}", done="refunded", ref=made.id)


@guard.member_page("GET", "/refunds", section="refunds")
def refund_list(ctx, member: Member):
    """The merchant's refunds in this mode, newest first; optionally of one payment."""
    wanted = (ctx.request.args.get("payment") or "").strip()[:100]
    error, page = None, None
    try:
        query = forms.validate(RefundListQuery, {
            "limit": PAGE_SIZE, **({"payment_intent": wanted} if wanted else {}),
            **({"starting_after": ctx.request.args["after"]} if ctx.request.args.get("after") else {})})
        page = refunds.list_refunds(ctx.deps, member.principal, query)
    except PayloomError as exc:
        if exc.status >= 500:
            raise
        error = exc.message
    return Page("dashboard/refunds.html", {"page": page, "payment": wanted, "error": error},
                status=400 if error else 200)
