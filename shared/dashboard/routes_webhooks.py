"""Webhook endpoints: the list, one endpoint with its deliveries and attempts, and the replay
button (``replay.resend``: a new run of the event's delivery with the same ``webhook-id``).

Reading needs the viewer role; replaying and test events need ``manage_webhooks`` (developer
and up), the role matrix's rule for webhooks. Another merchant's or the other mode's endpoint
is a 404 (``endpoints.owned``)."""
from __future__ import annotations

from google.cloud.firestore import FieldFilter

from shared.dashboard import forms, guard, limits
from shared.dashboard.members import Member
from shared.platform.errors import NotFound
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListQuery, paginate
from shared.platform.ratelimit import enforce
from shared.platform.uow import run_unit
from shared.web.pages import Page
from shared.webhooks import deliveries, endpoints, replay
from shared.webhooks.delivery_models import DeliveryListQuery
from shared.webhooks.models import EndpointListQuery

PAGE_SIZE = 25
STATUSES = ("pending", "sending", "retrying", "succeeded", "failed", "dead_lettered", "canceled")


@guard.member_page("GET", "/webhooks", section="webhooks")
def endpoint_list(ctx, member: Member):
    found = endpoints.list_endpoints(ctx.deps, member.principal, EndpointListQuery(limit=100))
    return Page("dashboard/webhooks.html", {"endpoints": found.data})


def _deliveries(ctx, endpoint_id: str, query: DeliveryListQuery):
    """The endpoint's deliveries, newest first (the API's list; index endpoint_id, created_at)."""
    col = ctx.deps.db.collection(deliveries.COLLECTION)
    q = col.where(filter=FieldFilter("endpoint_id", "==", endpoint_id))
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    return paginate(q, col, query, url="", to_resource=deliveries.to_resource,
                    belongs=lambda d: d.get("endpoint_id") == endpoint_id)


def _attempts(ctx, endpoint_id: str):
    col = ctx.deps.db.collection(deliveries.ATTEMPTS)
    q = col.where(filter=FieldFilter("endpoint_id", "==", endpoint_id))
    return paginate(q, col, ListQuery(limit=PAGE_SIZE), url="",
                    to_resource=deliveries.attempt_resource).data


@guard.member_page("GET", "/webhooks/{endpoint_id}", section="webhooks")
def endpoint(ctx, member: Member):
    endpoint_id = ctx.params["endpoint_id"]
    found = endpoints.get(ctx.deps, member.principal, endpoint_id)   # 404 unless ours, this mode
    status = ctx.request.args.get("status") or None
    query = forms.validate(DeliveryListQuery, {
        "limit": PAGE_SIZE, **({"status": status} if status else {}),
        **({"starting_after": ctx.request.args["after"]} if ctx.request.args.get("after") else {})})
    return Page("dashboard/endpoint.html", {
        "endpoint": found, "deliveries": _deliveries(ctx, endpoint_id, query),
        "attempts": _attempts(ctx, endpoint_id), "status": status, "statuses": STATUSES,
        "done": ctx.request.args.get("done"), "ref": ctx.request.args.get("ref")})


def _back(ctx) -> str:
    """Where the replay was asked from: the payment's page, else the endpoint's."""
    back = ctx.form.get("back") or ""
    return back if back.startswith("pi_") and is_doc_id(back) else ""


@guard.member_page("POST", "/webhooks/{endpoint_id}/replay", need="manage_webhooks",
                   section="webhooks")
def replay_event(ctx, member: Member):
    """Send one event to the endpoint again: a new run, the same webhook-id."""
    endpoint_id, event_id = ctx.params["endpoint_id"], forms.text(ctx.form, "event", 100)
    if not (is_doc_id(event_id) and event_id.startswith("evt_")):
        raise NotFound(ctx._("No such event."), param="event")
    enforce(ctx.deps.db, limits.REPLAY, member.principal.actor_id or member.principal.id, ctx.now)
    sent = run_unit(ctx.deps, lambda uow: replay.resend(uow, member.principal, endpoint_id, event_id))
    if back := _back(ctx):
        return guard.redirect(ctx, f"/payments/{back}", done="replayed", ref=sent.event)
    return guard.redirect(ctx, f"/webhooks/{endpoint_id}", done="replayed", ref=sent.event)


@guard.member_page("POST", "/webhooks/{endpoint_id}/test", need="manage_webhooks",
                   section="webhooks")
def send_test(ctx, member: Member):
    """Send a ``webhook_endpoint.test`` event to this endpoint only."""
    endpoint_id = ctx.params["endpoint_id"]
    enforce(ctx.deps.db, limits.REPLAY, member.principal.actor_id or member.principal.id, ctx.now)
    sent = run_unit(ctx.deps, lambda uow: replay.send_test(uow, member.principal, endpoint_id))
    return guard.redirect(ctx, f"/webhooks/{endpoint_id}", done="tested", ref=sent.event)
