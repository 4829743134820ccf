"""The ledger's rules as one pure function: plain values in, the writes to make out.

``plan(specs, transfers=..., accounts=..., templates=..., now=...)`` decides every rule of a
linked batch (idempotency by transfer id, two-phase holds, reversals, balance limits, closed
accounts, assets) on dicts, ints and datetimes. It never touches Firestore, so it is
property-tested without an emulator (``tests/ledger/test_plan_properties.py``); ``engine`` does
the reading before it and the writing after it.

Where each balance lives (see docs/decisions/0020-ledger.md, "Hot accounts"):
- the side an account's flag limits (debits of a ``debits_must_not_exceed_credits`` account)
  lives in the main document, which is read and written with a precondition, so checked debits
  serialise;
- every other side (every credit of a wallet or a merchant account, and both sides of an
  unlimited account) is a blind ``Increment`` into one of the account's balance shards: it is
  never read, so it never contends.
A checked debit compares against main + Σ shards as read; shard credits only grow, so a stale
shard sum is a lower bound and the check can refuse but never overdraw.

If the values given are not enough (a transfer or account not read yet), ``plan`` raises
``NeedReads`` naming what to read; the caller reads it and plans again.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from typing import Any, Callable, Iterable, Mapping

from shared.ledger import assets
from shared.ledger.model import (BALANCE_FIELDS, EXPIRE, PENDING, POST, RESOLUTIONS, SINGLE, VOID,
                                 AccountTemplate, Balances, TransferResult, TransferSpec)
from shared.ledger.resources import (TRANSFER_CREATED, TRANSFER_EXPIRED, TRANSFER_POSTED,
                                     TRANSFER_VOIDED, LedgerTransfer)
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from shared.platform.ids import derived_id, is_id

MAX_LEGS = 32
MAX_TIMEOUT_SECONDS = 30 * 86400
EVENT_TYPES = {SINGLE: TRANSFER_CREATED.name, PENDING: TRANSFER_CREATED.name,
               POST: TRANSFER_POSTED.name, VOID: TRANSFER_VOIDED.name, EXPIRE: TRANSFER_EXPIRED.name}
STATUS_OF_KIND = {SINGLE: "posted", PENDING: "pending", POST: "posted", VOID: "voided",
                  EXPIRE: "expired"}
DEBIT_FIELDS = ("debits_posted", "debits_pending")
CREDIT_FIELDS = ("credits_posted", "credits_pending")


@dataclasses.dataclass(frozen=True)
class AccountState:
    """One account as the caller knows it.

    ``doc``: the main document (None: it does not exist). ``read``: ``doc`` was read in this
    unit (False: immutable metadata from a cache, enough for a blind credit). ``shards``: the sum
    of the balance shards if they were read (None otherwise)."""
    doc: dict[str, Any] | None
    read: bool = True
    shards: Balances | None = None


class NeedReads(Exception):
    """Internal: plan needs more documents; read them and call plan again."""

    def __init__(self, transfers: Iterable[str] = (), accounts: Iterable[str] = (),
                 shards: Iterable[str] = ()):
        self.transfers, self.accounts, self.shards = set(transfers), set(accounts), set(shards)
        super().__init__(f"need transfers={sorted(self.transfers)} accounts={sorted(self.accounts)} "
                         f"shards={sorted(self.shards)}")


@dataclasses.dataclass
class Plan:
    """Everything the batch writes. Empty but ``results`` when the batch already exists."""
    results: list[TransferResult]
    transfer_creates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    transfer_updates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    account_creates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    main_deltas: dict[str, Balances] = dataclasses.field(default_factory=dict)
    main_entries: dict[str, int] = dataclasses.field(default_factory=dict)
    shard_deltas: dict[tuple[str, int], Balances] = dataclasses.field(default_factory=dict)
    shard_entries: dict[tuple[str, int], int] = dataclasses.field(default_factory=dict)
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    balances: dict[str, Balances] = dataclasses.field(default_factory=dict)  # known totals after

    @property
    def created(self) -> bool:
        return any(r.status == "created" for r in self.results)


def random_shard(shard_count: int, key: str | None) -> int:
    """Resolutions of a hold reuse the hold's shard (per-shard pending sums return to zero);
    every other write goes to a random shard."""
    if shard_count <= 1:
        return 0
    if key:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % shard_count
    return secrets.randbelow(shard_count)


# --- static validation ----------------------------------------------------------------------
def _leg(i: int, n: int, param: str) -> str:
    return f"transfers[{i}].{param}" if n > 1 else param


def validate(specs: list[TransferSpec]) -> None:
    """Checks that need no stored state (400s)."""
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
        for field in ("post_pending_id", "void_pending_id", "expire_pending_id", "reverses"):
            other = getattr(s, field)
            if other is not None and not is_id(other, "txf"):
                raise InvalidRequest(f"{field} must be a transfer id (txf_…).",
                                     code="transfer_id_invalid", param=_leg(i, n, field))
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


def compare_existing(spec: TransferSpec, doc: dict[str, Any], linked: list[str]) -> None:
    """TigerBeetle's ``exists_with_different_*``: a retry must repeat every client field."""
    stored = doc.get("request") or {}
    for field, value in spec.request_fields().items():
        if stored.get(field) != value:
            raise Conflict(f"Transfer {spec.id} already exists with a different {field}.",
                           code=f"exists_with_different_{field}", param=field)
    if doc.get("linked_ids", [spec.id]) != linked:
        raise Conflict(f"Transfer {spec.id} already exists in a different linked batch.",
                       code="exists_with_different_linked", param="linked")


# --- where balances live ------------------------------------------------------------------------
def debits_in_main(doc: Mapping[str, Any]) -> bool:
    return bool((doc.get("flags") or {}).get("debits_must_not_exceed_credits"))


def credits_in_main(doc: Mapping[str, Any]) -> bool:
    return bool((doc.get("flags") or {}).get("credits_must_not_exceed_debits"))


def shard_count(doc: Mapping[str, Any]) -> int:
    return max(1, int(doc.get("shard_count") or 0))


def needs_shards_for_debit(doc: Mapping[str, Any]) -> bool:
    """A new debit of this account is checked against main + Σ shards."""
    return debits_in_main(doc)


@dataclasses.dataclass
class _Acct:
    id: str
    doc: dict[str, Any]
    read: bool
    created: bool
    total: Balances | None           # main + shards before the batch, if known
    delta: Balances = dataclasses.field(default_factory=Balances)

    @property
    def owner_user(self) -> str | None:
        return self.doc.get("owner_id") if self.doc.get("owner_type") == "user" else None

    def after(self) -> Balances | None:
        return None if self.total is None else self.total + self.delta


def _side_delta(delta: Balances, fields: tuple[str, ...]) -> Balances:
    return Balances(**{f: getattr(delta, f) for f in fields})


# --- the plan ---------------------------------------------------------------------------------
def plan(specs: list[TransferSpec], *, transfers: Mapping[str, dict[str, Any] | None],
         accounts: Mapping[str, AccountState], now: dt.datetime,
         templates: Iterable[AccountTemplate] = (),
         pick: Callable[[int, str | None], int] = random_shard) -> Plan:
    """Decide a linked batch. Raises a PayloomError (nothing to write) or ``NeedReads``."""
    validate(specs)
    templates_by_id = {t.id: t for t in templates}
    n = len(specs)
    linked = [s.id for s in specs]
    by_id = {s.id: s for s in specs}

    unread = [s.id for s in specs if s.id not in transfers]
    refs = [o for s in specs for o in (s.pending_id, s.reverses)
            if o and o not in by_id and o not in transfers]
    if unread or refs:
        raise NeedReads(transfers=unread + refs)

    # ---- idempotency: the id is the key ------------------------------------------------
    existing = [s for s in specs if transfers.get(s.id)]
    if existing:
        if len(existing) != n:
            raise Conflict("Some transfers of this linked batch already exist and some do not.",
                           code="exists_with_different_linked", param="linked")
        for s in specs:
            compare_existing(s, transfers[s.id], linked)
        return Plan([TransferResult(s.id, "exists", transfers[s.id]) for s in specs])

    # ---- every account the batch names must be known --------------------------------------
    def ref_doc(tid: str, made: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
        return made.get(tid) or transfers.get(tid)

    named: list[tuple[str, bool]] = []      # (account id, is a checked debit)
    for s in specs:
        other = s.pending_id or s.reverses
        od = transfers.get(other) if other and other not in by_id else None
        if s.reverses and other in by_id:
            od = {"debit_account_id": by_id[other].debit_account_id,
                  "credit_account_id": by_id[other].credit_account_id}
        if od:
            if s.reverses:   # a reversal debits the original's credit account
                named += [(od["credit_account_id"], True), (od["debit_account_id"], False)]
            else:
                named += [(od["debit_account_id"], False), (od["credit_account_id"], False)]
        if s.debit_account_id:
            named.append((s.debit_account_id, s.kind in (SINGLE, PENDING)))
        if s.credit_account_id:
            named.append((s.credit_account_id, False))
    missing = {a for a, _ in named if a and a not in accounts}
    if missing:
        raise NeedReads(accounts=missing)

    accts: dict[str, _Acct] = {}
    for a, _ in named:
        if a in accts:
            continue
        st = accounts[a]
        if st.doc is not None:
            total = (Balances.of(st.doc) + st.shards) if st.read and st.shards is not None else None
            accts[a] = _Acct(a, dict(st.doc), st.read, False, total)
        elif a in templates_by_id:
            accts[a] = _Acct(a, templates_by_id[a].document(now), True, True, Balances())
        # else: an unknown account, refused per leg below (404 with the leg's param)

    out = Plan([])
    pending_state: dict[str, str] = {}
    reversed_amount: dict[str, int] = {}
    new_docs: dict[str, dict[str, Any]] = {}

    for i, s in enumerate(specs):
        kind = s.kind
        pending_amount = None
        pending_id = s.pending_id
        shard_key: str | None = None
        if kind in RESOLUTIONS:
            p = ref_doc(pending_id, new_docs)
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
            expires_at = p.get("hold_expires_at")
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
            o = ref_doc(s.reverses, new_docs)
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
            d_delta, c_delta = Balances(debits_posted=amount), Balances(credits_posted=amount)
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

        _apply(out, debit, d_delta, DEBIT_FIELDS, shard_key, i, n, pick)
        _apply(out, credit, c_delta, CREDIT_FIELDS, shard_key, i, n, pick)

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
            "hold_expires_at": now + dt.timedelta(seconds=s.timeout_seconds)
            if kind == PENDING and s.timeout_seconds else None,
            "pending_status": "pending" if kind == PENDING else None,
            "linked_ids": linked, "description": s.description,
            "metadata": dict(s.metadata or {}), "request": s.request_fields(),
            "balances_after": {a.id: _summary(a.after()) for a in (debit, credit)},
            "created_at": now,
        }
        new_docs[s.id] = doc
        for leg_side, (acct, other, side, delta) in enumerate(
                ((debit, credit, "debit", d_delta), (credit, debit, "credit", c_delta))):
            out.entries.append({
                "id": derived_id("ent", s.id, acct.id), "transfer_id": s.id,
                "batch_id": linked[0], "leg": 2 * i + leg_side,
                "account_id": acct.id, "asset": asset, "owner_type": acct.doc.get("owner_type"),
                "owner_id": acct.doc.get("owner_id"), "direction": side, "amount": amount,
                "effect": delta.as_dict(), "kind": kind, "code": s.code, "status": status,
                "counterparty_account_id": other.id, "counterparty_owner_id": other.owner_user,
                "pending_id": pending_id, "reverses": s.reverses, "description": s.description,
                "metadata": dict(s.metadata or {}), "records": [], "created_at": now,
            })

    # ---- annotations of earlier transfers (the only fields ever updated) -----------------
    for pid, status in pending_state.items():
        resolver = next(d["id"] for d in new_docs.values() if d.get("pending_id") == pid)
        if pid in new_docs:                      # held and resolved in this very batch
            new_docs[pid]["pending_status"] = status
            new_docs[pid]["resolved_by"] = resolver
            continue
        out.transfer_updates[pid] = {"pending_status": status, "resolved_by": resolver,
                                     "resolved_at": now}
    for oid, total in reversed_amount.items():
        ids = [d["id"] for d in new_docs.values() if d.get("reverses") == oid]
        if oid in new_docs:
            new_docs[oid]["reversed_amount"] = total
            new_docs[oid]["reversal_ids"] = ids
        else:
            before = list(transfers[oid].get("reversal_ids") or [])
            out.transfer_updates[oid] = {"reversed_amount": total, "reversal_ids": before + ids}

    out.transfer_creates = new_docs
    for acct in accts.values():
        if acct.created:
            doc = dict(acct.doc)
            main = out.main_deltas.pop(acct.id, Balances())
            doc.update(main.as_dict())
            doc["entry_count"] = out.main_entries.pop(acct.id, 0)
            out.account_creates[acct.id] = doc
        after = acct.after()
        if after is not None:
            out.balances[acct.id] = after
    for doc in new_docs.values():
        # One event per user involved, showing only that user's side. A transfer between
        # system accounts emits none: the capability that made it (payments, payouts) emits its
        # own domain event in the same unit, and the audit covers the ledger itself.
        for tenant in doc["owners"]:
            out.events.append((EVENT_TYPES[doc["kind"]], tenant,
                               {"object": transfer_resource(doc, viewer=tenant).model_dump(mode="json")}))
    out.results = [TransferResult(s.id, "created", new_docs[s.id]) for s in specs]
    return out


def _apply(out: Plan, acct: _Acct, delta: Balances, fields: tuple[str, ...], shard_key: str | None,
           i: int, n: int, pick: Callable[[int, str | None], int]) -> None:
    """Check one side of one leg on ``acct`` and route its delta to the main doc or a shard."""
    doc = acct.doc
    in_main = debits_in_main(doc) if fields == DEBIT_FIELDS else credits_in_main(doc)
    growth = sum(getattr(delta, f) for f in fields)
    checked = in_main and growth > 0
    if checked and (not acct.read or acct.total is None):
        # A checked debit (or credit) needs the main doc and every shard as read in this unit.
        raise NeedReads(accounts=[] if acct.read else [acct.id], shards=[acct.id])
    acct.delta = acct.delta + delta
    after = acct.after()
    if after is not None:
        for f in BALANCE_FIELDS:
            if getattr(after, f) > assets.INT64_MAX:
                raise Unprocessable("The transfer would overflow an account balance.",
                                    code=f"overflows_{f}", param=_leg(i, n, "amount"))
    if checked and fields == DEBIT_FIELDS and \
            after.debits_posted + after.debits_pending > after.credits_posted:
        raise Unprocessable("Insufficient funds: the debit exceeds the account's available "
                            "balance.", code="insufficient_funds", param=_leg(i, n, "amount"))
    if checked and fields == CREDIT_FIELDS and \
            after.credits_posted + after.credits_pending > after.debits_posted:
        raise Unprocessable("The credit exceeds the account's debits.",
                            code="exceeds_debits", param=_leg(i, n, "amount"))
    if in_main:
        out.main_deltas[acct.id] = out.main_deltas.get(acct.id, Balances()) + delta
        out.main_entries[acct.id] = out.main_entries.get(acct.id, 0) + 1
    else:
        k = pick(shard_count(doc), shard_key)
        out.shard_deltas[(acct.id, k)] = out.shard_deltas.get((acct.id, k), Balances()) + delta
        out.shard_entries[(acct.id, k)] = out.shard_entries.get((acct.id, k), 0) + 1


def _summary(bal: Balances | None) -> dict[str, int] | None:
    return None if bal is None else bal.summary()


def transfer_resource(doc: dict[str, Any], *, viewer: str | None = None) -> LedgerTransfer:
    """The public shape of a transfer. A user viewer sees only their own balance after."""
    after = doc.get("balances_after") or {}
    if viewer and viewer != "platform":
        own = [a for a, o in ((doc["debit_account_id"], doc.get("debit_owner")),
                              (doc["credit_account_id"], doc.get("credit_owner"))) if o == viewer]
        after = {a: after.get(a) for a in own}
    status = doc.get("pending_status") if doc["kind"] == PENDING else doc["status"]
    return LedgerTransfer(
        id=doc["id"], kind=doc["kind"], code=doc.get("code"), status=status, asset=doc["asset"],
        amount=doc["amount"], amount_decimal=assets.format_decimal(doc["amount"], doc["asset"]),
        debit_account_id=doc["debit_account_id"], credit_account_id=doc["credit_account_id"],
        pending_id=doc.get("pending_id"), reverses=doc.get("reverses"),
        reversed_amount=doc.get("reversed_amount"),
        expires_at=rfc3339(doc["hold_expires_at"]) if doc.get("hold_expires_at") else None,
        linked_ids=doc.get("linked_ids", [doc["id"]]), description=doc.get("description"),
        metadata=doc.get("metadata") or {}, balances_after=after,
        created=rfc3339(doc["created_at"]))
