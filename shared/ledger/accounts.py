"""Accounts: deterministic ids, the system accounts, opening/closing and balance reads.

User wallets are ``derived_id("acc", "wallet", user_id, asset)``: a transfer can name (and, with
a template, create) a recipient's wallet without a query. System accounts are derived from their
kind (and an optional key, e.g. a merchant id for ``settlement``).

Hot accounts keep their balances in ``balance_shards`` written with blind increments; reading
the balance sums the main document and every shard (one ``get_all``).
"""
from __future__ import annotations

import threading
import time
from typing import Any

from google.api_core import exceptions as gexc

from shared.ledger import assets
from shared.ledger.model import (ACCOUNTS, SHARDS, AccountFlags, AccountTemplate, Balances)
from shared.platform.errors import NotFound, Unprocessable
from shared.platform.ids import derived_id

DEFAULT_HOT_SHARDS = 16
# A wallet's credits (P2P, top-ups, refunds) are blind increments into one of its shards, so
# payers into one recipient never contend; its debits stay in the main document (checked).
WALLET_SHARDS = 4

# System account kinds: (flags, shard count). See docs/decisions/0020-ledger.md.
#  topup_clearing  money received from card acquirers (Stripe) before it settles to our float;
#                  debited by every top-up, never limited → hot both ways, blind increments.
#  external        the outside world for on-chain deposits and withdrawals; likewise.
#  float           our own funds at banks/custodians; rarely written.
#  fees            revenue; credited by every fee leg (hot), debited only by sweeps (checked).
#  rewards         a funded pool; must not go below zero.
#  settlement      per merchant (key = merchant id): credited by every payment (hot), paid out
#                  rarely, must not go below zero.
#  network_fees    gas Payloom pays to move crypto (sweeps, top-ups, cold transfers, refunds,
#                  withdrawals: ADR 0038); an expense debited by each → hot, blind increments.
SYSTEM_KINDS: dict[str, tuple[AccountFlags, int]] = {
    "topup_clearing": (AccountFlags(hot=True), DEFAULT_HOT_SHARDS),
    "external": (AccountFlags(hot=True), DEFAULT_HOT_SHARDS),
    "float": (AccountFlags(), 1),
    "fees": (AccountFlags(debits_must_not_exceed_credits=True, hot=True), DEFAULT_HOT_SHARDS),
    "rewards": (AccountFlags(debits_must_not_exceed_credits=True), 1),
    "settlement": (AccountFlags(debits_must_not_exceed_credits=True, hot=True), DEFAULT_HOT_SHARDS),
    "disputes": (AccountFlags(), 1),   # disputed card money held from merchants (ADR 0031)
    # test mode's play money: funds test-mode wallet payments so they never touch a real
    # wallet (ADR 0031); unlimited, key "test" only
    "test_faucet": (AccountFlags(hot=True), DEFAULT_HOT_SHARDS),
    "network_fees": (AccountFlags(hot=True), DEFAULT_HOT_SHARDS),   # gas we pay (ADR 0038)
}


def user_wallet_id(user_id: str, asset: str) -> str:
    return derived_id("acc", "wallet", user_id, asset)


def system_account_id(kind: str, asset: str, key: str = "") -> str:
    return derived_id("acc", "system", kind, key, asset)


def wallet_template(user_id: str, asset: str) -> AccountTemplate:
    assets.get_asset(asset)
    return AccountTemplate(id=user_wallet_id(user_id, asset), asset=asset, owner_type="user",
                           owner_id=user_id, kind="wallet",
                           flags=AccountFlags(debits_must_not_exceed_credits=True),
                           shard_count=WALLET_SHARDS)


def system_template(kind: str, asset: str, key: str = "", *, shard_count: int | None = None) -> AccountTemplate:
    assets.get_asset(asset)
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"unknown system account kind {kind!r}")
    flags, shards = SYSTEM_KINDS[kind]
    return AccountTemplate(id=system_account_id(kind, asset, key), asset=asset, owner_type="system",
                           owner_id=f"{kind}:{key}" if key else kind, kind=kind, flags=flags,
                           shard_count=shard_count if shard_count is not None else shards,
                           label=f"{kind} {key} {asset}".replace("  ", " "))


def account_ref(db, account_id: str):
    return db.collection(ACCOUNTS).document(account_id)


def shard_refs(db, account_id: str, shard_count: int) -> list:
    ref = account_ref(db, account_id)
    return [ref.collection(SHARDS).document(str(k)) for k in range(shard_count)]


# --- metadata cache ------------------------------------------------------------------------
# An account's asset, owner, flags and shard count never change, so a process may remember them
# and skip reading a hot account inside a transaction. ``closed`` can change: for hot accounts
# it is re-read after META_TTL seconds (closing a hot account takes effect within that time).
META_TTL = 30.0
_meta: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
_meta_lock = threading.Lock()


def _project(db) -> str:
    return getattr(db, "project", "") or ""


def cached_meta(db, account_id: str) -> dict[str, Any] | None:
    with _meta_lock:
        hit = _meta.get((_project(db), account_id))
    if hit and time.monotonic() - hit[1] < META_TTL:
        return hit[0]
    return None


def remember_meta(db, doc: dict[str, Any]) -> None:
    meta = {k: doc.get(k) for k in ("id", "asset", "owner_type", "owner_id", "kind", "flags",
                                     "shard_count", "closed")}
    with _meta_lock:
        if len(_meta) > 50_000:   # a bound, not an LRU: the cache is only a hint
            _meta.clear()
        _meta[(_project(db), doc["id"])] = (meta, time.monotonic())


def forget_meta(db, account_id: str) -> None:
    with _meta_lock:
        _meta.pop((_project(db), account_id), None)


# --- opening and closing --------------------------------------------------------------------
def open_account(db, template: AccountTemplate, now) -> dict[str, Any]:
    """Create the account if missing (idempotent) and return its document."""
    ref = account_ref(db, template.id)
    doc = template.document(now)
    try:
        ref.create(doc)
    except gexc.AlreadyExists:
        doc = ref.get().to_dict()
    remember_meta(db, doc)
    return doc


_ensured: set[tuple[str, str]] = set()


def ensure_system_account(db, kind: str, asset: str, now, key: str = "") -> str:
    """The id of a system account, created on first use (cached per process)."""
    template = system_template(kind, asset, key)
    if (_project(db), template.id) not in _ensured:
        open_account(db, template, now)
        _ensured.add((_project(db), template.id))
    return template.id


def close_account(uow, account_id: str) -> dict[str, Any]:
    """Close an account: no further transfers may touch it. Its history stays.

    The main document is read and written in the unit, so a concurrent checked debit of it
    conflicts; a blind credit racing the close can still land (see the decision record)."""
    ref = account_ref(uow.db, account_id)
    snap = uow.get(ref)
    if not snap.exists:
        raise NotFound(f"No such account: '{account_id}'", param="account_id",
                       code="account_not_found")
    doc = snap.to_dict()
    total = balance_from(uow.get_all(shard_refs(uow.db, account_id, _shards(doc))).values(), doc)
    if total.debits_pending or total.credits_pending:
        raise Unprocessable("An account with pending transfers cannot be closed.",
                            code="account_has_pending_transfers")
    uow.update(ref, {"closed": True, "closed_at": uow.now, "updated_at": uow.now})
    doc.update(closed=True, closed_at=uow.now)
    forget_meta(uow.db, account_id)
    return doc


# --- balances ---------------------------------------------------------------------------------
def _shards(doc: dict[str, Any]) -> int:
    return max(1, int(doc.get("shard_count") or 0))


def balance_from(shard_snaps, doc: dict[str, Any]) -> Balances:
    """Main document + Σ shards."""
    total = Balances.of(doc)
    for snap in shard_snaps:
        if snap.exists:
            total = total + Balances.of(snap.to_dict())
    return total


def read_balances(db, account_ids: list[str]) -> dict[str, tuple[dict[str, Any], Balances]]:
    """Documents and balances (main + every shard) of existing accounts: two ``get_all``s."""
    snaps = {s.id: s for s in db.get_all([account_ref(db, a) for a in account_ids])}
    docs = {a: snaps[a].to_dict() for a in account_ids if a in snaps and snaps[a].exists}
    refs = [r for a, doc in docs.items() for r in shard_refs(db, a, _shards(doc))]
    by_account: dict[str, list] = {a: [] for a in docs}
    for snap in (db.get_all(refs) if refs else []):
        by_account[snap.reference.parent.parent.id].append(snap)
    return {a: (doc, balance_from(by_account[a], doc)) for a, doc in docs.items()}


def balance(db, account_id: str) -> Balances:
    got = read_balances(db, [account_id])
    if account_id not in got:
        raise NotFound(f"No such account: '{account_id}'", param="account_id",
                       code="account_not_found")
    return got[account_id][1]

