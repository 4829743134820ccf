"""The ledger audit: recompute every balance from the immutable transfers and compare.

Checks, on one consistent snapshot (a read-only transaction):
1. per asset, Σ debits = Σ credits, for posted and for pending amounts;
2. every account's balances (main document + Σ balance shards) equal what its transfers imply;
3. every account's balances equal the sum of its history entries, and ordinary accounts'
   ``entry_count`` equals the number of entries;
4. no account flagged ``debits_must_not_exceed_credits`` has debits above credits, and no
   pending balance is negative;
5. each pending transfer is resolved at most once, by a transfer that names it, and each
   transfer's ``reversed_amount`` equals the sum of its reversals.

A violation is logged at ERROR and emitted as ``ledger.audit_failed`` through the outbox; a
clean run emits nothing (the run record in ``ledger_audits`` shows it ran). Before the snapshot
the audit also expires holds whose Cloud Task was lost (``service.expire_overdue``).

Cost: a full scan of accounts, shards, transfers and entries. Fine at today's volume within the
540 s function timeout; the decision record describes the incremental (checkpointed) version.
"""
from __future__ import annotations

import collections
import logging
from typing import Any

from google.cloud import firestore

from shared.ledger import service
from shared.ledger.model import (ACCOUNTS, ENTRIES, EXPIRE, PENDING, POST,
                                 SHARDS, SINGLE, TRANSFERS, VOID, Balances)
from shared.platform import logs
from shared.platform.clock import rfc3339
from shared.platform.deps import Deps
from shared.platform.ids import new_id
from shared.platform.outbox import publish_events, record_event

AUDITS = "ledger_audits"
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


def snapshot(db) -> dict[str, Any]:
    """Accounts, shard sums, transfers and entries read in one read-only transaction."""
    @firestore.transactional
    def read(txn):
        accounts = {s.id: s.to_dict() for s in db.collection(ACCOUNTS).stream(transaction=txn)}
        shards: dict[str, Balances] = collections.defaultdict(Balances)
        for s in db.collection_group(SHARDS).stream(transaction=txn):
            parent = s.reference.parent.parent
            if parent is not None and parent.parent.id == ACCOUNTS:
                shards[parent.id] = shards[parent.id] + Balances.of(s.to_dict())
        transfers = [s.to_dict() for s in db.collection(TRANSFERS).stream(transaction=txn)]
        entries = [s.to_dict() for s in db.collection(ENTRIES).stream(transaction=txn)]
        return {"accounts": accounts, "shards": dict(shards), "transfers": transfers,
                "entries": entries}
    return read(db.transaction(read_only=True))


def check(snap: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pure: the violations found in a snapshot, and summary counts."""
    accounts, shards = snap["accounts"], snap["shards"]
    violations: list[dict[str, Any]] = []
    expected: dict[str, Balances] = collections.defaultdict(Balances)
    from_entries: dict[str, Balances] = collections.defaultdict(Balances)
    entry_counts: dict[str, int] = collections.Counter()
    resolutions: dict[str, list[str]] = collections.defaultdict(list)
    reversals: dict[str, int] = collections.Counter()
    transfers_by_id = {t["id"]: t for t in snap["transfers"]}

    for t in snap["transfers"]:
        d, c = transfer_effects(t)
        expected[t["debit_account_id"]] = expected[t["debit_account_id"]] + d
        expected[t["credit_account_id"]] = expected[t["credit_account_id"]] + c
        if t["kind"] in (POST, VOID, EXPIRE):
            resolutions[t["pending_id"]].append(t["id"])
        if t.get("reverses"):
            reversals[t["reverses"]] += int(t["amount"])
    for e in snap["entries"]:
        from_entries[e["account_id"]] = from_entries[e["account_id"]] + Balances.of(e.get("effect"))
        entry_counts[e["account_id"]] += 1

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
        if actual != want:
            violations.append({"check": "balance_mismatch", "account_id": acc_id,
                               "asset": doc["asset"], "actual": actual.as_dict(),
                               "expected_from_transfers": want.as_dict()})
        if from_entries.get(acc_id, Balances()) != want:
            violations.append({"check": "entries_mismatch", "account_id": acc_id,
                               "from_entries": from_entries.get(acc_id, Balances()).as_dict(),
                               "expected_from_transfers": want.as_dict()})
        flags = doc.get("flags") or {}
        if not flags.get("hot") and int(doc.get("entry_count") or 0) != entry_counts.get(acc_id, 0):
            violations.append({"check": "entry_count_mismatch", "account_id": acc_id,
                               "recorded": doc.get("entry_count"),
                               "entries": entry_counts.get(acc_id, 0)})
        if flags.get("debits_must_not_exceed_credits") and \
                actual.debits_posted + actual.debits_pending > actual.credits_posted:
            violations.append({"check": "debits_exceed_credits", "account_id": acc_id,
                               "actual": actual.as_dict()})
        if actual.debits_pending < 0 or actual.credits_pending < 0:
            violations.append({"check": "negative_pending", "account_id": acc_id,
                               "actual": actual.as_dict()})
    for asset, b in sorted(totals.items()):
        if b.debits_posted != b.credits_posted or b.debits_pending != b.credits_pending:
            violations.append({"check": "debits_ne_credits", "asset": asset, **b.as_dict()})
    summary = {"accounts": len(accounts), "transfers": len(snap["transfers"]),
               "entries": len(snap["entries"]),
               "assets": {a: b.as_dict() for a, b in sorted(totals.items())}}
    return violations, summary


def run_audit(deps: Deps, *, expire_overdue: bool = True) -> dict[str, Any]:
    db, now = deps.db, deps.clock.now()
    expired = service.expire_overdue(deps) if expire_overdue else 0
    violations, summary = check(snapshot(db))
    audit_id = new_id("aud")
    report = {"id": audit_id, "object": "ledger_audit", "ok": not violations,
              "violation_count": len(violations), "violations": violations[:MAX_REPORTED],
              "expired_overdue_holds": expired, **summary, "created": rfc3339(now)}
    batch = db.batch()
    batch.set(db.collection(AUDITS).document(audit_id), {**report, "created_at": now})
    events = []
    if violations:
        logs.log(_log, logging.ERROR, "ledger audit failed", audit_id=audit_id,
                 violation_count=len(violations), first=violations[0])
        events.append(record_event(db, batch, type="ledger.audit_failed", tenant="platform",
                                   now=now, data={"object": {k: report[k] for k in (
                                       "id", "object", "ok", "violation_count", "violations",
                                       "created")}}))
    batch.commit()
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic, now=now)
    return report
