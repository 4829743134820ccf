"""The ledger audit: recompute balances from the immutable history and compare.

Two modes, both reading one consistent snapshot (every read at the same ``read_time``):
- **incremental** (every run): reads only the entries committed since the last checkpoint, the
  transfers they belong to, and the accounts they touch (main document + shards). The
  checkpoint (``ledger_audits/checkpoint``) holds the watermark (a commit time) and the running
  sums: per account the Σ of entry effects and the entry count, per asset the Σ of debits and
  credits. Cost grows with the traffic since the last run, not with the ledger.
- **full** (weekly, or on demand with ``{"full": true}``): a scan of accounts, shards, transfers
  and entries that also checks what the incremental mode cannot see cheaply (reversal sums over
  all time, holds resolved by nobody, accounts no entry touched), and rebuilds the checkpoint.

Checks (``check`` and ``check_increment`` are pure; the I/O is ``snapshot``/``read_increment``):
1. per asset, Σ debits = Σ credits, for posted and for pending amounts;
2. every account's balances (main document + Σ shards) = Σ of its entries' effects
   (= what its transfers imply, in the full mode), and its entry counts agree;
3. no account flagged ``debits_must_not_exceed_credits`` has debits above credits, and no
   pending balance is negative;
4. each hold is resolved at most once, by a transfer that names it, and each transfer's
   ``reversed_amount`` equals the sum of its reversals.

A violation is logged at ERROR and emitted as ``ledger.audit_failed`` through the outbox; every
run writes a record in ``ledger_audits``. Before reading, the audit expires holds whose Cloud
Task was lost (``service.expire_overdue``).
"""
from __future__ import annotations

import collections
import datetime as dt
import logging
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.ledger import service
from shared.ledger.model import (ACCOUNTS, ENTRIES, EXPIRE, PENDING, POST, SHARDS, SINGLE,
                                 TRANSFERS, VOID, Balances)
from shared.ledger.resources import AUDIT_FAILED, LedgerAudit
from shared.platform import logs
from shared.platform.clock import rfc3339
from shared.platform.deps import Deps
from shared.platform.ids import new_id
from shared.platform.uow import run_unit

AUDITS = "ledger_audits"
CHECKPOINT_ID = "checkpoint"
FULL_EVERY = dt.timedelta(days=7)
# Reads are taken this far in the past: commits still in flight at that instant are finished,
# so the snapshot is a final prefix of ledger order.
SETTLE = dt.timedelta(seconds=1)
MAX_REPORTED = 50
_log = logs.get_logger(__name__)


def transfer_effects(t: dict[str, Any]) -> tuple[Balances, Balances]:
    """(debit account delta, credit account delta) a transfer implies."""
    kind, amt = t["kind"], int(t["amount"])
    pa = int(t.get("pending_amount") or 0)
    if kind == SINGLE:
        return Balances(debits_posted=amt), Balances(credits_posted=amt)
    if kind == PENDING:
        return Balances(debits_pending=amt), Balances(credits_pending=amt)
    if kind == POST:
        return (Balances(debits_posted=amt, debits_pending=-pa),
                Balances(credits_posted=amt, credits_pending=-pa))
    if kind in (VOID, EXPIRE):
        return Balances(debits_pending=-pa), Balances(credits_pending=-pa)
    raise ValueError(f"unknown transfer kind {kind!r}")


def _entry_count(doc: dict[str, Any] | None) -> int:
    return int((doc or {}).get("entry_count") or 0)


# --- I/O ----------------------------------------------------------------------------------------
def snapshot(db, read_time: dt.datetime | None = None) -> dict[str, Any]:
    """Accounts, shard sums, transfers and entries, all as of ``read_time`` (default: now)."""
    at = {"read_time": read_time} if read_time else {}
    accounts = {s.id: s.to_dict() for s in db.collection(ACCOUNTS).stream(**at)}
    shards: dict[str, Balances] = collections.defaultdict(Balances)
    shard_entries: dict[str, int] = collections.Counter()
    for s in db.collection_group(SHARDS).stream(**at):
        parent = s.reference.parent.parent
        if parent is not None and parent.parent.id == ACCOUNTS:
            shards[parent.id] = shards[parent.id] + Balances.of(s.to_dict())
            shard_entries[parent.id] += _entry_count(s.to_dict())
    transfers = [s.to_dict() for s in db.collection(TRANSFERS).stream(**at)]
    entries = [s.to_dict() for s in db.collection(ENTRIES).stream(**at)]
    return {"accounts": accounts, "shards": dict(shards), "shard_entries": dict(shard_entries),
            "transfers": transfers, "entries": entries}


def read_increment(db, checkpoint: dict[str, Any], read_time: dt.datetime) -> dict[str, Any]:
    """Entries committed after the checkpoint's watermark, their transfers (and the holds and
    originals those name), and the touched accounts with their shards, as of ``read_time``."""
    q = db.collection(ENTRIES)
    if checkpoint.get("through"):
        q = q.where(filter=FieldFilter("committed_at", ">", checkpoint["through"]))
    entries = [s.to_dict() for s in q.stream(read_time=read_time)]
    tids = {e["transfer_id"] for e in entries}
    transfers = _get_docs(db, TRANSFERS, tids, read_time)
    named = {x for t in transfers.values() for x in (t.get("pending_id"), t.get("reverses")) if x}
    transfers.update(_get_docs(db, TRANSFERS, named - set(transfers), read_time))
    acc_ids = {e["account_id"] for e in entries}
    accounts = _get_docs(db, ACCOUNTS, acc_ids, read_time)
    shards: dict[str, Balances] = collections.defaultdict(Balances)
    shard_entries: dict[str, int] = collections.Counter()
    refs = [db.collection(ACCOUNTS).document(a).collection(SHARDS).document(str(k))
            for a, doc in accounts.items() for k in range(max(1, int(doc.get("shard_count") or 0)))]
    for snap in (db.get_all(refs, read_time=read_time) if refs else []):
        if snap.exists:
            a = snap.reference.parent.parent.id
            shards[a] = shards[a] + Balances.of(snap.to_dict())
            shard_entries[a] += _entry_count(snap.to_dict())
    return {"entries": entries, "transfers": transfers, "accounts": accounts,
            "shards": dict(shards), "shard_entries": dict(shard_entries)}


def _get_docs(db, collection: str, ids, read_time) -> dict[str, dict[str, Any]]:
    refs = [db.collection(collection).document(i) for i in ids]
    if not refs:
        return {}
    return {s.id: s.to_dict() for s in db.get_all(refs, read_time=read_time) if s.exists}


# --- pure rules ---------------------------------------------------------------------------------
def _account_checks(violations: list, acc_id: str, doc: dict[str, Any], actual: Balances,
                    from_entries: Balances, recorded_entries: int, entries: int) -> None:
    if actual != from_entries:
        violations.append({"check": "balance_mismatch", "account_id": acc_id,
                           "asset": doc.get("asset"), "actual": actual.as_dict(),
                           "expected_from_entries": from_entries.as_dict()})
    if recorded_entries != entries:
        violations.append({"check": "entry_count_mismatch", "account_id": acc_id,
                           "recorded": recorded_entries, "entries": entries})
    flags = doc.get("flags") or {}
    if flags.get("debits_must_not_exceed_credits") and \
            actual.debits_posted + actual.debits_pending > actual.credits_posted:
        violations.append({"check": "debits_exceed_credits", "account_id": acc_id,
                           "actual": actual.as_dict()})
    if actual.debits_pending < 0 or actual.credits_pending < 0:
        violations.append({"check": "negative_pending", "account_id": acc_id,
                           "actual": actual.as_dict()})


def _entry_checks(violations: list, entries: list[dict], transfers: dict[str, dict]) -> None:
    """Each entry is its transfer's effect on its side."""
    for e in entries:
        t = transfers.get(e["transfer_id"])
        if t is None:
            violations.append({"check": "entry_without_transfer", "entry_id": e["id"]})
            continue
        d, c = transfer_effects(t)
        want = d if e["direction"] == "debit" else c
        acct = t["debit_account_id"] if e["direction"] == "debit" else t["credit_account_id"]
        if Balances.of(e.get("effect")) != want or e["account_id"] != acct:
            violations.append({"check": "entry_mismatch", "entry_id": e["id"],
                               "transfer_id": t["id"]})


def _resolution_checks(violations: list, new: list[dict], transfers: dict[str, dict]) -> None:
    for t in new:
        if t["kind"] in (POST, VOID, EXPIRE):
            p = transfers.get(t["pending_id"])
            if p is None or p["kind"] != PENDING:
                violations.append({"check": "resolution_without_pending", "transfer_ids": [t["id"]],
                                   "pending_id": t["pending_id"]})
            elif p.get("resolved_by") != t["id"]:
                violations.append({"check": "pending_resolved_twice", "pending_id": p["id"],
                                   "transfer_ids": sorted({t["id"], str(p.get("resolved_by"))})})
            elif p.get("pending_status") == "pending":
                violations.append({"check": "resolved_pending_still_pending", "pending_id": p["id"]})
        if t.get("reverses"):
            o = transfers.get(t["reverses"])
            if o is None or t["id"] not in (o.get("reversal_ids") or []) or \
                    int(o.get("reversed_amount") or 0) > int(o["amount"]):
                violations.append({"check": "reversed_amount_mismatch", "transfer_id": t["reverses"],
                                   "reversal_id": t["id"]})


def _sums(entries: list[dict]) -> tuple[dict[str, Balances], dict[str, int], dict[str, Balances]]:
    per_account: dict[str, Balances] = collections.defaultdict(Balances)
    counts: dict[str, int] = collections.Counter()
    per_asset: dict[str, Balances] = collections.defaultdict(Balances)
    for e in entries:
        eff = Balances.of(e.get("effect"))
        per_account[e["account_id"]] = per_account[e["account_id"]] + eff
        counts[e["account_id"]] += 1
        per_asset[e["asset"]] = per_asset[e["asset"]] + eff
    return per_account, counts, per_asset


def _asset_checks(violations: list, per_asset: dict[str, Balances]) -> None:
    for asset, b in sorted(per_asset.items()):
        if b.debits_posted != b.credits_posted or b.debits_pending != b.credits_pending:
            violations.append({"check": "debits_ne_credits", "asset": asset, **b.as_dict()})


def check(snap: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pure, full mode: the violations in a whole-ledger snapshot, and summary counts."""
    accounts, shards = snap["accounts"], snap["shards"]
    violations: list[dict[str, Any]] = []
    transfers_by_id = {t["id"]: t for t in snap["transfers"]}
    expected: dict[str, Balances] = collections.defaultdict(Balances)
    resolutions: dict[str, list[str]] = collections.defaultdict(list)
    reversals: dict[str, int] = collections.Counter()
    for t in snap["transfers"]:
        d, c = transfer_effects(t)
        expected[t["debit_account_id"]] = expected[t["debit_account_id"]] + d
        expected[t["credit_account_id"]] = expected[t["credit_account_id"]] + c
        if t["kind"] in (POST, VOID, EXPIRE):
            resolutions[t["pending_id"]].append(t["id"])
        if t.get("reverses"):
            reversals[t["reverses"]] += int(t["amount"])
    from_entries, counts, _ = _sums(snap["entries"])
    _entry_checks(violations, snap["entries"], transfers_by_id)
    for pid, ids in resolutions.items():
        p = transfers_by_id.get(pid)
        if p is None or p["kind"] != PENDING:
            violations.append({"check": "resolution_without_pending", "transfer_ids": ids,
                               "pending_id": pid})
        elif len(ids) > 1:
            violations.append({"check": "pending_resolved_twice", "pending_id": pid,
                               "transfer_ids": ids})
        elif p.get("pending_status") == "pending":
            violations.append({"check": "resolved_pending_still_pending", "pending_id": pid})
    for t in snap["transfers"]:
        if t["kind"] == PENDING and t.get("pending_status") != "pending" and t["id"] not in resolutions:
            violations.append({"check": "pending_status_without_resolution", "pending_id": t["id"]})
        if t["kind"] in (SINGLE, POST) and int(t.get("reversed_amount") or 0) != reversals.get(t["id"], 0):
            violations.append({"check": "reversed_amount_mismatch", "transfer_id": t["id"],
                               "recorded": t.get("reversed_amount"),
                               "reversals": reversals.get(t["id"], 0)})
    totals: dict[str, Balances] = collections.defaultdict(Balances)
    for acc_id in sorted(set(accounts) | set(expected) | set(shards)):
        doc = accounts.get(acc_id)
        if doc is None:
            violations.append({"check": "transfer_to_missing_account", "account_id": acc_id})
            continue
        actual = Balances.of(doc) + shards.get(acc_id, Balances())
        totals[doc["asset"]] = totals[doc["asset"]] + actual
        want = expected.get(acc_id, Balances())
        if from_entries.get(acc_id, Balances()) != want:
            violations.append({"check": "entries_mismatch", "account_id": acc_id,
                               "from_entries": from_entries.get(acc_id, Balances()).as_dict(),
                               "expected_from_transfers": want.as_dict()})
        _account_checks(violations, acc_id, doc, actual, want,
                        _entry_count(doc) + snap.get("shard_entries", {}).get(acc_id, 0),
                        counts.get(acc_id, 0))
    _asset_checks(violations, totals)
    summary = {"accounts": len(accounts), "transfers": len(snap["transfers"]),
               "entries": len(snap["entries"]),
               "assets": {a: b.as_dict() for a, b in sorted(totals.items())}}
    return violations, summary


def checkpoint_from(snap: dict[str, Any], through: dt.datetime | None) -> dict[str, Any]:
    """Pure: the running sums a full snapshot implies, to be continued incrementally."""
    per_account, counts, per_asset = _sums(snap["entries"])
    return {"through": through,
            "accounts": {a: {**b.as_dict(), "entries": counts[a]} for a, b in per_account.items()},
            "assets": {a: b.as_dict() for a, b in per_asset.items()}}


def check_increment(checkpoint: dict[str, Any], inc: dict[str, Any]) -> tuple[list, dict, dict]:
    """Pure, incremental mode: (violations, summary, the next checkpoint)."""
    violations: list[dict[str, Any]] = []
    entries = inc["entries"]
    per_account, counts, per_asset = _sums(entries)
    _entry_checks(violations, entries, inc["transfers"])
    new_transfers = [inc["transfers"][t] for t in {e["transfer_id"] for e in entries}
                     if t in inc["transfers"]]
    _resolution_checks(violations, new_transfers, inc["transfers"])
    acc_sums = {a: dict(v) for a, v in (checkpoint.get("accounts") or {}).items()}
    for a, delta in per_account.items():
        prev = acc_sums.get(a, {})
        acc_sums[a] = {**(Balances.of(prev) + delta).as_dict(),
                       "entries": int(prev.get("entries", 0)) + counts[a]}
    asset_sums = {a: (Balances.of(v)) for a, v in (checkpoint.get("assets") or {}).items()}
    for a, delta in per_asset.items():
        asset_sums[a] = asset_sums.get(a, Balances()) + delta
    _asset_checks(violations, asset_sums)
    for a in per_account:
        doc = inc["accounts"].get(a)
        if doc is None:
            violations.append({"check": "transfer_to_missing_account", "account_id": a})
            continue
        actual = Balances.of(doc) + inc["shards"].get(a, Balances())
        _account_checks(violations, a, doc, actual, Balances.of(acc_sums[a]),
                        _entry_count(doc) + inc["shard_entries"].get(a, 0), acc_sums[a]["entries"])
    through = max((e["committed_at"] for e in entries), default=checkpoint.get("through"))
    summary = {"entries": len(entries), "transfers": len(new_transfers),
               "accounts": len(per_account),
               "assets": {a: b.as_dict() for a, b in sorted(asset_sums.items())}}
    return violations, summary, {**checkpoint, "through": through, "accounts": acc_sums,
                                 "assets": {a: b.as_dict() for a, b in asset_sums.items()}}


# --- the run --------------------------------------------------------------------------------------
def run_audit(deps: Deps, *, full: bool | None = None, expire_overdue: bool = True) -> LedgerAudit:
    """One audit run: incremental from the checkpoint, or full when asked, when there is no
    checkpoint yet, or when the last full run is older than a week."""
    db, now = deps.db, deps.clock.now()
    expired = service.expire_overdue(deps) if expire_overdue else 0
    ck_ref = db.collection(AUDITS).document(CHECKPOINT_ID)
    ck_snap = ck_ref.get()
    checkpoint = ck_snap.to_dict() if ck_snap.exists else None
    last_full = (checkpoint or {}).get("last_full_at")
    if full is None:
        full = checkpoint is None or last_full is None or now - last_full >= FULL_EVERY
    read_time = _read_time(now)
    if full:
        snap = snapshot(db, read_time)
        violations, summary = check(snap)
        through = max((e["committed_at"] for e in snap["entries"] if e.get("committed_at")),
                      default=None)
        new_ck = {**checkpoint_from(snap, through), "last_full_at": now}
    else:
        violations, summary, new_ck = check_increment(checkpoint, read_increment(db, checkpoint, read_time))
    audit_id = new_id("aud")
    report = LedgerAudit(id=audit_id, mode="full" if full else "incremental", ok=not violations,
                         violation_count=len(violations), violations=violations[:MAX_REPORTED],
                         expired_overdue_holds=expired, created=rfc3339(now), **summary)

    def record(uow):
        uow.create(db.collection(AUDITS).document(audit_id),
                   {**report.model_dump(mode="json"), "created_at": now})
        if not violations:   # a failing run keeps the last good checkpoint: re-checked next time
            uow.set(ck_ref, {**new_ck, "updated_at": now, "audit_id": audit_id})
        else:
            logs.log(_log, logging.ERROR, "ledger audit failed", audit_id=audit_id,
                     violation_count=len(violations), first=violations[0])
            uow.emit(AUDIT_FAILED.name, tenant="platform",
                     data={"object": report.model_dump(mode="json")})

    run_unit(deps, record)
    return report


def _read_time(now: dt.datetime) -> dt.datetime:
    """A whole microsecond in the settled past (Firestore read times are microsecond-precise)."""
    return now - SETTLE
