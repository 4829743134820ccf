"""Deposit addresses: which HD index an intent gets, and the watch document the chain watcher reads.

Allocation scheme (why no two intents ever share an address on a network):

- A *tree* is where addresses come from: the merchant's xpub (watch-only, ``m/44'/60'/0'`` →
  ``0/i``) or, without one, Payloom's custodial tree (``m/44'/60'/0'/0/i`` from the sealed seed).
- Indices come from a counter document ``deposit_counters/{tree}:{network}:{mode}`` read and
  written in the SAME unit of work as the intent and the watch document. The unit guards every
  write to a document it read (``update_time`` precondition), so two concurrent allocations from
  one counter cannot both commit: the loser re-runs with fresh reads and takes the next index
  (after ``uow.MAX_ATTEMPTS`` lost races the caller gets a retryable 503 ``contention``).
- The custodial tree is shared by every merchant, so its counter would be a hot document
  (Firestore sustains about 1 write/s per document). It is split into ``CUSTODIAL_SHARDS``
  counters that own disjoint residues: shard ``k`` hands out ``n * SHARDS + k``. An intent's
  shard is a hash of its id, so a re-run of the same unit picks the same shard.
  A merchant's xpub tree keeps one counter: its indices stay consecutive, which matters for
  the merchant's own wallet software (BIP-44 gap limit of 20: expired intents leave unused
  addresses, and a wallet that stops scanning after 20 of them would not show later payments;
  the watcher, not the merchant's wallet, is what attributes payments).
- The watch document ``deposit_addresses/{network}:{address lower-case}`` is created with a
  must-not-exist precondition (it is read first). If an index's address is already watched on
  this network (the same xpub used by two merchants or in both modes, a counter reset), the
  allocator skips to the next index: the watch document, not the counter, is the final
  guarantee of uniqueness per network. Watch documents are never deleted (no TTL): they are the
  address → intent map that late and unexpected payments are matched with.
- The same index on two networks gives the same EVM address: that is harmless, a transfer is
  matched on (network, address).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any, Callable

COUNTERS = "deposit_counters"
WATCH = "deposit_addresses"
CUSTODIAL_SHARDS = 16
MAX_INDEX = 2**31 - 1        # non-hardened BIP-32 child indices
MAX_SKIPS = 8                # taken addresses skipped in one unit (each costs a read)


class IndexSpaceExhausted(Exception):
    """No free index left in this tree (never expected: 2^31 indices)."""


@dataclasses.dataclass(frozen=True)
class Tree:
    """Where an intent's address is derived from."""
    kind: str                 # "xpub" | "custodial"
    owner: str                # merchant id for an xpub tree, "platform" for custodial
    shard: int = 0
    shards: int = 1

    @property
    def key(self) -> str:
        return f"{self.owner}" if self.kind == "xpub" else f"custodial-{self.shard}"


def choose_tree(merchant_id: str, *, has_xpub: bool, intent_id: str) -> Tree:
    """The merchant's xpub tree when it has one, else a custodial shard chosen from the intent id
    (deterministic, so a unit that runs again asks the same counter)."""
    if has_xpub:
        return Tree("xpub", merchant_id)
    shard = int.from_bytes(hashlib.sha256(intent_id.encode()).digest()[:4], "big") % CUSTODIAL_SHARDS
    return Tree("custodial", "platform", shard, CUSTODIAL_SHARDS)


def counter_id(tree: Tree, network: str, livemode: bool) -> str:
    return f"{tree.key}:{network}:{'live' if livemode else 'test'}"


def index_for(tree: Tree, n: int) -> int:
    """The ``n``-th index a counter hands out: shard residues never overlap."""
    if n < 0:
        raise ValueError("counter values are non-negative")
    index = n * tree.shards + tree.shard
    if index > MAX_INDEX:
        raise IndexSpaceExhausted(f"tree {tree.key} has no index left")
    return index


def watch_id(network: str, address: str) -> str:
    return f"{network}:{address.lower()}"


def watch_ref(db, network: str, address: str):
    return db.collection(WATCH).document(watch_id(network, address))


def counter_ref(db, tree: Tree, network: str, livemode: bool):
    return db.collection(COUNTERS).document(counter_id(tree, network, livemode))


@dataclasses.dataclass(frozen=True)
class Allocation:
    index: int
    address: str          # checksum address
    tree: Tree
    skipped: int          # indices skipped because their address was already watched


def allocate(uow, *, tree: Tree, network: str, livemode: bool,
             derive: Callable[[int], str], now: dt.datetime) -> Allocation:
    """Take the next free index of ``tree`` for (network, mode) in ``uow`` and buffer the counter
    advance. The caller must create the watch document (``watch_document``) in the same unit: the
    watch ref was read here, so its create is guarded as must-not-exist.

    Cost: one read for the counter (batched with the caller's first ``get_all`` if prefetched),
    one read per candidate address (one in the normal case)."""
    cref = counter_ref(uow.db, tree, network, livemode)
    snap = uow.get(cref)
    n = int((snap.to_dict() or {}).get("next", 0)) if snap.exists else 0
    for skipped in range(MAX_SKIPS + 1):
        index = index_for(tree, n)
        address = derive(index)
        if not uow.get(watch_ref(uow.db, network, address)).exists:
            uow.set(cref, {"tree": tree.key, "kind": tree.kind, "owner": tree.owner,
                           "network": network, "livemode": livemode, "next": n + 1,
                           "updated_at": now})
            return Allocation(index, address, tree, skipped)
        n += 1
    raise IndexSpaceExhausted(f"{MAX_SKIPS + 1} consecutive addresses of {tree.key} on "
                              f"{network} are already watched")


def watch_document(*, network: str, chain_id: int, address: str, asset: str, token: str | None,
                   tenant: str, livemode: bool, intent_id: str, required_confirmations: int,
                   watch_until: dt.datetime, now: dt.datetime, index: int,
                   tree: Tree) -> dict[str, Any]:
    """The watch-list entry (the contract with the chain watcher, shared/chain/watch_list.py):
    the watcher queries ``network == n and watch_until >= now``."""
    return {"network": network, "chain_id": int(chain_id), "address": address, "asset": asset,
            "token": token, "tenant": tenant, "livemode": bool(livemode), "intent_id": intent_id,
            "required_confirmations": int(required_confirmations), "watch_until": watch_until,
            "created_at": now, "derivation": {"tree": tree.kind, "index": index,
                                              "counter": tree.key}}


def watch_until(expires_at: dt.datetime, late_until: dt.datetime | None,
                late_window: dt.timedelta) -> dt.datetime:
    """Watch until the late-payment window closes: payments after expiry inside it are
    ``paid_late``; after it, they are still attributed if the watcher sees them (it stops
    looking then: a later payment is found by reconciliation of on-chain balances)."""
    return late_until or (expires_at + late_window)
