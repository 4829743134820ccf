"""The addresses a network's watcher follows: ``deposit_addresses`` still inside their window.

Cost: reading every open address each second would cost one document read per address per
second (86k reads/day/address). The list is instead read in full every ``full_refresh_s`` (which
also drops expired addresses) and, in between, only what was created since the last read (one
query that usually returns nothing). Correctness does not depend on the timing: the watcher
refreshes AFTER it has seen a new head and BEFORE it reads that block, and a payer can only pay
an address after its document committed, so an address created before its payment's block was
mined is in the list when that block is read. The incremental query overlaps the previous one by
``overlap_s`` to absorb clock skew between the writer and this process.

An address is kept while ``watch_until`` is later than the time of the oldest block not yet
processed (not "now"): a watcher that catches up after an outage still sees payments that were
made inside the window.

Queries (composite indexes): deposit_addresses (network ASC, watch_until ASC) and
(network ASC, created_at ASC).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from google.cloud import firestore

COLLECTION = "deposit_addresses"


@dataclasses.dataclass(frozen=True)
class Watched:
    address: str             # lower-case
    doc_id: str
    asset: str | None
    token: str | None        # lower-case or None (native)
    tenant: str
    livemode: bool
    intent_id: str | None
    required_confirmations: int
    watch_until: dt.datetime | None


def _watched(snap) -> Watched | None:
    d = snap.to_dict() or {}
    address = str(d.get("address") or "").lower()
    if not (address.startswith("0x") and len(address) == 42) or not d.get("tenant"):
        return None
    token = d.get("token")
    return Watched(address=address, doc_id=snap.id, asset=d.get("asset"),
                   token=token.lower() if isinstance(token, str) else None,
                   tenant=d["tenant"], livemode=bool(d.get("livemode", False)),
                   intent_id=d.get("intent_id"),
                   required_confirmations=max(0, int(d.get("required_confirmations") or 0)),
                   watch_until=d.get("watch_until"))


class WatchList:
    def __init__(self, network: str, *, full_refresh_s: float = 60.0, overlap_s: float = 30.0):
        self.network = network
        self.full_refresh_s = full_refresh_s
        self.overlap_s = overlap_s
        self.by_address: dict[str, Watched] = {}
        self._full_at: dt.datetime | None = None
        self._since: dt.datetime | None = None
        self.queries = 0

    def refresh(self, db, now: dt.datetime, keep_after: dt.datetime) -> None:
        """Bring the list up to date (see the module doc). ``keep_after``: the time of the
        oldest block still to process (bounded by ``now``)."""
        col = db.collection(COLLECTION)
        net = firestore.FieldFilter("network", "==", self.network)
        if self._full_at is None or (now - self._full_at).total_seconds() >= self.full_refresh_s:
            query = (col.where(filter=net)
                     .where(filter=firestore.FieldFilter("watch_until", ">=", keep_after)))
            fresh: dict[str, Watched] = {}
            for snap in query.stream():
                w = _watched(snap)
                if w is not None:
                    fresh[w.address] = w
            self.queries += 1
            self.by_address = fresh
            self._full_at = self._since = now
            return
        since = self._since - dt.timedelta(seconds=self.overlap_s)
        query = (col.where(filter=net)
                 .where(filter=firestore.FieldFilter("created_at", ">=", since)))
        for snap in query.stream():
            w = _watched(snap)
            if w is not None and (w.watch_until is None or w.watch_until >= keep_after):
                self.by_address[w.address] = w
        self.queries += 1
        self._since = now

    def addresses(self) -> list[str]:
        return sorted(self.by_address)

    def get(self, address: str) -> Watched | None:
        return self.by_address.get(address.lower())

    def __len__(self) -> int:
        return len(self.by_address)

    def as_set(self) -> set[str]:
        return set(self.by_address)


def doc_id(network: str, address: str) -> str:
    return f"{network}:{address.lower()}"


def describe(w: Watched) -> dict[str, Any]:
    return dataclasses.asdict(w)
