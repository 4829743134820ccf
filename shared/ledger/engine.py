"""The transfer engine: validates and applies a linked batch of transfers inside ONE Firestore
transaction. All legs succeed or none does.

``execute(db, txn, specs, now=...)`` does every read first (transfer ids, pending/reversed
transfers, the accounts whose balances must be checked, and any ``extra_refs`` the caller wants
in the same round trip), then buffers every write. The caller may read before calling it, may
write after it, and may raise after it to roll everything back (the wallet checks its limits
that way, only when the transfer is new).

Reads inside the transaction, per account:
- ordinary accounts (user wallets, float, rewards): always; their balances are exact and every
  entry gets the exact balance after.
- hot accounts: never for credits, which are blind ``Increment`` writes into one of N balance
  shards. A new debit of a hot account flagged ``debits_must_not_exceed_credits`` reads the
  main document in the transaction (debits are only ever written there, so they serialise)
  plus the shards outside it: shard credits only grow, so a stale sum is a safe lower bound.
  Hot accounts without a balance limit (top-up clearing, external) take debits blindly too.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable

from google.cloud import firestore

from shared.ledger import accounts as acc_mod
from shared.ledger import assets
from shared.ledger.model import (BALANCE_FIELDS, ENTRIES, SHARDS, EXPIRE, PENDING, POST, RESOLUTIONS,
                                 SINGLE, TRANSFERS, VOID, AccountTemplate, Balances,
                                 TransferResult, TransferSpec)
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from shared.platform.ids import derived_id, is_id
from shared.platform.outbox import Event, record_event

MAX_LEGS = 32
MAX_TIMEOUT_SECONDS = 30 * 86400
EVENT_TYPES = {SINGLE: "transfer.created", PENDING: "transfer.created", POST: "transfer.posted",
               VOID: "transfer.voided", EXPIRE: "transfer.expired"}
STATUS_OF_KIND = {SINGLE: "posted", PENDING: "pending", POST: "posted", VOID: "voided",
                  EXPIRE: "expired"}


@dataclasses.dataclass
class Outcome:
    results: list[TransferResult]
    events: list[Event]
    extra: dict[str, Any]          # path -> DocumentSnapshot for ``extra_refs``

    @property
    def created(self) -> bool:
        return any(r.status == "created" for r in self.results)


@dataclasses.dataclass
class _Acct:
    id: str
    doc: dict[str, Any]
    read: bool                      # balances read in this transaction
    created: bool = False
    bal: Balances = dataclasses.field(default_factory=Balances)
    main_delta: Balances = dataclasses.field(default_factory=Balances)
    shard_deltas: dict[int, Balances] = dataclasses.field(default_factory=dict)
    entries: int = 0
    touched: bool = False

    @property
    def flags(self) -> dict[str, bool]:
        return self.doc.get("flags") or {}

    @property
    def hot(self) -> bool:
        return bool(self.flags.get("hot"))

    @property
    def owner_user(self) -> str | None:
        return self.doc.get("owner_id") if self.doc.get("owner_type") == "user" else None

    def shard_credits_posted(self) -> int:
        return sum(b.credits_posted for b in self.shard_deltas.values())


def _leg(i: int, n: int, param: str) -> str:
    return f"transfers[{i}].{param}" if n > 1 else param


def _validate_static(specs: list[TransferSpec]) -> None:
    if not specs:
        raise InvalidRequest("At least one transfer is required.", code="transfers_empty")
    if len(specs) > MAX_LEGS:
        raise InvalidRequest(f"At most {MAX_LEGS} linked transfers per batch.",
                             code="too_many_transfers")
    seen: set[str] = set()
    n = len(specs)
    for i, s in enumerate(specs):
        if not is_id(s.id, "txf"):
            raise InvalidRequest("Transfer ids look like txf_ followed by 8-64 letters or digits.",
                                 code="transfer_id_invalid", param=_leg(i, n, "id"))
        if s.id in seen:
            raise InvalidRequest(f"Transfer id {s.id} appears twice in the batch.",
                                 code="duplicate_transfer_id", param=_leg(i, n, "id"))
        seen.add(s.id)
        resolutions = [x for x in (s.post_pending_id, s.void_pending_id, s.expire_pending_id,
                                   s.reverses) if x]
        if len(resolutions) > 1 or (resolutions and s.pending):
            raise InvalidRequest("A transfer is one of: single-phase, pending, post, void or "
                                 "reversal.", code="transfer_kind_conflict", param=_leg(i, n, "id"))
        if s.asset is not None:
            assets.get_asset(s.asset, param=_leg(i, n, "asset"))
        if s.amount is not None:
            assets.check_amount(s.amount, s.asset or "USD", param=_leg(i, n, "amount"),
                                allow_zero=s.kind in (VOID, EXPIRE))
        if s.kind in (SINGLE, PENDING) and not s.reverses:
            for field in ("debit_account_id", "credit_account_id", "amount", "asset"):
                if getattr(s, field) is None:
                    raise InvalidRequest(f"Missing required param: {field}.",
                                         code="parameter_missing", param=_leg(i, n, field))
            if s.debit_account_id == s.credit_account_id:
                raise InvalidRequest("The debit and credit accounts must differ.",
                                     code="accounts_must_be_different",
                                     param=_leg(i, n, "credit_account_id"))
        if s.timeout_seconds is not None:
            if s.kind != PENDING:
                raise InvalidRequest("Only pending transfers take a timeout.",
                                     code="timeout_reserved_for_pending_transfer",
                                     param=_leg(i, n, "timeout_seconds"))
            if isinstance(s.timeout_seconds, bool) or not isinstance(s.timeout_seconds, int) \
                    or not 1 <= s.timeout_seconds <= MAX_TIMEOUT_SECONDS:
                raise InvalidRequest(f"timeout_seconds is 1 to {MAX_TIMEOUT_SECONDS}.",
                                     code="timeout_invalid", param=_leg(i, n, "timeout_seconds"))


def _compare_existing(spec: TransferSpec, doc: dict[str, Any], linked: list[str]) -> None:
    stored = doc.get("request") or {}
    mine = spec.request_fields()
    for field, value in mine.items():
        if stored.get(field) != value:
            raise Conflict(f"Transfer {spec.id} already exists with a different {field}.",
                           code=f"exists_with_different_{field}", param=field)
    if doc.get("linked_ids", [spec.id]) != linked:
        raise Conflict(f"Transfer {spec.id} already exists in a different linked batch.",
                       code="exists_with_different_linked", param="linked")


def execute(db, txn, specs: list[TransferSpec], *, now: dt.datetime,
            templates: Iterable[AccountTemplate] = (), extra_refs: Iterable = (),
            record_events: bool = True) -> Outcome:
    """Validate and buffer a linked batch in ``txn``. Raises a PayloomError on any failure."""
    _validate_static(specs)
    templates_by_id = {t.id: t for t in templates}
    extra_refs = list(extra_refs)
    n = len(specs)
    linked = [s.id for s in specs]
    col = db.collection(TRANSFERS)

    # ---- round 1: transfers, referenced transfers, named accounts, caller's extras --------
    refs: dict[str, Any] = {}
    for s in specs:
        refs[s.id] = col.document(s.id)
        other = s.pending_id or s.reverses
        if other and other not in linked:
            refs[other] = col.document(other)
    acct_ids: list[str] = []
    acct_refs: dict[str, Any] = {}          # accounts read in the transaction
    metas: dict[str, dict[str, Any]] = {}   # hot accounts known from the cache, not read

    def decide(a: str, checked: bool, into: dict[str, Any]) -> None:
        if a not in acct_ids:
            acct_ids.append(a)
        if a in acct_refs or a in into:
            return
        meta = acc_mod.cached_meta(db, a)
        hot = meta is not None and (meta.get("flags") or {}).get("hot")
        if not hot or (checked and meta["flags"].get("debits_must_not_exceed_credits")):
            into[a] = acc_mod.account_ref(db, a)
            metas.pop(a, None)
        else:
            metas[a] = dict(meta)

    by_id = {s.id: s for s in specs}
    for s in specs:
        if s.debit_account_id:
            decide(s.debit_account_id, s.kind in (SINGLE, PENDING), acct_refs)
        if s.credit_account_id:
            decide(s.credit_account_id, False, acct_refs)
        if s.reverses in by_id:              # reversal of a leg of this batch
            o = by_id[s.reverses]
            if o.credit_account_id:
                decide(o.credit_account_id, True, acct_refs)
    snaps = _get_all(txn, list(refs.values()) + list(acct_refs.values()) + extra_refs)
    extra = {r.path: snaps.get(r.path) for r in extra_refs}
    transfer_docs = {tid: (snaps[r.path].to_dict() if snaps[r.path].exists else None)
                     for tid, r in refs.items()}

    # ---- idempotency: the id is the key -------------------------------------------------
    existing = [s for s in specs if transfer_docs.get(s.id)]
    if existing:
        if len(existing) != n:
            raise Conflict("Some transfers of this linked batch already exist and some do not.",
                           code="exists_with_different_linked", param="linked")
        results = []
        for s in specs:
            _compare_existing(s, transfer_docs[s.id], linked)
            results.append(TransferResult(s.id, "exists", transfer_docs[s.id]))
        return Outcome(results, [], extra)

    # ---- round 2: accounts named only by the referenced transfers ----------------------
    round2: dict[str, Any] = {}
    for s in specs:
        other = s.pending_id or s.reverses
        od = transfer_docs.get(other) if other else None
        if od:
            decide(od["debit_account_id"], False, round2)
            decide(od["credit_account_id"], bool(s.reverses), round2)
    if round2:
        snaps.update(_get_all(txn, list(round2.values())))
        acct_refs.update(round2)

    accts: dict[str, _Acct] = {}
    for a in acct_ids:
        if a in acct_refs:
            snap = snaps[acct_refs[a].path]
            if snap.exists:
                doc = snap.to_dict()
                accts[a] = _Acct(a, doc, read=True, bal=Balances.of(doc))
                if (doc.get("flags") or {}).get("hot"):
                    acc_mod.remember_meta(db, doc)
            elif a in templates_by_id:
                doc = templates_by_id[a].document(now)
                accts[a] = _Acct(a, doc, read=True, created=True)
        else:
            accts[a] = _Acct(a, metas[a], read=False)

    # ---- apply legs in order ------------------------------------------------------------
    pending_state: dict[str, str] = {}        # pending id -> new status
    reversed_amount: dict[str, int] = {}      # original id -> amount reversed after this batch
    new_docs: dict[str, dict[str, Any]] = {}  # transfers created by this batch
    entries: list[dict[str, Any]] = []
    shard_reads: dict[str, Balances] = {}

    def ref_doc(tid: str) -> dict[str, Any] | None:
        return new_docs.get(tid) or transfer_docs.get(tid)

    for i, s in enumerate(specs):
        kind = s.kind
        pending_amount = None
        pending_id = s.pending_id
        shard_key = s.id
        if kind in RESOLUTIONS:
            p = ref_doc(pending_id)
            if p is None:
                raise NotFound(f"No such pending transfer: '{pending_id}'",
                               code="pending_transfer_not_found", param=_leg(i, n, "pending_id"))
            if p["kind"] != PENDING:
                raise Unprocessable(f"Transfer {pending_id} is not pending.",
                                    code="pending_transfer_not_pending",
                                    param=_leg(i, n, "pending_id"))
            status = pending_state.get(pending_id, p.get("pending_status"))
            if status != "pending":
                raise Unprocessable(f"Pending transfer {pending_id} is already {status}.",
                                    code=f"pending_transfer_already_{status}",
                                    param=_leg(i, n, "pending_id"))
            expires_at = p.get("expires_at")
            if kind == POST and expires_at is not None and now >= expires_at:
                raise Unprocessable(f"Pending transfer {pending_id} has expired.",
                                    code="pending_transfer_expired", param=_leg(i, n, "pending_id"))
            if kind == EXPIRE and (expires_at is None or now < expires_at):
                raise Unprocessable(f"Pending transfer {pending_id} has not expired.",
                                    code="pending_transfer_not_expired",
                                    param=_leg(i, n, "pending_id"))
            for field in ("debit_account_id", "credit_account_id", "asset"):
                if getattr(s, field) is not None and getattr(s, field) != p[field]:
                    raise InvalidRequest(f"The pending transfer has a different {field}.",
                                         code=f"pending_transfer_has_different_{field}",
                                         param=_leg(i, n, field))
            debit_id, credit_id, asset = p["debit_account_id"], p["credit_account_id"], p["asset"]
            pending_amount = int(p["amount"])
            if kind == POST:
                amount = pending_amount if s.amount is None else s.amount
                if amount > pending_amount:
                    raise Unprocessable("The amount exceeds the pending transfer's amount.",
                                        code="exceeds_pending_transfer_amount",
                                        param=_leg(i, n, "amount"))
            else:
                if s.amount not in (None, 0, pending_amount):
                    raise InvalidRequest("A void releases the whole pending amount.",
                                         code="pending_transfer_has_different_amount",
                                         param=_leg(i, n, "amount"))
                amount = pending_amount
            pending_state[pending_id] = STATUS_OF_KIND[kind]
            shard_key = pending_id
            d_delta = Balances(debits_posted=amount if kind == POST else 0,
                               debits_pending=-pending_amount)
            c_delta = Balances(credits_posted=amount if kind == POST else 0,
                               credits_pending=-pending_amount)
        elif s.reverses:
            o = ref_doc(s.reverses)
            if o is None:
                raise NotFound(f"No such transfer: '{s.reverses}'", code="transfer_not_found",
                               param=_leg(i, n, "reverses"))
            if o["kind"] not in (SINGLE, POST):
                raise Unprocessable("Only posted transfers can be reversed; void a pending one.",
                                    code="transfer_not_reversible", param=_leg(i, n, "reverses"))
            prior = reversed_amount.get(s.reverses, int(o.get("reversed_amount") or 0))
            left = int(o["amount"]) - prior
            if left <= 0:
                raise Unprocessable(f"Transfer {s.reverses} is already fully reversed.",
                                    code="transfer_already_reversed", param=_leg(i, n, "reverses"))
            amount = left if s.amount is None else s.amount
            if amount > left:
                raise Unprocessable(f"At most {left} of transfer {s.reverses} can still be reversed.",
                                    code="exceeds_reversible_amount", param=_leg(i, n, "amount"))
            debit_id, credit_id, asset = o["credit_account_id"], o["debit_account_id"], o["asset"]
            for field, want in (("debit_account_id", debit_id), ("credit_account_id", credit_id),
                                ("asset", asset)):
                if getattr(s, field) is not None and getattr(s, field) != want:
                    raise InvalidRequest(f"A reversal's {field} is taken from the original.",
                                         code=f"reversal_has_different_{field}",
                                         param=_leg(i, n, field))
            reversed_amount[s.reverses] = prior + amount
            d_delta = Balances(debits_posted=amount)
            c_delta = Balances(credits_posted=amount)
        else:
            debit_id, credit_id, asset, amount = (s.debit_account_id, s.credit_account_id,
                                                  s.asset, s.amount)
            if kind == PENDING:
                d_delta, c_delta = Balances(debits_pending=amount), Balances(credits_pending=amount)
                shard_key = s.id
            else:
                d_delta, c_delta = Balances(debits_posted=amount), Balances(credits_posted=amount)

        debit, credit = accts.get(debit_id), accts.get(credit_id)
        for acct, aid, side in ((debit, debit_id, "debit_account_id"),
                                (credit, credit_id, "credit_account_id")):
            if acct is None:
                raise NotFound(f"No such account: '{aid}'", code="account_not_found",
                               param=_leg(i, n, side))
            if acct.doc.get("closed"):
                raise Unprocessable(f"Account {aid} is closed.", code="account_closed",
                                    param=_leg(i, n, side))
            if acct.doc.get("asset") != asset:
                raise InvalidRequest(f"Account {aid} holds {acct.doc.get('asset')}, not {asset}.",
                                     code="accounts_must_have_same_asset", param=_leg(i, n, "asset"))
        if debit_id == credit_id:
            raise InvalidRequest("The debit and credit accounts must differ.",
                                 code="accounts_must_be_different",
                                 param=_leg(i, n, "credit_account_id"))

        _apply(db, debit, d_delta, shard_key, now, i, n, shard_reads)
        _apply(db, credit, c_delta, shard_key, now, i, n, shard_reads)

        status = STATUS_OF_KIND[kind]
        doc: dict[str, Any] = {
            "id": s.id, "object": "transfer", "kind": kind, "code": s.code, "status": status,
            "asset": asset, "amount": amount, "debit_account_id": debit_id,
            "credit_account_id": credit_id, "debit_owner": debit.owner_user,
            "credit_owner": credit.owner_user,
            "owners": sorted({o for o in (debit.owner_user, credit.owner_user) if o}),
            "pending_id": pending_id, "pending_amount": pending_amount, "reverses": s.reverses,
            "reversed_amount": 0 if kind in (SINGLE, POST) else None,
            "timeout_seconds": s.timeout_seconds,
            "expires_at": now + dt.timedelta(seconds=s.timeout_seconds)
            if kind == PENDING and s.timeout_seconds else None,
            "pending_status": "pending" if kind == PENDING else None,
            "linked_ids": linked, "description": s.description,
            "metadata": dict(s.metadata or {}), "request": s.request_fields(),
            "balances_after": {debit_id: _after(debit), credit_id: _after(credit)},
            "created_at": now,
        }
        new_docs[s.id] = doc
        for acct, other, side, delta in ((debit, credit, "debit", d_delta),
                                         (credit, debit, "credit", c_delta)):
            acct.entries += 1
            seq = None if acct.hot else int(acct.doc.get("entry_count") or 0) + acct.entries
            entries.append({
                "id": derived_id("ent", s.id, acct.id), "transfer_id": s.id,
                "account_id": acct.id, "asset": asset, "owner_type": acct.doc.get("owner_type"),
                "owner_id": acct.doc.get("owner_id"), "direction": side, "amount": amount,
                "effect": delta.as_dict(), "kind": kind, "code": s.code, "status": status,
                "balance_after": _after(acct), "seq": seq,
                "counterparty_account_id": other.id, "counterparty_owner_id": other.owner_user,
                "pending_id": pending_id, "reverses": s.reverses, "description": s.description,
                "metadata": dict(s.metadata or {}), "records": [], "created_at": now,
            })

    # ---- buffered writes (annotations first: creates serialise their dict immediately) ---
    for pid, status in pending_state.items():
        if pid in new_docs:                    # pending created and resolved in this batch
            new_docs[pid]["pending_status"] = status
            continue
        resolver = next(d["id"] for d in new_docs.values() if d.get("pending_id") == pid)
        txn.update(col.document(pid), {"pending_status": status, "resolved_by": resolver,
                                       "resolved_at": now})
    for oid, total in reversed_amount.items():
        ids = [d["id"] for d in new_docs.values() if d.get("reverses") == oid]
        if oid in new_docs:
            new_docs[oid]["reversed_amount"] = total
            new_docs[oid]["reversal_ids"] = ids
        else:
            txn.update(col.document(oid), {"reversed_amount": total,
                                           "reversal_ids": firestore.ArrayUnion(ids)})
    for tid, doc in new_docs.items():
        txn.create(col.document(tid), doc)
    for acct in accts.values():
        if acct.touched:
            _write_account(db, txn, acct, now)
    ecol = db.collection(ENTRIES)
    for e in entries:
        txn.create(ecol.document(e["id"]), e)

    events: list[Event] = []
    if record_events:
        for doc in new_docs.values():
            tenants = doc["owners"] or ["platform"]
            for tenant in tenants:
                events.append(record_event(db, txn, type=EVENT_TYPES[doc["kind"]], tenant=tenant,
                                           now=now, data={"object": transfer_resource(doc, viewer=tenant)}))
    return Outcome([TransferResult(s.id, "created", new_docs[s.id]) for s in specs], events, extra)



def _get_all(txn, refs: list) -> dict[str, Any]:
    if not refs:
        return {}
    unique = list({r.path: r for r in refs}.values())
    return {s.reference.path: s for s in txn.get_all(unique)}


def _apply(db, acct: _Acct, delta: Balances, shard_key: str, now, i: int, n: int,
           shard_reads: dict[str, Balances]) -> None:
    acct.touched = True
    flags = acct.flags
    debit_growth = delta.debits_posted + delta.debits_pending
    credit_growth = delta.credits_posted + delta.credits_pending
    if not acct.hot:
        acct.bal = acct.bal + delta
        for f in BALANCE_FIELDS:
            if getattr(acct.bal, f) > assets.INT64_MAX:
                raise Unprocessable("The transfer would overflow an account balance.",
                                    code=f"overflows_{f}", param=_leg(i, n, "amount"))
        if flags.get("debits_must_not_exceed_credits") and debit_growth > 0 and \
                acct.bal.debits_posted + acct.bal.debits_pending > acct.bal.credits_posted:
            raise Unprocessable("Insufficient funds: the debit exceeds the account's available "
                                "balance.", code="insufficient_funds", param=_leg(i, n, "amount"))
        if flags.get("credits_must_not_exceed_debits") and credit_growth > 0 and \
                acct.bal.credits_posted + acct.bal.credits_pending > acct.bal.debits_posted:
            raise Unprocessable("The credit exceeds the account's debits.",
                                code="exceeds_debits", param=_leg(i, n, "amount"))
        return
    # Hot account: credits (and, without a limit, debits) go to a shard by blind Increment.
    k = acc_mod.ShardPlan(int(acct.doc.get("shard_count") or 1)).pick(shard_key)
    limited = bool(flags.get("debits_must_not_exceed_credits"))
    credit_part = Balances(credits_posted=delta.credits_posted, credits_pending=delta.credits_pending)
    debit_part = Balances(debits_posted=delta.debits_posted, debits_pending=delta.debits_pending)
    shard = acct.shard_deltas.setdefault(k, Balances())
    acct.shard_deltas[k] = shard + credit_part + (Balances() if limited else debit_part)
    if limited:
        acct.main_delta = acct.main_delta + debit_part
        if debit_growth > 0:
            if not acct.read:
                raise RuntimeError(f"hot account {acct.id} debited without a transactional read")
            if acct.id not in shard_reads:   # outside the transaction: a safe lower bound
                total = Balances()
                for snap in db.get_all(acc_mod.shard_refs(db, acct.id,
                                                          int(acct.doc.get("shard_count") or 0))):
                    if snap.exists:
                        total = total + Balances.of(snap.to_dict())
                shard_reads[acct.id] = total
            credits = acct.bal.credits_posted + shard_reads[acct.id].credits_posted \
                + acct.shard_credits_posted()
            debits = acct.bal.debits_posted + acct.bal.debits_pending \
                + acct.main_delta.debits_posted + acct.main_delta.debits_pending
            if debits > credits:
                raise Unprocessable("Insufficient funds: the debit exceeds the account's "
                                    "available balance.", code="insufficient_funds",
                                    param=_leg(i, n, "amount"))


def _after(acct: _Acct) -> dict[str, int] | None:
    """Exact balances after the entry for ordinary accounts; None for hot accounts, whose
    balance is only exact as a sum at a point in time (see the decision record)."""
    return None if acct.hot else acct.bal.summary()


def _write_account(db, txn, acct: _Acct, now) -> None:
    ref = acc_mod.account_ref(db, acct.id)
    if acct.created:
        doc = dict(acct.doc)
        doc.update((acct.bal + acct.main_delta).as_dict())
        doc["entry_count"] = acct.entries
        txn.create(ref, doc)
    elif not acct.hot:
        txn.update(ref, {**acct.bal.as_dict(),
                         "entry_count": int(acct.doc.get("entry_count") or 0) + acct.entries,
                         "updated_at": now})
    else:  # blind: never read in this transaction unless it was debited
        main = {f: firestore.Increment(v) for f, v in acct.main_delta.as_dict().items() if v}
        if main:
            txn.update(ref, main)
    if acct.hot:
        for k, delta in acct.shard_deltas.items():
            values = {f: firestore.Increment(v) for f, v in delta.as_dict().items() if v}
            if values:
                txn.set(ref.collection(SHARDS).document(str(k)), values, merge=True)


def transfer_resource(doc: dict[str, Any], *, viewer: str | None = None) -> dict[str, Any]:
    """The public shape of a transfer. A user viewer sees only their own balance after."""
    after = doc.get("balances_after") or {}
    if viewer and viewer != "platform":
        own = [a for a, o in ((doc["debit_account_id"], doc.get("debit_owner")),
                              (doc["credit_account_id"], doc.get("credit_owner"))) if o == viewer]
        after = {a: after.get(a) for a in own}
    status = doc.get("pending_status") if doc["kind"] == PENDING else doc["status"]
    return {
        "id": doc["id"], "object": "transfer", "kind": doc["kind"], "code": doc.get("code"),
        "status": status, "asset": doc["asset"], "amount": doc["amount"],
        "amount_decimal": assets.format_decimal(doc["amount"], doc["asset"]),
        "debit_account_id": doc["debit_account_id"], "credit_account_id": doc["credit_account_id"],
        "pending_id": doc.get("pending_id"), "reverses": doc.get("reverses"),
        "reversed_amount": doc.get("reversed_amount"),
        "expires_at": rfc3339(doc["expires_at"]) if doc.get("expires_at") else None,
        "linked_ids": doc.get("linked_ids", [doc["id"]]), "description": doc.get("description"),
        "metadata": doc.get("metadata") or {}, "balances_after": after,
        "created": rfc3339(doc["created_at"]),
    }
