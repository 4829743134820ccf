"""Payment links: a reusable, shareable page that makes a fresh payment intent per visitor.

Document ``payment_links/{plink_…}`` (tenant, livemode, pricing, active). A link is priced one
of three ways: ``line_items`` (their sum, no tax), a fixed ``amount``, or ``custom_amount`` (the
visitor chooses within minimum..maximum, e.g. donations, tips).

Checkout (``POST /v1/payment_links/{id}/intents``, public): a visitor's page sends a random
``client_key`` once per visit. The intent's id derives from (link, client key) through
``intents.create``'s idempotency key, so a visitor's retries (double clicks, a lost answer, even
from another address) give the SAME intent, never a second one. The intent's client secret is
shown once by ``intents.create``; so that a retry can pay too, it is kept sealed
(``secrets_at_rest``) in ``payment_link_checkouts/{pi_…}`` and shown again to whoever presents
the same client key (the key is the visitor's bearer proof; 16+ random characters). The
document expires with the intent's late window (TTL field ``expires_at``).

A client key reused with a different amount is a 409 (``client_key_reused``): one key, one
intent, one amount. An inactive link, a link of another mode or a missing one: 404 for the
visitor (nothing tells a stranger whether a link ever existed).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.invoices import totals
from shared.invoices.models import (
    LINK_EVENTS,
    Checkout,
    CreateLink,
    LinkListQuery,
    PaymentLink,
    StartCheckout,
    UpdateLink,
)
from shared.ledger import assets
from shared.merchants.branding_rules import return_urls
from shared.payments import intents
from shared.payments.models import CreateIntent
from shared.platform import secrets_at_rest
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest, NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse, paginate, tenant_mode_query
from shared.platform.uow import UnitOfWork

COLLECTION = "payment_links"
CHECKOUTS = "payment_link_checkouts"
SECRET_PURPOSE = "client_secret"


def link_ref(db, link_id: str):
    return db.collection(COLLECTION).document(link_id)


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def link_url(deps, link_id: str) -> str:
    return f"{deps.settings.public_base_url.rstrip('/')}/pay/link/{link_id}"


def resource(doc: dict[str, Any], deps) -> PaymentLink:
    return PaymentLink(
        id=doc["id"], merchant=doc["tenant"], project_id=doc.get("project_id"),
        livemode=doc["livemode"], active=doc["active"], url=link_url(deps, doc["id"]),
        currency=doc["currency"], amount=doc.get("amount"), line_items=doc.get("line_items"),
        custom_amount=doc.get("custom_amount"), description=doc.get("description"),
        metadata=doc.get("metadata") or {}, payment_method_types=doc.get("payment_method_types"),
        success_url=doc.get("success_url"), cancel_url=doc.get("cancel_url"),
        created=_ts(doc["created_at"]), updated=_ts(doc["updated_at"]))


def _emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(LINK_EVENTS[name].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data={"object": resource(doc, uow.deps).model_dump(mode="json")})


# --- merchant side --------------------------------------------------------------------------------
def create(uow: UnitOfWork, principal: Principal, body: CreateLink,
           idempotency_key: str | None) -> PaymentLink:
    asset = assets.get_asset(body.currency, param="currency")
    line_items = amount = None
    if body.line_items is not None:
        t = totals.compute([totals.LineInput(x.quantity, x.unit_amount) for x in body.line_items])
        line_items = [{"description": x.description, "quantity": x.quantity,
                       "unit_amount": x.unit_amount, "amount": lt.amount}
                      for x, lt in zip(body.line_items, t.lines)]
        amount = t.total
        if amount == 0:
            raise InvalidRequest("A payment link's line items must add up to more than zero.",
                                 code="amount_not_positive", param="line_items")
    elif body.amount is not None:
        amount = body.amount
    custom = body.custom_amount.model_dump() if body.custom_amount else None
    urls = return_urls(body, {"success_url", "cancel_url"}, livemode=principal.livemode)
    for value, param in ((amount, "amount"), *((custom[k], f"custom_amount.{k}")
                                               for k in ("minimum", "maximum") if custom)):
        if value is not None:
            assets.check_amount(value, asset, param=param)
    merchant = principal.tenant_id
    link_id = (derived_id("plink", merchant, str(principal.livemode), idempotency_key)
               if idempotency_key else new_id("plink"))
    ref = link_ref(uow.db, link_id)
    snap = uow.get(ref)
    if snap.exists:
        return resource(_owned(snap.to_dict(), principal), uow.deps)
    now = uow.now
    doc = {"id": link_id, "object": "payment_link", "tenant": merchant,
           "livemode": principal.livemode, "project_id": principal.project_id,
           "active": body.active, "currency": asset.code, "amount": amount,
           "line_items": line_items, "custom_amount": custom, "description": body.description,
           "metadata": body.metadata or {}, "payment_method_types": body.payment_method_types,
           **urls, "created_at": now, "updated_at": now,
           "created_by": principal.actor_id or principal.id}
    uow.create(ref, doc)
    _emit(uow, doc, "created")
    return resource(doc, uow.deps)


def _owned(doc: dict[str, Any] | None, principal: Principal) -> dict[str, Any]:
    if doc is None or doc.get("tenant") != principal.tenant_id or \
            doc.get("livemode") != principal.livemode:
        raise NotFound("No such payment link.", code="resource_missing")
    return doc


def _is_link_id(value: str) -> bool:
    return isinstance(value, str) and is_doc_id(value) and value.startswith("plink_")


def load(uow: UnitOfWork, principal: Principal, link_id: str) -> tuple[Any, dict[str, Any]]:
    if not _is_link_id(link_id):
        raise NotFound("No such payment link.", code="resource_missing")
    ref = link_ref(uow.db, link_id)
    snap = uow.get(ref)
    return ref, _owned(snap.to_dict() if snap.exists else None, principal)


def retrieve(uow: UnitOfWork, principal: Principal, link_id: str) -> PaymentLink:
    return resource(load(uow, principal, link_id)[1], uow.deps)


def update(uow: UnitOfWork, principal: Principal, link_id: str, body: UpdateLink) -> PaymentLink:
    """Activate, deactivate, change description or metadata (the price is fixed: make a new
    link for a new price, as Stripe). Emits ``payment_link.updated`` when something changed."""
    ref, doc = load(uow, principal, link_id)
    given = body.model_fields_set
    change: dict[str, Any] = {}
    if "active" in given and body.active is not None and body.active != doc["active"]:
        change["active"] = body.active
    if "description" in given:
        change["description"] = body.description
    if "metadata" in given:
        change["metadata"] = body.metadata or {}
    change.update(return_urls(body, given, livemode=principal.livemode))
    change = {k: v for k, v in change.items() if doc.get(k) != v}
    if not change:
        return resource(doc, uow.deps)
    change["updated_at"] = uow.now
    uow.update(ref, change)
    doc = {**doc, **change}
    _emit(uow, doc, "updated")
    return resource(doc, uow.deps)


def list_links(deps, principal: Principal, query: LinkListQuery) -> ListResponse[PaymentLink]:
    """Newest first. Composite indexes: (tenant, livemode, created_at desc) and
    (tenant, livemode, active, created_at desc)."""
    col = deps.db.collection(COLLECTION)
    q, belongs = tenant_mode_query(col, principal)
    if query.active is not None:
        q = q.where(filter=FieldFilter("active", "==", query.active == "true"))
    page = paginate(q, col, query, url="/v1/payment_links",
                    to_resource=lambda d: resource(d, deps),
                    belongs=belongs)
    return ListResponse[PaymentLink](data=page.data, has_more=page.has_more, url=page.url)


# --- visitor side -----------------------------------------------------------------------------
def _amount_for(doc: dict[str, Any], asked: int | None) -> int:
    custom = doc.get("custom_amount")
    if custom is None:
        if asked is not None:
            raise InvalidRequest("This payment link has a fixed price; do not send an amount.",
                                 code="parameter_unknown", param="amount")
        return int(doc["amount"])
    if asked is None:
        if custom.get("preset") is not None:
            return int(custom["preset"])
        raise InvalidRequest("Choose an amount for this payment link.",
                             code="parameter_missing", param="amount")
    if not custom["minimum"] <= asked <= custom["maximum"]:
        raise InvalidRequest(f"The amount must lie between {custom['minimum']} and "
                             f"{custom['maximum']}.", code="amount_out_of_range", param="amount")
    return asked


def checkout_ref(db, intent_id: str):
    return db.collection(CHECKOUTS).document(intent_id)


def _context(intent_id: str) -> str:
    return secrets_at_rest.context(CHECKOUTS, intent_id, SECRET_PURPOSE)


def start_checkout(uow: UnitOfWork, link_id: str, body: StartCheckout) -> Checkout:
    """A visitor's payment intent for the link (the same one for the same client key). One
    batch read (link, merchant, settings, the derived intent, its checkout record), one commit."""
    from shared.merchants import settings as msettings
    from shared.merchants import store
    if not _is_link_id(link_id):
        raise NotFound("No such payment link.", code="resource_missing")
    db = uow.db
    ref = link_ref(db, link_id)
    snap = uow.get(ref)
    doc = snap.to_dict() if snap.exists else None
    if doc is None or not doc.get("active"):
        raise NotFound("No such payment link.", code="resource_missing")
    merchant, live = doc["tenant"], doc["livemode"]
    key = f"plink:{link_id}:{body.client_key}"
    intent_id = derived_id("pi", merchant, str(live), key)
    cref = checkout_ref(db, intent_id)
    snaps = uow.get_all([cref, intents.intent_ref(db, intent_id), store.merchant_ref(db, merchant),
                         msettings.settings_ref(db, merchant)])
    amount = _amount_for(doc, body.amount)
    # the merchant acting through its link: tenant and mode are the link's, never the caller's
    principal = Principal(kind="service", id=f"payment_link:{link_id}", tenant_id=merchant,
                          livemode=live, project_id=doc.get("project_id"))
    existing = snaps[cref.path]
    if existing.exists:
        record = existing.to_dict()
        if record["amount"] != amount:
            raise Conflict("This client_key already started a payment of another amount.",
                           code="client_key_reused", param="client_key")
        pi = intents.resource(intents.load_for_update(uow, intent_id)[1])
        secret = secrets_at_rest.envelope(uow.deps).open_text(record["client_secret"],
                                                              context=_context(intent_id))
        return _checkout(link_id, pi, secret)
    metadata = {"payment_link": link_id}
    pi = intents.create(uow, principal, CreateIntent(
        amount=amount, currency=doc["currency"], payment_method_types=doc.get("payment_method_types"),
        description=(doc.get("description") or None), metadata=metadata,
        customer_email=body.customer_email, success_url=doc.get("success_url"),
        cancel_url=doc.get("cancel_url")), key)
    if pi.client_secret is None:   # the intent exists without its record: cannot show it again
        raise Conflict("This client_key was used before; start again with a new one.",
                       code="client_key_reused", param="client_key")
    sealed = secrets_at_rest.envelope(uow.deps).seal(pi.client_secret, reuse_key=True,
                                                      context=_context(intent_id))
    late_until = dt.datetime.fromtimestamp(pi.late_until, dt.UTC)
    uow.create(cref, {"intent_id": intent_id, "payment_link": link_id, "tenant": merchant,
                      "livemode": live, "amount": amount, "client_secret": sealed,
                      "created_at": uow.now, "expires_at": late_until})
    return _checkout(link_id, pi, pi.client_secret)


def _checkout(link_id: str, pi, secret: str) -> Checkout:
    return Checkout(payment_link=link_id, payment_intent=pi.id, client_secret=secret,
                    amount=pi.amount, currency=pi.currency, status=pi.status,
                    expires_at=pi.expires_at, livemode=pi.livemode)

