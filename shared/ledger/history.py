"""An account's history in ledger order, with the exact balance after each entry.

Credits are blind increments into balance shards, so no write knows the balance it produces.
The balance after an entry is therefore computed when history is read:
- ledger order is (``committed_at``, ``batch_id``, ``leg``): ``committed_at`` is the commit
  time Firestore stamps on the entry (``SERVER_TIMESTAMP``), so it is the order in which the
  balance really changed, whatever the request start times; ``batch_id`` and ``leg`` order the
  entries of one commit (and the rare commits stamped with the same time);
- Firestore reads are strongly consistent at a timestamp, so once an entry is visible every
  entry committed before it is too: a prefix of ledger order never changes;
- the balance before the first entry of a page is one aggregation query (Σ of the effects of
  the account's entries strictly before it), then the page's entries are added in order.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.ledger.model import BALANCE_FIELDS, ENTRIES, Balances

ORDER = ("committed_at", "batch_id", "leg")


def order_key(entry: dict[str, Any]) -> tuple:
    return (entry["committed_at"], entry.get("batch_id") or entry["transfer_id"], entry.get("leg", 0))


def running(opening: Balances, entries: Iterable[dict[str, Any]]) -> list[Balances]:
    """Pure: the balance after each entry (given in ledger order), starting from ``opening``."""
    out, bal = [], opening
    for e in entries:
        bal = bal + Balances.of(e.get("effect"))
        out.append(bal)
    return out


def ordered(query, *, descending: bool = False):
    direction = firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING
    for field in ORDER:
        query = query.order_by(field, direction=direction)
    return query


def balance_before(db, account_id: str, first: dict[str, Any]) -> Balances:
    """Σ effects of the account's entries before ``first`` in ledger order (one aggregation,
    plus a tiny query for entries committed at the very same instant)."""
    col = db.collection(ENTRIES)
    base = col.where(filter=FieldFilter("account_id", "==", account_id))
    agg = base.where(filter=FieldFilter("committed_at", "<", first["committed_at"]))
    aq = None
    for f in BALANCE_FIELDS:
        aq = (agg if aq is None else aq).sum(f"effect.{f}", alias=f)
    total = Balances()
    for result in aq.get():
        values = {r.alias: int(r.value or 0) for r in result}
        total = Balances(**{f: values.get(f, 0) for f in BALANCE_FIELDS})
    key = order_key(first)
    same = base.where(filter=FieldFilter("committed_at", "==", first["committed_at"]))
    for snap in same.stream():
        e = snap.to_dict()
        if order_key(e) < key:
            total = total + Balances.of(e.get("effect"))
    return total


def with_balances(db, page: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Balances]]:
    """Attach the balance after each entry to a page (any order, any mix of accounts)."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for e in page:
        by_account.setdefault(e["account_id"], []).append(e)
    after: dict[str, Balances] = {}
    for acc_id, entries in by_account.items():
        entries.sort(key=order_key)
        for e, bal in zip(entries, running(balance_before(db, acc_id, entries[0]), entries)):
            after[e["id"]] = bal
    return [(e, after[e["id"]]) for e in page]


def between(query, start: dt.datetime | None, end: dt.datetime | None):
    if start:
        query = query.where(filter=FieldFilter("committed_at", ">=", start))
    if end:
        query = query.where(filter=FieldFilter("committed_at", "<=", end))
    return query
