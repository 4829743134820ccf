"""Wallet rules: balances, P2P transfers, holds, top-ups through the provider, history,
statements and the backend's own transaction records. Every money movement is a ledger transfer
made through ``shared.ledger.engine`` in the caller's unit of work.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.identity.users import directory
from shared.ledger import accounts, assets, engine, history
from shared.ledger.model import ENTRIES, PENDING, Balances, TransferSpec
from shared.ledger.service import transfer_status
from shared.platform import logs
from shared.platform.auth import Principal
from shared.platform.clock import UTC, rfc3339
from shared.platform.deps import Deps
from shared.platform.errors import (Conflict, InvalidRequest, NotFound, PayloomError,
                                    PermissionDenied, Unprocessable)
from shared.platform.ids import derived_id, new_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListResponse
from shared.platform.uow import UnitOfWork, run_unit
from shared.wallet import config, limits, topups
from shared.wallet.models import (TOPUP_EVENTS, BalanceList, BalanceResource, CaptureHold,
                                  CreateHold, CreateRecord, CreateTopUp, CreateTransfer,
                                  EntryRecord, Party, StatementQuery,
                                  SystemParty, TopUp, TransactionsQuery, UserParty,
                                  WalletBalanceAfter, WalletHold, WalletRecord, WalletTransaction,
                                  WalletTransfer)
from shared.wallet.ports import ProviderDeclined

TOPUPS = "wallet_topups"
RECORDS = "wallet_records"
STRIPE_EXPONENT = {"USD": 2, "KHR": 2}   # Stripe's minor unit per currency (KHR: 2, unlike ISO use)
_log = logs.get_logger(__name__)


def _user(principal: Principal) -> str:
    return principal.id


def _amount(body) -> tuple[assets.Asset, int]:
    asset = assets.get_asset(body.asset)
    if body.amount is not None:
        return asset, assets.check_amount(body.amount, asset)
    return asset, assets.parse_decimal(body.amount_decimal, asset, param="amount_decimal")


def _party(owner_user: str | None) -> Party:
    """The other side as a user sees it: a user, or one of Payloom's own accounts."""
    return UserParty(user_id=owner_user) if owner_user else SystemParty()


def _public_balance(bal: Balances | dict[str, int] | None) -> WalletBalanceAfter | None:
    if bal is None:
        return None
    after = bal.summary() if isinstance(bal, Balances) else bal
    return WalletBalanceAfter(**{k: after[k] for k in WalletBalanceAfter.model_fields})


# --- balances -----------------------------------------------------------------------------
def balances(deps: Deps, principal: Principal) -> BalanceList:
    uid = _user(principal)
    ids = {code: accounts.user_wallet_id(uid, code) for code in assets.ASSETS}
    got = accounts.read_balances(deps.db, list(ids.values()))
    data = []
    for code, acc_id in ids.items():
        bal = got.get(acc_id, (None, Balances()))[1]
        data.append(BalanceResource(
            asset=code, scale=assets.ASSETS[code].scale, available=bal.available,
            posted=bal.posted, pending_in=bal.pending_in, pending_out=bal.pending_out,
            available_decimal=assets.format_decimal(bal.available, code),
            posted_decimal=assets.format_decimal(bal.posted, code)))
    return BalanceList(data=data, url="/v1/wallet/balances")


# --- P2P and holds ------------------------------------------------------------------------------
def _handle_ref(db, to):
    for kind, value in (("username", to.username), ("phone", to.phone),
                        ("wallet", to.wallet_address)):
        if value:
            return directory.handle_ref(db, kind, value)
    raise InvalidRequest("Name the recipient.", code="parameter_missing", param="to")


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


def _send(uow: UnitOfWork, principal: Principal, body, idempotency_key: str | None, *,
          pending: bool, kind: str) -> tuple[engine.Outcome, dict[str, Any], int]:
    """P2P payment or hold from the caller's wallet: every read in one ``get_all`` (recipient
    handle, the caller's user and usage documents, the caller's wallet and its shards, the
    transfer ids, the fee account) plus one for the recipient's wallet, then one commit."""
    db, now = uow.db, uow.now
    uid = _user(principal)
    asset, amount = _amount(body)
    pol = config.policy(uow.deps)
    fee = 0 if pending else pol.p2p_fee(asset.code, amount)
    txf_id = (derived_id("txf", kind, uid, idempotency_key) if kind != "p2p"
              else p2p_transfer_id(uid, idempotency_key)) if idempotency_key else new_id("txf")
    sender = accounts.wallet_template(uid, asset.code)
    fees = accounts.system_template("fees", asset.code)
    head = TransferSpec(id=txf_id, debit_account_id=sender.id, amount=amount, asset=asset.code,
                        code=kind, description=body.description, pending=pending,
                        timeout_seconds=getattr(body, "timeout_seconds", None))
    fee_spec = TransferSpec(id=derived_id("txf", "p2p-fee", txf_id), debit_account_id=sender.id,
                            credit_account_id=fees.id, amount=fee, asset=asset.code,
                            code="p2p_fee", description="Transfer fee",
                            metadata={"fee_for": txf_id}) if fee else None
    handle, user, usage = _handle_ref(db, body.to), directory.user_ref(db, uid), limits.usage_ref(db, uid)
    specs = [head] + ([fee_spec] if fee_spec else [])
    got = uow.get_all([handle, user, usage] + engine.first_refs(db, specs, [sender, fees]))
    recipient = got[handle.path].get("user_id") if got[handle.path].exists else None
    if not recipient:
        raise NotFound("No user matches that recipient.", code="recipient_not_found", param="to")
    if recipient == uid:
        raise InvalidRequest("You cannot send money to yourself.", code="transfer_to_self",
                             param="to")
    receiver = accounts.wallet_template(recipient, asset.code)
    head.credit_account_id = receiver.id
    head.metadata = {"from_user": uid, "to_user": recipient}
    tier = int((got[user.path].to_dict() or {}).get("kyc_tier", 0)) if got[user.path].exists else 0
    try:
        outcome = engine.execute(uow, specs, templates=[sender, receiver, fees])
        if outcome.created:   # only a new transfer counts toward (or is refused by) the limits
            snap = got[usage.path]
            uow.set(usage, limits.count_outgoing(snap.to_dict() if snap.exists else None,
                                                 pol.limits_for(tier), user_id=uid,
                                                 asset=asset.code, amount=amount + fee, now=now))
    except PayloomError as exc:
        raise _remap_param(exc)
    t = outcome.results[0].transfer
    if outcome.results[0].status == "exists" and t.get("debit_owner") != uid:
        raise NotFound("No such transfer.", param="Idempotency-Key")
    fee_amount = outcome.results[1].transfer["amount"] if len(outcome.results) > 1 else 0
    return outcome, t, fee_amount


def send_p2p(uow: UnitOfWork, principal: Principal, body: CreateTransfer,
             idempotency_key: str | None) -> WalletTransfer:
    outcome, t, fee = _send(uow, principal, body, idempotency_key, pending=False, kind="p2p")
    sender = t["debit_account_id"]
    after = outcome.balances.get(sender) if outcome.created else \
        (outcome.results[-1].transfer.get("balances_after") or {}).get(sender)
    return WalletTransfer(
        id=t["id"], result=outcome.results[0].status, status=t["status"], asset=t["asset"],
        amount=t["amount"], amount_decimal=assets.format_decimal(t["amount"], t["asset"]), fee=fee,
        to=_party(t.get("credit_owner")), description=t.get("description"),
        balance_after=_public_balance(after), created=rfc3339(t["created_at"]))


def hold_resource(t: dict[str, Any], *, result: str | None = None,
                  captured_amount: int | None = None) -> WalletHold:
    return WalletHold(
        id=t["id"], result=result, status=transfer_status(t), asset=t["asset"], amount=t["amount"],
        amount_decimal=assets.format_decimal(t["amount"], t["asset"]),
        captured_amount=captured_amount, from_=_party(t.get("debit_owner")),
        to=_party(t.get("credit_owner")), description=t.get("description"),
        resolved_by=t.get("resolved_by"),
        expires_at=rfc3339(t["hold_expires_at"]) if t.get("hold_expires_at") else None,
        created=rfc3339(t["created_at"]))


def create_hold(uow: UnitOfWork, principal: Principal, body: CreateHold,
                idempotency_key: str | None) -> WalletHold:
    """Authorise a payment: a pending transfer from the caller's wallet to the recipient's,
    released automatically after ``timeout_seconds`` unless captured or canceled."""
    outcome, t, _ = _send(uow, principal, body, idempotency_key, pending=True, kind="hold")
    return hold_resource(t, result=outcome.results[0].status)


def _own_hold(uow: UnitOfWork, principal: Principal, hold_id: str) -> dict[str, Any]:
    snap = uow.get(engine.transfer_ref(uow.db, hold_id))
    doc = snap.to_dict() if snap.exists else None
    if not doc or doc.get("kind") != PENDING or principal.id not in (doc.get("owners") or []):
        raise NotFound(f"No such hold: '{hold_id}'", param="id", code="hold_not_found")
    return doc


def get_hold(uow: UnitOfWork, principal: Principal, hold_id: str) -> WalletHold:
    return hold_resource(_own_hold(uow, principal, hold_id))


def capture_hold(uow: UnitOfWork, principal: Principal, hold_id: str, body: CaptureHold,
                 idempotency_key: str | None) -> WalletHold:
    """Stripe-like capture by the payee: all of it or less (the rest is released)."""
    doc = _own_hold(uow, principal, hold_id)
    if doc.get("credit_owner") != principal.id:
        raise PermissionDenied("Only the payee captures a hold.", code="hold_capture_by_payee_only")
    return _resolve(uow, doc, TransferSpec(id=derived_id("txf", "capture", hold_id),
                                           post_pending_id=hold_id, amount=body.amount,
                                           code="capture"))


def cancel_hold(uow: UnitOfWork, principal: Principal, hold_id: str,
                idempotency_key: str | None) -> WalletHold:
    """Either party releases the whole hold."""
    doc = _own_hold(uow, principal, hold_id)
    return _resolve(uow, doc, TransferSpec(id=derived_id("txf", "cancel", hold_id),
                                           void_pending_id=hold_id, code="cancel"))


def _resolve(uow: UnitOfWork, doc: dict[str, Any], spec: TransferSpec) -> WalletHold:
    if doc.get("pending_status") != "pending" and doc.get("resolved_by") != spec.id:
        raise Unprocessable(f"The hold is already {doc.get('pending_status')}.",
                            code=f"hold_already_{doc.get('pending_status')}", param="id")
    if doc.get("resolved_by") == spec.id:   # a retry of this very capture or cancel
        return hold_resource(doc, result="exists")
    outcome = engine.execute(uow, [spec])
    res = outcome.results[0].transfer
    doc = {**doc, "pending_status": "posted" if spec.post_pending_id else "voided",
           "resolved_by": res["id"]}
    return hold_resource(doc, result=outcome.results[0].status,
                         captured_amount=res["amount"] if spec.post_pending_id else 0)


# --- top-ups ----------------------------------------------------------------------------------
def to_provider_amount(asset: assets.Asset, units: int) -> int:
    exp = STRIPE_EXPONENT.get(asset.code)
    if exp is None:
        raise InvalidRequest(f"{asset.code} cannot be topped up by card.",
                             code="asset_not_supported_for_topup", param="asset")
    return units * 10 ** (exp - asset.scale)


def topup_resource(doc: dict[str, Any]) -> TopUp:
    return TopUp(id=doc["id"], status=doc["status"], asset=doc["asset"], amount=doc["amount"],
                 amount_decimal=assets.format_decimal(doc["amount"], doc["asset"]),
                 provider=doc["provider"], provider_payment_id=doc.get("provider_payment_id"),
                 client_secret=doc.get("client_secret"), transfer_id=doc.get("transfer_id"),
                 failure_code=doc.get("failure_code"), failure_message=doc.get("failure_message"),
                 created=rfc3339(doc["created_at"]))


def create_topup(deps: Deps, principal: Principal, body: CreateTopUp,
                 idempotency_key: str | None) -> TopUp:
    """Record the top-up (unit 1), ask the provider for a PaymentIntent (idempotent on the
    top-up id), record its answer (unit 2). The top-up exists before the provider can send a
    webhook about it. The wallet is credited only by the signed webhook."""
    uid = _user(principal)
    asset, amount = _amount(body)
    provider_amount = to_provider_amount(asset, amount)
    cap = config.policy(deps).max_topup.get(asset.code)
    if cap is not None and amount > cap:
        raise Unprocessable(f"A top-up is at most {assets.format_decimal(cap, asset)} {asset.code}.",
                            code="topup_too_large", param="amount")
    provider = config.topup_provider(deps)
    topup_id = derived_id("tpu", uid, idempotency_key) if idempotency_key else new_id("tpu")
    ref = deps.db.collection(TOPUPS).document(topup_id)

    def record(uow: UnitOfWork) -> dict[str, Any]:
        snap = uow.get(ref)
        if not snap.exists:
            doc = {"id": topup_id, "user_id": uid, "asset": asset.code, "amount": amount,
                   "provider": provider.name, "provider_amount": provider_amount,
                   "currency": asset.code.lower(), "status": topups.PENDING,
                   "created_at": uow.now, "updated_at": uow.now}
            uow.create(ref, doc)
            return doc
        doc = snap.to_dict()
        if doc["user_id"] != uid:
            raise NotFound("No such top-up.")
        for field, value in (("asset", asset.code), ("amount", amount)):
            if doc[field] != value:   # the key's stored response expired; the top-up did not
                raise Conflict(f"Top-up {topup_id} already exists with a different {field}.",
                               code=f"exists_with_different_{field}", param=field)
        return doc

    doc = run_unit(deps, record)
    if doc.get("provider_payment_id") and doc["status"] != topups.PENDING:
        return topup_resource(doc)
    try:
        intent = provider.create_payment_intent(
            amount=provider_amount, currency=asset.code.lower(), payment_method=body.payment_method,
            metadata={"topup_id": topup_id, "user_id": uid}, idempotency_key=topup_id)
        target = topups.from_intent(intent.status, bool(intent.last_payment_error))
        fields = {"provider_payment_id": intent.id, "client_secret": intent.client_secret,
                  "provider_status": intent.status}
        failure = None
    except ProviderDeclined as exc:
        target, failure = topups.FAILED, exc
        fields = {"provider_payment_id": exc.intent.id if exc.intent else None,
                  "provider_status": exc.intent.status if exc.intent else None,
                  "failure_code": exc.code, "failure_message": exc.message}

    def save(uow: UnitOfWork) -> dict[str, Any]:
        current = uow.get(ref).to_dict()
        # The webhook may already have moved the top-up on: the state machine never goes back.
        update = {**fields, "status": topups.next_state(current["status"], target),
                  "updated_at": uow.now}
        uow.update(ref, update)
        return {**current, **update}

    doc = run_unit(deps, save)
    if failure is not None:
        logs.log(_log, logging.INFO, "top-up declined", topup_id=topup_id, decline=failure.code)
    return topup_resource(doc)


def apply_card_event(uow: UnitOfWork, event: dict[str, Any]) -> str:
    """The card processor's verified ``payment_intent.*`` event, applied to its top-up (run by
    the inbox, which de-duplicates by event id and commits this with the event's ``processed``
    mark). ``payment_intent.succeeded`` credits the wallet once: independently of the inbox,
    the ledger transfer id is derived from the top-up and the state machine never moves a
    top-up back, so a replay of any event is harmless. Returns what happened, kept with the
    event: ok, ignored, unknown_topup, amount_mismatch, already_<status> or ignored_in_<status>."""
    now = uow.now
    etype = event.get("type")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    obj = obj if isinstance(obj, dict) else {}
    metadata = obj.get("metadata")
    topup_id = metadata.get("topup_id") if isinstance(metadata, dict) else None
    target = topups.WEBHOOK_TARGET.get(etype)
    if target is None or not isinstance(topup_id, str) or not is_doc_id(topup_id):
        return "ignored"
    ref = uow.db.collection(TOPUPS).document(topup_id)
    snap = uow.get(ref)
    if not snap.exists:
        return "unknown_topup"
    topup = snap.to_dict()
    if not topups.can_move(topup["status"], target):
        return f"already_{target}" if topup["status"] == target else f"ignored_in_{topup['status']}"
    if target == topups.SUCCEEDED:
        asset = assets.get_asset(topup["asset"])
        if _int_or_none(obj.get("amount")) != topup["provider_amount"] or \
                str(obj.get("currency", "")).lower() != topup["currency"]:
            uow.update(ref, {"status": topups.FAILED, "failure_code": "amount_mismatch",
                             "updated_at": now})
            return "amount_mismatch"
        wallet = accounts.wallet_template(topup["user_id"], asset.code)
        clearing = accounts.system_template("topup_clearing", asset.code)
        spec = TransferSpec(id=derived_id("txf", "topup", topup_id), debit_account_id=clearing.id,
                            credit_account_id=wallet.id, amount=topup["amount"],
                            asset=asset.code, code="topup", description="Card top-up",
                            metadata={"topup_id": topup_id,
                                      "provider_payment_id": str(obj.get("id", ""))})
        engine.execute(uow, [spec], templates=[wallet, clearing])
        update = {"status": topups.SUCCEEDED, "transfer_id": spec.id,
                  "provider_payment_id": obj.get("id"), "provider_status": "succeeded",
                  "succeeded_at": now, "updated_at": now}
    else:
        err = obj.get("last_payment_error")
        err = err if isinstance(err, dict) else {}
        update = {"status": target, "failure_code": err.get("decline_code") or err.get("code"),
                  "failure_message": err.get("message"), "updated_at": now,
                  "provider_status": obj.get("status")}
    uow.update(ref, update)
    topup.update(update)
    uow.emit(TOPUP_EVENTS[update["status"]].name, tenant=topup["user_id"],
             data={"object": topup_resource(topup).model_dump(mode="json")})
    return "ok"


def _int_or_none(value: Any) -> int | None:
    """A provider amount as an int; anything else (a string, a float, a bool) matches nothing."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def entry_resource(doc: dict[str, Any], after: Balances | None = None) -> WalletTransaction:
    return WalletTransaction(
        id=doc["id"], transfer_id=doc["transfer_id"], type=doc.get("code") or doc["kind"],
        kind=doc["kind"], status=doc["status"],
        direction="in" if doc["direction"] == "credit" else "out", asset=doc["asset"],
        amount=doc["amount"], amount_decimal=assets.format_decimal(doc["amount"], doc["asset"]),
        balance_after=_public_balance(after),
        counterparty=_party(doc.get("counterparty_owner_id")),
        description=doc.get("description"), pending_id=doc.get("pending_id"),
        reverses=doc.get("reverses"),
        records=[EntryRecord.model_validate(r) for r in doc.get("records") or []],
        created=rfc3339(doc.get("committed_at") or doc["created_at"]))


def _user_entries(db, uid: str, asset: str | None):
    q = (db.collection(ENTRIES).where(filter=FieldFilter("owner_type", "==", "user"))
         .where(filter=FieldFilter("owner_id", "==", uid)))
    if asset:
        q = q.where(filter=FieldFilter("asset", "==", assets.get_asset(asset).code))
    return q


def list_transactions(deps: Deps, principal: Principal,
                      query: TransactionsQuery) -> ListResponse[WalletTransaction]:
    """Newest first in ledger order (commit time), each entry with the exact balance after it."""
    db, uid = deps.db, _user(principal)
    q = _user_entries(db, uid, query.asset)
    for value, op, param in ((query.created_gte, ">=", "created[gte]"),
                             (query.created_gt, ">", "created[gt]"),
                             (query.created_lte, "<=", "created[lte]"),
                             (query.created_lt, "<", "created[lt]")):
        when = _parse_time(value, param, end_of_day=op in ("<=",))
        if when is not None:
            q = q.where(filter=FieldFilter("committed_at", op, when))
    q = history.ordered(q, descending=True)
    if query.starting_after:
        cursor = db.collection(ENTRIES).document(query.starting_after).get() \
            if is_doc_id(query.starting_after) else None
        doc = cursor.to_dict() if cursor is not None and cursor.exists else None
        if not doc or doc.get("owner_type") != "user" or doc.get("owner_id") != uid:
            raise InvalidRequest("starting_after does not name an object in this list.",
                                 param="starting_after", code="invalid_cursor")
        q = q.start_after(cursor)
    docs = [d.to_dict() for d in q.limit(query.limit + 1).stream()]
    page = docs[:query.limit]
    return ListResponse[WalletTransaction](
        data=[entry_resource(e, bal) for e, bal in history.with_balances(db, page)],
        has_more=len(docs) > query.limit, url="/v1/wallet/transactions")


STATEMENT_MAX_ROWS = 10_000
STATEMENT_COLUMNS = ["date", "transaction_id", "transfer_id", "type", "status", "direction",
                     "amount", "asset", "balance_after", "available_after", "counterparty",
                     "description", "references"]


def _csv_safe(value: Any) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in user-provided text."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def statement_csv(deps: Deps, principal: Principal, query: StatementQuery) -> tuple[str, str]:
    """(filename, CSV text) of one asset's entries between from and to (inclusive dates), in
    ledger order, each with the balance after it (opening balance: one aggregation)."""
    db, uid = deps.db, _user(principal)
    asset = assets.get_asset(query.asset)
    start = _parse_time(query.from_, "from")
    end = _parse_time(query.to, "to", end_of_day=True)
    if start and end and start > end:
        raise InvalidRequest("from must not be after to.", code="parameter_invalid", param="from")
    q = history.ordered(history.between(_user_entries(db, uid, asset.code), start, end))
    rows = [s.to_dict() for s in q.limit(STATEMENT_MAX_ROWS + 1).stream()]
    if len(rows) > STATEMENT_MAX_ROWS:
        raise Unprocessable(f"The statement has more than {STATEMENT_MAX_ROWS} lines; choose a "
                            "shorter period.", code="statement_too_large", param="from")
    fmt = lambda v: assets.format_decimal(v, asset) if v is not None else ""  # noqa: E731
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(STATEMENT_COLUMNS)
    for d, bal in history.with_balances(db, rows):
        r = entry_resource(d, bal)
        refs = ";".join(x.tx_hash or x.id for x in r.records)
        cp = getattr(r.counterparty, "user_id", "system")
        sign = "" if r.direction == "in" else "-"
        w.writerow([r.created, r.id, r.transfer_id, r.type, r.status, r.direction,
                    sign + assets.format_decimal(d["amount"], asset), asset.code,
                    fmt(bal.posted), fmt(bal.available), cp,
                    _csv_safe(r.description), _csv_safe(refs)])
    span = f"{(query.from_ or 'start')}_{(query.to or 'now')}".replace(":", "")
    return f"statement_{asset.code}_{span}.csv", out.getvalue()


# --- records from the app's backend -----------------------------------------------------------
def record_resource(doc: dict[str, Any]) -> WalletRecord:
    return WalletRecord(
        id=doc["id"], user_id=doc["user_id"], transfer_id=doc["transfer_id"], kind=doc["kind"],
        description=doc.get("description"), tx_hash=doc.get("tx_hash"),
        chain_id=doc.get("chain_id"), asset=doc["asset"], raw_amount=doc.get("raw_amount"),
        amount=doc.get("amount"), metadata=doc.get("metadata") or {},
        created=rfc3339(doc["created_at"]))


def create_record(uow: UnitOfWork, body: CreateRecord,
                  idempotency_key: str | None) -> WalletRecord:
    """Attach the backend's own record (on-chain hash, description) to a user's ledger entry."""
    db, now = uow.db, uow.now
    if not is_doc_id(body.transfer_id):
        raise NotFound(f"No such transfer: '{body.transfer_id[:64]}'", code="transfer_not_found",
                       param="transfer_id")
    tsnap = uow.get(engine.transfer_ref(db, body.transfer_id))
    transfer = tsnap.to_dict() if tsnap.exists else None
    if transfer is None or body.user_id not in (transfer.get("owners") or []):
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
    entry_ref = db.collection(ENTRIES).document(derived_id("ent", body.transfer_id, account_id))
    snap = uow.get_all([ref, entry_ref])[ref.path]
    if snap.exists:
        return record_resource(snap.to_dict())
    doc = {"id": rec_id, "user_id": body.user_id, "transfer_id": body.transfer_id,
           "account_id": account_id, "kind": body.kind, "description": body.description,
           "tx_hash": body.tx_hash, "chain_id": body.chain_id, "asset": asset.code,
           "raw_amount": body.raw_amount, "amount": amount, "metadata": body.metadata,
           "created_at": now}
    uow.create(ref, doc)
    uow.update(entry_ref, {"records": firestore.ArrayUnion([{
        "id": rec_id, "kind": body.kind, "tx_hash": body.tx_hash, "chain_id": body.chain_id,
        "description": body.description}])})
    return record_resource(doc)
