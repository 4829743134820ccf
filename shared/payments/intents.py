"""Payment intents: create, read, list, update, cancel, and the stable API the payment methods
build on (``load_for_update``, ``transition``, ``record_received``, ``record_reorged``).

Document ``payment_intents/{pi_…}``: the resource's fields plus what is never shown
(``client_secret_hash``, ``receipts``, ``fees``). ``tenant`` is the merchant; every read is
filtered on tenant AND livemode, and another merchant's or the other mode's intent is a 404.

Receipts: every amount that reached an intent is a receipt ``{reference, amount, final, method,
settled, generation, …}`` keyed by ``reference`` (a chain transfer "network:tx:log", a hold id),
so applying the same receipt twice changes nothing. ``amount_received`` is the sum of FINAL
receipts (what counts towards the status), ``amount_pending`` the sum of the others (what makes
an intent ``processing``). At most ``MAX_RECEIPTS`` per intent (a payer splitting into more is
refused: they stay recorded nowhere but on the chain and the watcher's own records).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.identity.opaque import new_token, token_hash
from shared.ledger import assets
from shared.merchants.branding_rules import return_urls
from shared.payments import settlement, states
from shared.payments.models import (
    EVENTS,
    METHODS,
    TIMELINE_SHOWN,
    CreateIntent,
    IntentListQuery,
    PaymentIntent,
    PaymentIntentWithSecret,
    UpdateIntent,
)
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest, NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse, paginate, tenant_mode_query
from shared.platform.tasks import task_name
from shared.platform.uow import UnitOfWork

COLLECTION = "payment_intents"
TASK_QUEUE, TASK_FUNCTION, EXPIRE_PATH = "payments", "payments_tasks", "/expire"
MAX_RECEIPTS = 100
MAX_TIMELINE = 200
DEFAULT_EXPIRY_S, DEFAULT_LATE_S = 900, 86400


class IntentNotPayable(Conflict):
    code = "intent_not_payable"


# --- merchant terms ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Terms:
    """What an intent copies from its merchant's settings at creation (defaults: BTCPay's)."""
    methods: tuple[str, ...] = METHODS
    assets: tuple[str, ...] | None = None          # None: every ledger asset
    speed_policy: str = "medium"
    tolerance_bps: int = 0
    expiry_seconds: int = DEFAULT_EXPIRY_S
    late_window_seconds: int = DEFAULT_LATE_S
    fees: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def terms_for(uow: UnitOfWork, merchant_id: str) -> Terms:
    """The merchant's settings (``shared.merchants.settings.get_settings``, read through the
    unit: one ``get_all`` of the merchant and settings documents, with whatever was prefetched).
    A merchant that no longer exists is a 404."""
    from shared.merchants.settings import get_settings
    try:
        s = get_settings(uow, merchant_id)
    except LookupError:
        raise NotFound("No such merchant.", code="merchant_not_found") from None
    return Terms(methods=tuple(s.accepted_methods), assets=tuple(s.accepted_assets),
                 speed_policy=s.speed_policy, tolerance_bps=s.payment_tolerance_bps,
                 expiry_seconds=s.intent_expiry_seconds,
                 late_window_seconds=s.late_payment_window_seconds,
                 fees={m: rule.model_dump() for m, rule in s.fee_schedule.items()})


# --- resources ---------------------------------------------------------------------------------
def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def _card_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """``card`` (the processor payment, last error) and ``next_action`` (3-D Secure while
    processing): shown on every read, as Stripe does, not only on the card route's answer."""
    card = doc.get("card") or {}
    if not card:
        return {}
    details = {"processor_payment_id": card.get("processor_id"), "status": card.get("status"),
               "attempts": int(card.get("attempts") or 0),
               "payment_method": card.get("payment_method"),
               "last_payment_error": card.get("last_payment_error")}
    na = card.get("next_action") if doc["status"] == states.PROCESSING else None
    return {"card": details, "next_action": na or None}


def resource(doc: dict[str, Any], *, client_secret: str | None = None) -> PaymentIntent:
    fields = dict(
        id=doc["id"], merchant=doc["tenant"], project_id=doc.get("project_id"),
        livemode=doc["livemode"], amount=doc.get("amount"), currency=doc["currency"],
        amount_received=doc.get("amount_received", 0), amount_pending=doc.get("amount_pending", 0),
        amount_refunded=int((doc.get("refund_totals") or {}).get("amount") or 0),
        status=doc["status"], payment_method_types=doc["payment_method_types"],
        method=doc.get("method"), description=doc.get("description"),
        metadata=doc.get("metadata") or {}, customer_email=doc.get("customer_email"),
        success_url=doc.get("success_url"), cancel_url=doc.get("cancel_url"),
        created=_ts(doc["created_at"]), updated=_ts(doc["updated_at"]),
        expires_at=_ts(doc["expires_at"]), late_until=_ts(doc["late_until"]),
        canceled_at=_ts(doc.get("canceled_at")), cancellation_reason=doc.get("cancellation_reason"),
        succeeded_at=_ts(doc.get("succeeded_at")), tolerance_bps=doc["tolerance_bps"],
        speed_policy=doc["speed_policy"], required_confirmations=doc["required_confirmations"],
        timeline=[{"status": t["status"], "at": _ts(t["at"]), "reason": t.get("reason")}
                  for t in (doc.get("timeline") or [])[-TIMELINE_SHOWN:]],
        settlement=doc.get("settlement"), crypto=doc.get("crypto"), **_card_fields(doc))
    if client_secret is not None:
        return PaymentIntentWithSecret(**fields, client_secret=client_secret)
    return PaymentIntent(**fields)


def intent_ref(db, intent_id: str):
    return db.collection(COLLECTION).document(intent_id)


# --- create --------------------------------------------------------------------------------------
def _validate(body: CreateIntent, terms: Terms) -> tuple[assets.Asset, list[str]]:
    asset = assets.get_asset(body.currency, param="currency")
    if body.amount is not None:
        assets.check_amount(body.amount, asset)
    if terms.assets is not None and asset.code not in terms.assets:
        raise InvalidRequest(f"This merchant does not accept {asset.code}.",
                             code="currency_not_accepted", param="currency")
    methods = body.payment_method_types or [m for m in METHODS if m in terms.methods]
    refused = [m for m in methods if m not in terms.methods]
    if refused:
        raise InvalidRequest(f"This merchant does not accept the {refused[0]} method.",
                             code="payment_method_not_accepted", param="payment_method_types")
    if not methods:
        raise InvalidRequest("This merchant accepts no payment method.",
                             code="payment_method_not_accepted", param="payment_method_types")
    return asset, methods



def create(uow: UnitOfWork, principal: Principal, body: CreateIntent,
           idempotency_key: str | None) -> PaymentIntentWithSecret:
    """One read (the merchant's settings, with the idempotency record) and one commit. The id
    derives from the key when there is one, so a retry whose stored response expired re-finds
    the intent instead of making a second one (its secret, stored hashed, cannot be shown
    again: that answer carries ``client_secret`` null)."""
    merchant = principal.tenant_id
    intent_id = (derived_id("pi", merchant, str(principal.livemode), idempotency_key)
                 if idempotency_key else new_id("pi"))
    ref = intent_ref(uow.db, intent_id)
    uow.prefetch(ref)
    terms = terms_for(uow, merchant)
    asset, methods = _validate(body, terms)
    urls = return_urls(body, {"success_url", "cancel_url"}, livemode=principal.livemode)
    snap = uow.get(ref)
    if snap.exists:
        doc = snap.to_dict()
        if doc["tenant"] != merchant or doc["livemode"] != principal.livemode:
            raise NotFound("No such payment intent.")
        return resource(doc, client_secret=None)
    now = uow.now
    expires_at = now + dt.timedelta(seconds=body.expires_in_seconds or terms.expiry_seconds)
    secret = f"{intent_id}_secret_{new_token('', 24)}"
    doc = {
        "id": intent_id, "object": "payment_intent", "tenant": merchant,
        "project_id": principal.project_id, "livemode": principal.livemode,
        "amount": body.amount, "currency": asset.code, "amount_received": 0, "amount_pending": 0,
        "status": states.REQUIRES_PAYMENT_METHOD, "payment_method_types": methods,
        "method": None, "description": body.description, "metadata": body.metadata,
        "customer_email": body.customer_email.lower() if body.customer_email else None,
        **urls, "client_secret_hash": token_hash(secret), "created_at": now, "updated_at": now,
        "expires_at": expires_at,
        "late_until": expires_at + dt.timedelta(seconds=terms.late_window_seconds),
        "canceled_at": None, "cancellation_reason": None, "succeeded_at": None,
        "tolerance_bps": terms.tolerance_bps, "speed_policy": terms.speed_policy,
        "required_confirmations": states.required_confirmations(terms.speed_policy),
        "timeline": [{"status": states.REQUIRES_PAYMENT_METHOD, "at": now, "reason": "created"}],
        "settlement": None, "crypto": None, "receipts": [],
        "fees": {m: terms.fees[m] for m in methods if m in terms.fees},
        "created_by": principal.actor_id or principal.id,
    }
    uow.create(ref, doc)
    _emit(uow, doc, "created")
    uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=EXPIRE_PATH,
                      body={"intent_id": intent_id}, schedule_time=expires_at,
                      name=task_name("pi-expire", uow.deps.settings.project_id, intent_id))
    return resource(doc, client_secret=secret)


# --- reads ---------------------------------------------------------------------------------------
def _owned(doc: dict[str, Any] | None, principal: Principal) -> dict[str, Any]:
    if doc is None or doc.get("tenant") != principal.tenant_id or \
            doc.get("livemode") != principal.livemode:
        raise NotFound("No such payment intent.", code="resource_missing")
    return doc


def load(uow: UnitOfWork, principal: Principal, intent_id: str) -> tuple[Any, dict[str, Any]]:
    """The caller's intent (read through the unit) or 404: another merchant's, the other
    mode's and a malformed id look the same."""
    if not is_doc_id(intent_id) or not intent_id.startswith("pi_"):
        raise NotFound("No such payment intent.", code="resource_missing")
    ref = intent_ref(uow.db, intent_id)
    snap = uow.get(ref)
    return ref, _owned(snap.to_dict() if snap.exists else None, principal)


def retrieve(uow: UnitOfWork, principal: Principal, intent_id: str) -> PaymentIntent:
    return resource(load(uow, principal, intent_id)[1])


def list_intents(deps, principal: Principal, query: IntentListQuery) -> ListResponse[PaymentIntent]:
    """Newest first. Composite indexes: (tenant, livemode, created_at desc) and the same with
    status or customer_email between livemode and created_at."""
    col = deps.db.collection(COLLECTION)
    q, belongs = tenant_mode_query(col, principal)
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    if query.customer_email:
        q = q.where(filter=FieldFilter("customer_email", "==", query.customer_email.lower()))
    q = query.filter_created(q)
    page = paginate(q, col, query, url="/v1/payment_intents", to_resource=resource,
                    belongs=belongs)
    return ListResponse[PaymentIntent](data=page.data, has_more=page.has_more, url=page.url)


# --- changes by the merchant -----------------------------------------------------------------------
def update(uow: UnitOfWork, principal: Principal, intent_id: str, body: UpdateIntent) -> PaymentIntent:
    ref, doc = load(uow, principal, intent_id)
    if doc["status"] != states.REQUIRES_PAYMENT_METHOD:
        raise IntentNotPayable(f"A payment intent can be changed only while it is "
                               f"requires_payment_method; this one is {doc['status']}.",
                               code="intent_unexpected_state")
    fields: dict[str, Any] = {}
    if "description" in body.model_fields_set:
        fields["description"] = body.description
    if body.metadata is not None:
        merged = {**(doc.get("metadata") or {}), **body.metadata}
        merged = {k: v for k, v in merged.items() if v}
        if len(merged) > 50:
            raise InvalidRequest("metadata holds at most 50 keys", code="parameter_invalid",
                                 param="metadata")
        fields["metadata"] = merged
    if fields:
        fields["updated_at"] = uow.now
        uow.update(ref, fields)
        doc.update(fields)
    return resource(doc)


def cancel(uow: UnitOfWork, principal: Principal, intent_id: str, reason: str | None) -> PaymentIntent:
    ref, doc = load(uow, principal, intent_id)
    if doc["status"] == states.CANCELED:
        return resource(doc)                       # Stripe: canceling twice answers the intent
    if doc["status"] not in states.CANCELABLE:
        raise IntentNotPayable(f"A payment intent that is {doc['status']} cannot be canceled.",
                               code="intent_unexpected_state")
    doc = transition(uow, ref, doc, states.CANCELED, reason=reason or "requested",
                     canceled_at=uow.now, cancellation_reason=reason)
    return resource(doc)


# --- the API the payment methods build on ------------------------------------------------------------
def load_for_update(uow: UnitOfWork, intent_id: str) -> tuple[Any, dict[str, Any]]:
    """Read an intent through the unit (so the unit's write of it is conditional on it being
    unchanged) for a method or a timer: no tenant check, the caller has authorised. 404 if
    missing."""
    if not is_doc_id(intent_id) or not intent_id.startswith("pi_"):
        raise NotFound("No such payment intent.", code="resource_missing")
    ref = intent_ref(uow.db, intent_id)
    snap = uow.get(ref)
    if not snap.exists:
        raise NotFound("No such payment intent.", code="resource_missing")
    return ref, snap.to_dict()


def _emit(uow: UnitOfWork, doc: dict[str, Any], name: str) -> None:
    uow.emit(EVENTS[name].name, tenant=doc["tenant"], livemode=doc["livemode"],
             data={"object": resource(doc).model_dump(mode="json")})


def transition(uow: UnitOfWork, ref, doc: dict[str, Any], status: str, *, reason: str,
               event: str | None = None, **fields: Any) -> dict[str, Any]:
    """Move ``doc`` to ``status`` (checked against ``states.TRANSITIONS``), append the timeline,
    buffer the write of ``fields`` too, and emit ``payment_intent.<event or status>``. Returns
    the updated document. An illegal move is a 409 ``intent_unexpected_state``."""
    current = doc["status"]
    if not states.can_transition(current, status):
        raise IntentNotPayable(f"A payment intent that is {current} cannot become {status}.",
                               code="intent_unexpected_state")
    now = uow.now
    timeline = list(doc.get("timeline") or [])[-(MAX_TIMELINE - 1):]
    timeline.append({"status": status, "at": now, "reason": reason[:200] if reason else None})
    changes = {**fields, "status": status, "timeline": timeline, "updated_at": now}
    if status in states.PAID and not doc.get("succeeded_at"):
        changes.setdefault("succeeded_at", now)
    uow.update(ref, changes)
    doc = {**doc, **changes}
    name = event or (status if status != states.REQUIRES_PAYMENT_METHOD else "payment_failed")
    _emit(uow, doc, name)
    return doc


def _totals(receipts: list[dict[str, Any]]) -> tuple[int, int]:
    final = sum(int(r["amount"]) for r in receipts if r["final"])
    pending = sum(int(r["amount"]) for r in receipts if not r["final"])
    return final, pending


def status_for(doc: dict[str, Any], receipts: list[dict[str, Any]], now: dt.datetime) -> str:
    """The status the receipts call for (pure): ``classify`` on final money, and ``processing``
    when final plus pending money would pay it but final money alone does not yet."""
    final, pending = _totals(receipts)
    expired = now >= doc["expires_at"] or doc["status"] == states.EXPIRED
    late = now < doc["late_until"]
    kw = dict(expired=expired, in_late_window=late)
    got = states.classify(doc.get("amount"), final, doc["tolerance_bps"], **kw)
    if got in states.PAID or not pending:
        return got
    hoped = states.classify(doc.get("amount"), final + pending, doc["tolerance_bps"], **kw)
    return states.PROCESSING if hoped in states.PAID else got


def _apply(uow: UnitOfWork, ref, doc: dict[str, Any], receipts: list[dict[str, Any]], *,
           method: str | None, reason: str, event: str | None = None,
           hold: bool = False, source=None, extra: dict | None = None) -> dict[str, Any]:
    """Write ``receipts``, settle what became payable, move the status if it changes."""
    final, pending = _totals(receipts)
    fields: dict[str, Any] = {"receipts": receipts, "amount_received": final,
                              "amount_pending": pending, **(extra or {})}
    if method and not doc.get("method"):
        fields["method"] = method
    terminal = doc["status"] in states.TERMINAL
    target = doc["status"] if terminal else status_for(doc, receipts, uow.now)
    if target in states.PAID:
        due = [r for r in receipts if r["final"] and not r.get("settled")]
        if due:
            fields["settlement"] = settlement.settle(uow, doc, due, hold=hold, source=source)
    moves = target != doc["status"] or target in (states.UNDERPAID, states.PROCESSING)
    if not terminal and moves and states.can_transition(doc["status"], target):
        return transition(uow, ref, doc, target, reason=reason, event=event, **fields)
    fields["updated_at"] = uow.now
    uow.update(ref, fields)
    doc = {**doc, **fields}
    if event:
        _emit(uow, doc, event)
    return doc


def record_received(uow: UnitOfWork, ref, doc: dict[str, Any], amount: int, *, method: str,
                    final: bool, reference: str, ledger_asset: str | None = None,
                    ledger_amount: int | None = None, hold: bool = False, source=None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply money that reached the intent: ``amount`` in the intent's minor units; ``final``
    when it can no longer disappear (confirmations reached, a hold captured). Idempotent per
    (reference, final): the same receipt twice changes nothing; a pending receipt seen again as
    final becomes final. When the intent becomes (or is) succeeded/overpaid/paid_late, every
    final receipt not yet settled is posted to the merchant (``settlement.settle``) in this unit.
    ``ledger_asset``/``ledger_amount``: what the ledger books when the money is not in the
    intent's currency (a USD intent paid in USDC). ``source``: the ledger account the money is
    booked from (default: ``external`` for chain money, card clearing for cards); ``hold``: book
    it as a hold on ``source`` captured in the same batch; ``extra``: more fields for the
    intent's write. Returns the updated document."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidRequest("A received amount is a positive integer.", code="amount_invalid")
    if not reference or len(reference) > 300:
        raise InvalidRequest("A receipt needs a reference of at most 300 characters.",
                             code="parameter_invalid", param="reference")
    receipts = [dict(r) for r in doc.get("receipts") or []]
    existing = next((r for r in receipts if r["reference"] == reference), None)
    if existing is not None and (existing["final"] or not final) and not existing.get("reorged"):
        return doc                                   # seen before: nothing changes
    if existing is None:
        if len(receipts) >= MAX_RECEIPTS:
            raise Conflict("This payment intent has too many separate payments.",
                           code="too_many_receipts")
        existing = {"reference": reference, "generation": 0, "settled": False}
        receipts.append(existing)
    existing.update(amount=amount, final=bool(final), method=method, at=uow.now, reorged=False)
    if ledger_asset is not None:
        existing.update(ledger_asset=ledger_asset, ledger_amount=ledger_amount or amount)
    reason = f"{method}:{'received' if final else 'seen'}"
    return _apply(uow, ref, doc, receipts, method=method, reason=reason, hold=hold, source=source,
                  extra=extra)


def record_reorged(uow: UnitOfWork, ref, doc: dict[str, Any], reference: str) -> dict[str, Any]:
    """A receipt vanished (chain reorganisation): stop counting it; if it was settled, reverse
    its ledger legs once and bump its generation so a re-confirmation settles again exactly once.
    The status is recomputed (a paid intent goes back to processing/requires_payment_method only
    if it was paid by this receipt alone) and ``payment_intent.reorged`` is emitted. Idempotent."""
    receipts = [dict(r) for r in doc.get("receipts") or []]
    r = next((x for x in receipts if x["reference"] == reference), None)
    if r is None or r.get("reorged"):
        return doc
    if r.get("settled"):
        settlement.reverse(uow, doc, r)
        r.update(settled=False, generation=int(r.get("generation") or 0) + 1, transfer_ids=[])
    r.update(reorged=True, final=False, amount=0)
    summary = dict(doc.get("settlement") or {})
    live = [x for x in receipts if not x.get("reorged")]
    final, pending = _totals(live)
    fields = {"receipts": receipts, "amount_received": final, "amount_pending": pending,
              "updated_at": uow.now}
    if summary:
        settled = [x for x in receipts if x.get("settled")]
        summary["amount"] = sum(int(x.get("ledger_amount") or x["amount"]) for x in settled)
        summary["fee"] = sum(int(x.get("fee") or 0) for x in settled)
        summary["net"] = summary["amount"] - summary["fee"]
        summary["transfer_ids"] = [t for x in settled for t in x.get("transfer_ids") or []]
        fields["settlement"] = summary
    target = status_for({**doc, "status": states.PROCESSING if doc["status"] in states.PAID
                         else doc["status"]}, live, uow.now)
    if target != doc["status"] and doc["status"] != states.CANCELED:
        # a paid intent may go back only through the reorg path: bypass the normal table
        now = uow.now
        timeline = list(doc.get("timeline") or [])[-(MAX_TIMELINE - 1):]
        timeline.append({"status": target, "at": now, "reason": "reorged"})
        fields.update(status=target, timeline=timeline,
                      succeeded_at=doc.get("succeeded_at") if target in states.PAID else None)
    uow.update(ref, fields)
    doc = {**doc, **fields}
    _emit(uow, doc, "reorged")
    return doc


def check_client_secret(doc: dict[str, Any], client_secret: str) -> None:
    """The payer's proof that the merchant handed them this intent (constant-time compare)."""
    if not hmac.compare_digest(doc.get("client_secret_hash") or "", token_hash(client_secret)):
        raise NotFound("No such payment intent.", code="resource_missing")
