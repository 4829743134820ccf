"""Wallet rules: balances, P2P transfers, top-ups through the provider, history, statements and
the backend's own transaction records. Every money movement is a ledger transfer.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.identity import directory
from shared.ledger import accounts, assets, engine
from shared.ledger.model import ENTRIES, TransferSpec
from shared.ledger.service import get_transfer
from shared.platform import logs
from shared.platform.auth import Principal
from shared.platform.clock import UTC, rfc3339
from shared.platform.deps import Deps
from shared.platform.errors import (Conflict, InvalidRequest, NotFound, PayloomError,
                                    Unprocessable)
from shared.platform.ids import derived_id, new_id
from shared.platform.outbox import Event, publish_events, record_event
from shared.platform.pagination import paginate
from shared.wallet import config, limits
from shared.wallet.models import (CreateRecord, CreateTopUp, CreateTransfer, StatementQuery,
                                  TransactionsQuery)
from shared.wallet.ports import ProviderDeclined

TOPUPS = "wallet_topups"
RECORDS = "wallet_records"
STRIPE_EVENTS = "stripe_events"
MARKER_TTL = dt.timedelta(days=30)   # Stripe retries for 3 days; markers expire by TTL policy
STRIPE_EXPONENT = {"USD": 2, "KHR": 2}   # Stripe's minor unit per currency (KHR: 2, unlike ISO use)
_log = logs.get_logger(__name__)


def _user(principal: Principal) -> str:
    return principal.id


def _amount(body) -> tuple[assets.Asset, int]:
    asset = assets.get_asset(body.asset)
    if body.amount is not None:
        return asset, assets.check_amount(body.amount, asset)
    return asset, assets.parse_decimal(body.amount_decimal, asset, param="amount_decimal")


# --- balances -----------------------------------------------------------------------------
def balances(deps: Deps, principal: Principal) -> dict[str, Any]:
    uid = _user(principal)
    ids = {code: accounts.user_wallet_id(uid, code) for code in assets.ASSETS}
    got = accounts.read_balances(deps.db, list(ids.values()))
    data = []
    for code, acc_id in ids.items():
        bal = got.get(acc_id, (None, accounts.Balances()))[1]
        data.append({"object": "balance", "asset": code, "scale": assets.ASSETS[code].scale,
                     "available": bal.available, "posted": bal.posted,
                     "pending_in": bal.pending_in, "pending_out": bal.pending_out,
                     "available_decimal": assets.format_decimal(bal.available, code),
                     "posted_decimal": assets.format_decimal(bal.posted, code)})
    return {"object": "list", "data": data, "has_more": False, "url": "/v1/wallet/balances"}


# --- P2P --------------------------------------------------------------------------------------
def resolve_recipient(db, to) -> str:
    user_id = directory.find_user_id(db, username=to.username, phone=to.phone,
                                     wallet=to.wallet_address)
    if not user_id:
        raise NotFound("No user matches that recipient.", code="recipient_not_found", param="to")
    return user_id


def _remap_param(exc: PayloomError) -> PayloomError:
    """Ledger params name accounts; the API's caller named a recipient."""
    p = exc.param or ""
    if p.endswith("credit_account_id"):
        exc.param = "to"
    elif p.endswith("debit_account_id"):
        exc.param = None          # the caller's own wallet
    elif p.endswith("amount"):
        exc.param = "amount"
    return exc


def p2p_transfer_id(user_id: str, idempotency_key: str | None) -> str:
    return derived_id("txf", "p2p", user_id, idempotency_key) if idempotency_key else new_id("txf")


def send_p2p(deps: Deps, principal: Principal, body: CreateTransfer,
             idempotency_key: str | None) -> dict[str, Any]:
    db, now = deps.db, deps.clock.now()
    uid = _user(principal)
    asset, amount = _amount(body)
    recipient = resolve_recipient(db, body.to)
    if recipient == uid:
        raise InvalidRequest("You cannot send money to yourself.", code="transfer_to_self",
                             param="to")
    pol = config.policy(deps)
    tier_limits = pol.limits_for(directory.kyc_tier(db, uid))
    fee = pol.p2p_fee(asset.code, amount)
    # The transfer id derives from the Idempotency-Key: a retry after the idempotency record
    # was lost (or expired) finds the same ledger transfer and answers "exists".
    txf_id = p2p_transfer_id(uid, idempotency_key)
    sender, receiver = accounts.wallet_template(uid, asset.code), accounts.wallet_template(recipient, asset.code)
    meta = {"from_user": uid, "to_user": recipient}
    specs = [TransferSpec(id=txf_id, debit_account_id=sender.id, credit_account_id=receiver.id,
                          amount=amount, asset=asset.code, code="p2p",
                          description=body.description, metadata=meta)]
    if fee:
        fees = accounts.ensure_system_account(db, "fees", asset.code, now)
        specs.append(TransferSpec(id=derived_id("txf", "p2p-fee", txf_id), debit_account_id=sender.id,
                                  credit_account_id=fees, amount=fee, asset=asset.code,
                                  code="p2p_fee", description="Transfer fee",
                                  metadata={"fee_for": txf_id}))
    usage = limits.usage_ref(db, uid)

    @firestore.transactional
    def run(txn):
        outcome = engine.execute(db, txn, specs, now=now, templates=[sender, receiver],
                                 extra_refs=[usage])
        if outcome.created:   # only a new transfer counts toward (or is refused by) the limits
            snap = outcome.extra[usage.path]
            doc = limits.count_outgoing(snap.to_dict() if snap.exists else None, tier_limits,
                                        user_id=uid, asset=asset.code, amount=amount + fee, now=now)
            txn.set(usage, doc)
        return outcome

    try:
        outcome = run(db.transaction())
    except PayloomError as exc:
        raise _remap_param(exc)
    publish_events(db, deps.publisher, outcome.events, topic=deps.settings.events_topic, now=now)
    main = outcome.results[0]
    t = main.transfer
    fee_amount = outcome.results[1].transfer["amount"] if len(outcome.results) > 1 else 0
    last = outcome.results[-1].transfer
    after = (last.get("balances_after") or {}).get(sender.id)
    if main.status == "exists" and t.get("debit_owner") != uid:
        raise NotFound("No such transfer.", param="Idempotency-Key")
    return {"id": t["id"], "object": "wallet_transfer", "result": main.status,
            "status": t["status"], "asset": t["asset"], "amount": t["amount"],
            "amount_decimal": assets.format_decimal(t["amount"], t["asset"]), "fee": fee_amount,
            "to": {"user_id": t.get("credit_owner")}, "description": t.get("description"),
            "balance_after": _public_balance(after), "created": rfc3339(t["created_at"])}


def _public_balance(after: dict[str, int] | None) -> dict[str, int] | None:
    if not after:
        return None
    return {k: after[k] for k in ("available", "posted", "pending_in", "pending_out") if k in after}


# --- top-ups ----------------------------------------------------------------------------------
def to_provider_amount(asset: assets.Asset, units: int) -> int:
    exp = STRIPE_EXPONENT.get(asset.code)
    if exp is None:
        raise InvalidRequest(f"{asset.code} cannot be topped up by card.",
                             code="asset_not_supported_for_topup", param="asset")
    return units * 10 ** (exp - asset.scale)


def topup_resource(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["id"], "object": "topup", "status": doc["status"], "asset": doc["asset"],
            "amount": doc["amount"], "amount_decimal": assets.format_decimal(doc["amount"], doc["asset"]),
            "provider": doc["provider"], "provider_payment_id": doc.get("provider_payment_id"),
            "client_secret": doc.get("client_secret"), "transfer_id": doc.get("transfer_id"),
            "failure_code": doc.get("failure_code"), "failure_message": doc.get("failure_message"),
            "created": rfc3339(doc["created_at"])}


def create_topup(deps: Deps, principal: Principal, body: CreateTopUp,
                 idempotency_key: str | None) -> dict[str, Any]:
    db, now = deps.db, deps.clock.now()
    uid = _user(principal)
    asset, amount = _amount(body)
    provider_amount = to_provider_amount(asset, amount)
    cap = config.policy(deps).max_topup.get(asset.code)
    if cap is not None and amount > cap:
        raise Unprocessable(f"A top-up is at most {assets.format_decimal(cap, asset)} {asset.code}.",
                            code="topup_too_large", param="amount")
    provider = config.topup_provider(deps)
    topup_id = derived_id("tpu", uid, idempotency_key) if idempotency_key else new_id("tpu")
    ref = db.collection(TOPUPS).document(topup_id)
    doc = {"id": topup_id, "user_id": uid, "asset": asset.code, "amount": amount,
           "provider": provider.name, "provider_amount": provider_amount,
           "currency": asset.code.lower(), "status": "pending", "created_at": now,
           "updated_at": now}
    try:
        ref.create(doc)
    except gexc.AlreadyExists:
        doc = ref.get().to_dict()
        if doc["user_id"] != uid:
            raise NotFound("No such top-up.")
        for field, value in (("asset", asset.code), ("amount", amount)):
            if doc[field] != value:   # the key's stored response expired; the top-up did not
                raise Conflict(f"Top-up {topup_id} already exists with a different {field}.",
                               code=f"exists_with_different_{field}", param=field)
        if doc.get("provider_payment_id") and doc["status"] != "pending":
            return topup_resource(doc)
    # The provider call is idempotent on the top-up id: a retry re-finds the same intent.
    try:
        intent = provider.create_payment_intent(
            amount=provider_amount, currency=asset.code.lower(), payment_method=body.payment_method,
            metadata={"topup_id": topup_id, "user_id": uid}, idempotency_key=topup_id)
        status = {"requires_action": "requires_action", "canceled": "canceled"}.get(intent.status, "pending")
        if intent.status == "requires_payment_method" and intent.last_payment_error:
            status = "failed"
        fields = {"provider_payment_id": intent.id, "client_secret": intent.client_secret,
                  "provider_status": intent.status}
        failure = None
    except ProviderDeclined as exc:
        status, failure = "failed", exc
        fields = {"provider_payment_id": exc.intent.id if exc.intent else None,
                  "provider_status": exc.intent.status if exc.intent else None,
                  "failure_code": exc.code, "failure_message": exc.message}

    @firestore.transactional
    def save(txn):
        current = ref.get(transaction=txn).to_dict()
        update = {**fields, "updated_at": now}
        # The webhook may already have credited the top-up: never move it back.
        if current["status"] in ("pending", "requires_action"):
            update["status"] = status
        txn.update(ref, update)
        current.update(update)
        return current

    doc = save(db.transaction())
    if failure is not None:
        logs.log(_log, logging.INFO, "top-up declined", topup_id=topup_id, decline=failure.code)
    return topup_resource(doc)


def handle_stripe_webhook(deps: Deps, payload: bytes, signature: str | None) -> dict[str, Any]:
    """``payment_intent.succeeded`` credits the wallet once; duplicates are dropped by event id
    and, independently, by the ledger transfer id derived from the top-up id."""
    db, now = deps.db, deps.clock.now()
    provider = config.topup_provider(deps)
    event = provider.verify_webhook(payload, signature, int(now.timestamp()))
    etype = event.get("type")
    obj = ((event.get("data") or {}).get("object")) or {}
    topup_id = (obj.get("metadata") or {}).get("topup_id")
    marker = db.collection(STRIPE_EVENTS).document(event["id"])
    handled = etype in ("payment_intent.succeeded", "payment_intent.payment_failed",
                        "payment_intent.canceled")
    if not handled or not topup_id:
        try:
            marker.create({"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL, "ignored": True})
        except gexc.AlreadyExists:
            pass
        return {"received": True, "handled": False}
    ref = db.collection(TOPUPS).document(topup_id)
    first = ref.get()
    clearing = accounts.ensure_system_account(db, "topup_clearing", first.get("asset"), now) \
        if first.exists else None

    @firestore.transactional
    def run(txn):
        got = {s.reference.path: s for s in txn.get_all([marker, ref])}
        mark, tsnap = got[marker.path], got[ref.path]
        if mark.exists:
            return "duplicate", []
        if not tsnap.exists:
            txn.create(marker, {"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL,
                                "result": "unknown_topup"})
            return "unknown_topup", []
        topup = tsnap.to_dict()
        events: list[Event] = []
        if etype == "payment_intent.succeeded" and topup["status"] == "succeeded":
            txn.create(marker, {"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL,
                                "result": "already_succeeded"})
            return "already_succeeded", []
        if etype == "payment_intent.succeeded":
            asset = assets.get_asset(topup["asset"])
            if int(obj.get("amount", -1)) != topup["provider_amount"] or \
                    str(obj.get("currency", "")).lower() != topup["currency"]:
                txn.create(marker, {"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL,
                                    "result": "amount_mismatch"})
                txn.update(ref, {"status": "failed", "failure_code": "amount_mismatch",
                                 "updated_at": now})
                return "amount_mismatch", []
            wallet = accounts.wallet_template(topup["user_id"], asset.code)
            spec = TransferSpec(id=derived_id("txf", "topup", topup_id),
                                debit_account_id=clearing,
                                credit_account_id=wallet.id, amount=topup["amount"],
                                asset=asset.code, code="topup", description="Card top-up",
                                metadata={"topup_id": topup_id, "provider_payment_id": obj.get("id", "")})
            outcome = engine.execute(db, txn, [spec], now=now, templates=[wallet])
            events += outcome.events
            update = {"status": "succeeded", "transfer_id": spec.id,
                      "provider_payment_id": obj.get("id"), "provider_status": "succeeded",
                      "succeeded_at": now, "updated_at": now}
            etype_out = "topup.succeeded"
        else:
            if topup["status"] == "succeeded":
                txn.create(marker, {"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL,
                                    "result": "ignored_after_success"})
                return "ignored", []
            err = obj.get("last_payment_error") or {}
            status = "canceled" if etype == "payment_intent.canceled" else "failed"
            update = {"status": status, "failure_code": err.get("decline_code") or err.get("code"),
                      "failure_message": err.get("message"), "updated_at": now,
                      "provider_status": obj.get("status")}
            etype_out = f"topup.{status}"
        txn.create(marker, {"id": event["id"], "type": etype, "received_at": now, "expires_at": now + MARKER_TTL, "result": "ok"})
        txn.update(ref, update)
        topup.update(update)
        events.append(record_event(db, txn, type=etype_out, tenant=topup["user_id"], now=now,
                                   data={"object": topup_resource(topup)}))
        return "ok", events

    result, events = run(db.transaction())
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic, now=now)
    return {"received": True, "handled": True, "result": result}


# --- history ----------------------------------------------------------------------------------
def _parse_time(value: str | None, param: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """Unix seconds, an RFC 3339 timestamp, or a date (YYYY-MM-DD, UTC)."""
    if value is None or value == "":
        return None
    v = value.strip()
    try:
        if v.isdigit():
            return dt.datetime.fromtimestamp(int(v), UTC)
        if len(v) == 10:
            day = dt.datetime.strptime(v, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end_of_day else day
        when = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{param} must be unix seconds, RFC 3339 or YYYY-MM-DD.",
                             code="parameter_invalid", param=param) from None


def entry_resource(doc: dict[str, Any]) -> dict[str, Any]:
    cp = doc.get("counterparty_owner_id")
    return {"id": doc["id"], "object": "wallet_transaction", "transfer_id": doc["transfer_id"],
            "type": doc.get("code") or doc["kind"], "kind": doc["kind"], "status": doc["status"],
            "direction": "in" if doc["direction"] == "credit" else "out", "asset": doc["asset"],
            "amount": doc["amount"], "amount_decimal": assets.format_decimal(doc["amount"], doc["asset"]),
            "balance_after": _public_balance(doc.get("balance_after")),
            "counterparty": {"user_id": cp} if cp else {"account": "system"},
            "description": doc.get("description"), "pending_id": doc.get("pending_id"),
            "reverses": doc.get("reverses"), "records": doc.get("records") or [],
            "created": rfc3339(doc["created_at"])}


def _user_entries(db, uid: str, asset: str | None):
    q = (db.collection(ENTRIES).where(filter=firestore.FieldFilter("owner_type", "==", "user"))
         .where(filter=firestore.FieldFilter("owner_id", "==", uid)))
    if asset:
        q = q.where(filter=firestore.FieldFilter("asset", "==", assets.get_asset(asset).code))
    return q


def list_transactions(deps: Deps, principal: Principal, query: TransactionsQuery) -> dict[str, Any]:
    db, uid = deps.db, _user(principal)
    q = _user_entries(db, uid, query.asset)
    for value, op, param in ((query.created_gte, ">=", "created[gte]"),
                             (query.created_gt, ">", "created[gt]"),
                             (query.created_lte, "<=", "created[lte]"),
                             (query.created_lt, "<", "created[lt]")):
        when = _parse_time(value, param, end_of_day=op in ("<=",))
        if when is not None:
            q = q.where(filter=firestore.FieldFilter("created_at", op, when))
    return paginate(q, db.collection(ENTRIES), query, url="/v1/wallet/transactions",
                    to_resource=entry_resource,
                    belongs=lambda d: d.get("owner_type") == "user" and d.get("owner_id") == uid)


STATEMENT_MAX_ROWS = 10_000
STATEMENT_COLUMNS = ["date", "transaction_id", "transfer_id", "type", "status", "direction",
                     "amount", "asset", "balance_after", "available_after", "counterparty",
                     "description", "references"]


def _csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in user-provided text."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def statement_csv(deps: Deps, principal: Principal, query: StatementQuery) -> tuple[str, str]:
    """(filename, CSV text) of one asset's entries between from and to (inclusive dates)."""
    db, uid = deps.db, _user(principal)
    asset = assets.get_asset(query.asset)
    start = _parse_time(query.from_, "from")
    end = _parse_time(query.to, "to", end_of_day=True)
    if start and end and start > end:
        raise InvalidRequest("from must not be after to.", code="parameter_invalid", param="from")
    q = _user_entries(db, uid, asset.code)
    if start:
        q = q.where(filter=firestore.FieldFilter("created_at", ">=", start))
    if end:
        q = q.where(filter=firestore.FieldFilter("created_at", "<=", end))
    rows = [s.to_dict() for s in q.order_by("created_at").limit(STATEMENT_MAX_ROWS + 1).stream()]
    if len(rows) > STATEMENT_MAX_ROWS:
        raise Unprocessable(f"The statement has more than {STATEMENT_MAX_ROWS} lines; choose a "
                            "shorter period.", code="statement_too_large", param="from")
    rows.sort(key=lambda d: (d["created_at"], d.get("seq") or 0))
    fmt = lambda v: assets.format_decimal(v, asset) if v is not None else ""  # noqa: E731
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(STATEMENT_COLUMNS)
    for d in rows:
        r = entry_resource(d)
        after = d.get("balance_after") or {}
        refs = ";".join(x.get("tx_hash") or x.get("id") for x in r["records"])
        cp = r["counterparty"].get("user_id") or "system"
        sign = "" if r["direction"] == "in" else "-"
        w.writerow([r["created"], r["id"], r["transfer_id"], r["type"], r["status"], r["direction"],
                    sign + assets.format_decimal(d["amount"], asset), asset.code,
                    fmt(after.get("posted")), fmt(after.get("available")), cp,
                    _csv_safe(r["description"]), _csv_safe(refs)])
    span = f"{(query.from_ or 'start')}_{(query.to or 'now')}".replace(":", "")
    return f"statement_{asset.code}_{span}.csv", out.getvalue()


# --- records from the app's backend -----------------------------------------------------------
def record_resource(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in ("id", "user_id", "transfer_id", "kind", "description",
                                     "tx_hash", "chain_id", "asset", "raw_amount", "amount")} | {
        "object": "wallet_record", "metadata": doc.get("metadata") or {},
        "created": rfc3339(doc["created_at"])}


def create_record(deps: Deps, body: CreateRecord, idempotency_key: str | None) -> dict[str, Any]:
    """Attach the backend's own record (on-chain hash, description) to a user's ledger entry."""
    db, now = deps.db, deps.clock.now()
    try:
        transfer = get_transfer(db, body.transfer_id)
    except NotFound:
        raise NotFound(f"No such transfer: '{body.transfer_id}'", code="transfer_not_found",
                       param="transfer_id") from None
    if body.user_id not in (transfer.get("owners") or []):
        raise NotFound(f"Transfer {body.transfer_id} does not involve user {body.user_id}.",
                       code="transfer_not_found", param="transfer_id")
    asset = assets.get_asset(transfer["asset"])
    if body.asset is not None and body.asset != asset.code:
        raise InvalidRequest(f"The transfer is in {asset.code}.", code="asset_mismatch", param="asset")
    amount = None
    if body.raw_amount is not None:
        amount = assets.from_onchain(body.raw_amount, asset, param="raw_amount")
        if amount != transfer["amount"]:
            raise Unprocessable("raw_amount does not equal the transfer's amount.",
                                code="amount_mismatch", param="raw_amount")
    account_id = transfer["debit_account_id"] if transfer.get("debit_owner") == body.user_id \
        else transfer["credit_account_id"]
    rec_id = derived_id("rec", body.user_id, body.transfer_id,
                        idempotency_key or body.tx_hash or new_id("r"))
    ref = db.collection(RECORDS).document(rec_id)
    doc = {"id": rec_id, "user_id": body.user_id, "transfer_id": body.transfer_id,
           "account_id": account_id, "kind": body.kind, "description": body.description,
           "tx_hash": body.tx_hash, "chain_id": body.chain_id, "asset": asset.code,
           "raw_amount": body.raw_amount, "amount": amount, "metadata": body.metadata,
           "created_at": now}
    entry_ref = db.collection(ENTRIES).document(derived_id("ent", body.transfer_id, account_id))

    @firestore.transactional
    def run(txn):
        snap = ref.get(transaction=txn)
        if snap.exists:
            return snap.to_dict()
        txn.create(ref, doc)
        txn.update(entry_ref, {"records": firestore.ArrayUnion([{
            "id": rec_id, "kind": body.kind, "tx_hash": body.tx_hash, "chain_id": body.chain_id,
            "description": body.description}])})
        return doc

    return record_resource(run(db.transaction()))
