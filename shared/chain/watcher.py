"""The chain watcher: one lease-holding loop per network inside each scheduled invocation.

Why a loop in a scheduled function (ADR 0033): Cloud Scheduler fires at most once a minute, and
a payment must be seen within seconds of its block. Each invocation takes the network's lease in
``chain_cursors/{network}`` and polls the latest block header every ``poll_interval_s`` for
``run_seconds``, then releases it; the next invocation waits for the lease and carries on from
the same cursor. A crash leaves the lease to expire (``lease_seconds``) and nothing else.

A step (one poll that found new blocks):
1. read the new blocks (up to ``max_range`` past the cursor) and their ERC-20 ``Transfer`` logs to
   watched addresses in ONE batched HTTP request: ``eth_getBlockByNumber`` per block (with
   transaction bodies, for native ETH) and one ``eth_getLogs`` per ``address_batch`` addresses
   over the whole range and every token (topic2 = the padded addresses, an OR-list);
2. check the chain: the first block's parentHash must be the cursor's hash (else a reorg: walk
   back over the stored hashes to the common ancestor, mark transfers of dropped blocks
   ``reorged``, move the cursor back; the next step reads the new branch), each block must
   extend the previous, every log's blockHash must be the block read (else the chain moved
   during the read: try again next poll);
3. in ONE unit of work per group of blocks: record each transfer once (deterministic ids
   ``{network}:{tx}:{log_index}``), emit ``chain.transfer_seen`` / ``_confirmed``, move ``seen``
   transfers whose depth is reached to ``confirmed``, and advance the cursor (and renew the
   lease). A crash before the commit re-reads the same blocks; after it, the cursor says they are
   done. Transfer documents are read in the unit, so a replay finds them and emits nothing:
   never missed, never doubled. The unit fails when the cursor is not where this holder left it
   (fencing: a holder that lost its lease cannot write).

Payloom's own ether is not a payment: a native transfer whose sender is a hot wallet (a sweep's
gas top-up to a deposit address, ADR 0038) is not recorded. The unit reads the senders'
``chain_nonces`` documents with the transfers (no extra round trip); a hot wallet's says
``role: "hot_wallet"``, written by the very unit that signed the top-up, so it is there before
the top-up can be mined. Recording it would make it a wrong-asset payment on a token address,
announced to the merchant and kept "for a refund", and would keep token sweeps waiting for the
end of the watch window.

Cost per block when caught up, with N watched addresses: 1 latest-header poll + 1 HTTP request
carrying 1 + ceil(N / address_batch) JSON-RPC calls; Firestore: 1 query for seen transfers,
1 incremental watch-list query, 1 ``batch_get`` and 1 commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from google.cloud import firestore

from shared.chain import blocks as B
from shared.chain import events as ev
from shared.chain import outgoing
from shared.chain.rpc import RpcClient, RpcUnavailable
from shared.chain.watch_list import WatchList
from shared.platform import logs
from shared.platform.uow import run_unit

_log = logs.get_logger(__name__)
CURSORS = "chain_cursors"
TRANSFERS = "chain_transfers"
ACTIVE = ["seen", "confirmed"]


@dataclasses.dataclass
class WatcherSettings:
    run_seconds: float = 55.0        # one scheduled invocation (timeout must exceed it)
    poll_interval_s: float = 1.0
    lease_seconds: float = 30.0      # renewed by every step; what a crash costs at most
    lease_wait_s: float = 10.0       # how long a new invocation waits for the previous holder
    max_range: int = 20              # blocks per step while catching up
    address_batch: int = 500         # watched addresses per eth_getLogs
    keep_blocks: int = 64            # stored hashes for reorg detection (>= reorg depth)
    rpc_timeout_s: float = 5.0
    rpc_cooldown_s: float = 15.0
    health_flush_s: float = 15.0
    start_block: int | None = None   # first block of a network without a cursor (None: head)
    max_transfers_per_unit: int = 100  # each costs up to 4 writes; a commit takes 500
    confirm_batch: int = 100         # seen transfers re-checked per unit (oldest first)
    scan_native: bool = True         # read transaction bodies for native ETH transfers


def watcher_settings(deps) -> WatcherSettings:
    return deps.extras.get("chain.watcher_settings") or WatcherSettings()


class LeaseLost(Exception):
    """Another holder owns the network's cursor now: stop without writing."""


MIN_POLL_S = 0.25


@dataclasses.dataclass(frozen=True)
class NetworkView:
    """What the watcher needs of a network's configuration."""
    name: str
    chain_id: int
    rpc_urls: tuple[str, ...]
    tokens: dict[str, str]          # token address (lower-case) -> asset
    reorg_depth: int
    native_asset: str = "ETH"
    max_log_range: int = 1000       # blocks per eth_getLogs the provider accepts
    block_time_seconds: float | None = None

    def poll_interval(self, ceiling: float) -> float:
        """Poll the head every half block (a new block is seen within half a block time on
        average a quarter), never faster than ``MIN_POLL_S`` nor slower than ``ceiling``: 1 s
        blocks (anvil, Selendra) poll every 0.5 s, 2 s blocks (Base) every second. Each poll
        is one JSON-RPC call, so the cost is 2 calls per block time while idle."""
        if not self.block_time_seconds:
            return ceiling
        return max(MIN_POLL_S, min(ceiling, self.block_time_seconds / 2))


def view(network: Any) -> NetworkView:
    """Adapt a network configuration object (or dict) of ``shared.chain.networks``."""
    get = (network.get if isinstance(network, dict) else lambda k, d=None: getattr(network, k, d))
    tokens = get("tokens") or {}
    return NetworkView(name=get("name"), chain_id=int(get("chain_id")),
                       rpc_urls=tuple(get("rpc_urls") or ()),
                       tokens={str(addr).lower(): asset for asset, addr in tokens.items() if addr},
                       reorg_depth=int(get("reorg_depth") or 12),
                       native_asset=get("native_asset") or "ETH",
                       max_log_range=int(get("max_log_range") or 1000),
                       block_time_seconds=float(get("block_time_seconds") or 0) or None)


@dataclasses.dataclass
class Cursor:
    number: int | None
    hash: str | None
    time: dt.datetime | None
    recent: list[tuple[int, str]]

    @classmethod
    def from_doc(cls, d: dict) -> Cursor:
        return cls(d.get("block_number"), d.get("block_hash"), d.get("block_time"),
                   [(int(x["n"]), x["h"]) for x in d.get("recent") or []])


@dataclasses.dataclass
class RunStats:
    network: str
    acquired: bool = False
    steps: int = 0
    blocks: int = 0
    transfers: int = 0
    own: int = 0                     # native transfers from a hot wallet (top-ups): not payments
    confirmed: int = 0
    reorgs: int = 0
    reorged: int = 0
    rpc_errors: int = 0
    head: int | None = None
    cursor: int | None = None
    stopped: str = ""


class Watcher:
    def __init__(self, deps, network: Any, *, settings: WatcherSettings | None = None,
                 owner: str | None = None, rpc: RpcClient | None = None,
                 fault: Callable[[str], None] | None = None):
        self.deps = deps
        self.net = network if isinstance(network, NetworkView) else view(network)
        self.settings = settings or watcher_settings(deps)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rpc = rpc or RpcClient(self.net.name, self.net.rpc_urls,
                                    timeout=self.settings.rpc_timeout_s,
                                    cooldown_s=self.settings.rpc_cooldown_s)
        self.watch = WatchList(self.net.name)
        self.fault = fault            # tests: called with a point name, may raise
        self.cursor: Cursor | None = None
        self.lease_until: dt.datetime | None = None
        self.head: int | None = None
        self.stats = RunStats(self.net.name)
        self._health_at = 0.0

    # --- documents ------------------------------------------------------------------------
    @property
    def cursor_ref(self):
        return self.deps.db.collection(CURSORS).document(self.net.name)

    def transfer_ref(self, tx_hash: str, log_index: int):
        return self.deps.db.collection(TRANSFERS).document(
            transfer_id(self.net.name, tx_hash, log_index))

    def _fault(self, point: str) -> None:
        if self.fault is not None:
            self.fault(point)

    # --- lease ----------------------------------------------------------------------------
    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the network's lease (waiting up to ``wait_s`` for the holder to release it or
        for it to expire); load the cursor, creating it at the start block if there is none."""
        deadline = time.monotonic() + wait_s
        while True:
            doc = run_unit(self.deps, self._acquire_unit)
            if doc is not None:
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        self.stats.acquired = True
        self.cursor = Cursor.from_doc(doc)
        if self.cursor.number is None:
            self._initialise()
        return True

    def _acquire_unit(self, uow):
        snap = uow.get(self.cursor_ref)
        d = snap.to_dict() if snap.exists else None
        if d and d.get("lease_owner") not in (None, self.owner) and d.get("lease_until") \
                and d["lease_until"] > uow.now:
            return None
        until = uow.now + dt.timedelta(seconds=self.settings.lease_seconds)
        lease = {"lease_owner": self.owner, "lease_until": until, "lease_taken_at": uow.now}
        if d is None:
            d = {"network": self.net.name, "chain_id": self.net.chain_id, "block_number": None,
                 "block_hash": None, "block_time": None, "recent": [], "head": None,
                 "created_at": uow.now, **lease}
            uow.create(self.cursor_ref, d)
        else:
            uow.update(self.cursor_ref, lease)
            d = {**d, **lease}
        self.lease_until = until
        return d

    def _initialise(self) -> None:
        """A network seen for the first time starts at ``start_block`` (or the head)."""
        start = self.settings.start_block
        if start is None:
            start = B.quantity(self.rpc.call("eth_blockNumber"))
        block = self.rpc.call("eth_getBlockByNumber", [B.hex_quantity(start), False])
        if block is None:
            raise RpcUnavailable(f"{self.net.name}: start block {start} not found")
        number, bhash = B.quantity(block["number"]), str(block["hash"]).lower()
        when = dt.datetime.fromtimestamp(B.quantity(block["timestamp"]), dt.UTC)

        def unit(uow):
            self._check_owner(uow, expect_block=None)
            uow.update(self.cursor_ref, {"block_number": number, "block_hash": bhash,
                                         "block_time": when, "recent": [{"n": number, "h": bhash}],
                                         "head": number, "updated_at": uow.now})
        run_unit(self.deps, unit)
        self.cursor = Cursor(number, bhash, when, [(number, bhash)])

    def _check_owner(self, uow, *, expect_block: Any = ...) -> dict:
        snap = uow.get(self.cursor_ref)
        d = snap.to_dict() if snap.exists else {}
        if d.get("lease_owner") != self.owner:
            raise LeaseLost(f"{self.net.name}: lease now held by another watcher")
        if expect_block is not ... and d.get("block_number") != expect_block:
            raise LeaseLost(f"{self.net.name}: cursor moved by another watcher")
        return d

    def renew(self) -> None:
        def unit(uow):
            self._check_owner(uow)
            until = uow.now + dt.timedelta(seconds=self.settings.lease_seconds)
            uow.update(self.cursor_ref, {"lease_until": until, "head": self.head})
            return until
        self.lease_until = run_unit(self.deps, unit)

    def release(self) -> None:
        """Let the next invocation take over at once (a crash skips this: the lease expires)."""
        def unit(uow):
            snap = uow.get(self.cursor_ref)
            if snap.exists and (snap.to_dict() or {}).get("lease_owner") == self.owner:
                uow.update(self.cursor_ref, {"lease_owner": None, "lease_until": uow.now,
                                             "head": self.head})
        run_unit(self.deps, unit)

    # --- the loop -----------------------------------------------------------------------------
    def run(self, *, seconds: float | None = None) -> RunStats:
        """One invocation: hold the lease and follow the chain for ``seconds``."""
        s = self.settings
        seconds = s.run_seconds if seconds is None else seconds
        deadline = time.monotonic() + seconds
        if not self.acquire(wait_s=min(s.lease_wait_s, seconds)):
            self.stats.stopped = "lease held elsewhere"
            return self.stats
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    progressed = self.step()
                except RpcUnavailable as exc:
                    self.stats.rpc_errors += 1
                    logs.log(_log, logging.WARNING, "chain rpc unavailable; retrying",
                             network=self.net.name, error=str(exc)[:300])
                    progressed = False
                self._maybe_flush_health()
                if not progressed:
                    time.sleep(max(0.0, min(self.net.poll_interval(s.poll_interval_s)
                                            - (time.monotonic() - started),
                                            deadline - time.monotonic())))
            self.stats.stopped = "deadline"
        except LeaseLost as exc:
            self.stats.stopped = "lease lost"
            logs.log(_log, logging.WARNING, str(exc), network=self.net.name)
            return self.stats
        finally:
            self._maybe_flush_health(force=True)
        self.release()
        return self.stats

    def _maybe_flush_health(self, force: bool = False) -> None:
        if force or time.monotonic() - self._health_at >= self.settings.health_flush_s:
            self._health_at = time.monotonic()
            try:
                self.rpc.flush_health(self.deps.db)
            except Exception:  # noqa: BLE001 — health is best effort, never stops the watcher
                _log.warning("could not store rpc health for %s", self.net.name)

    def step(self) -> bool:
        """One poll. True when blocks were processed and more may be waiting (poll again now)."""
        if self.cursor is None:
            raise LeaseLost("acquire() first")
        self.stats.steps += 1
        # The latest header rather than eth_blockNumber: same one call, and its hash shows a
        # reorg that replaced our tip with a branch of the same height (or a shorter one).
        latest = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if latest is None:
            raise RpcUnavailable(f"{self.net.name}: no latest block")
        self.head = B.quantity(latest["number"])
        self.stats.head = self.head
        cur = self.cursor
        if self.head <= cur.number:
            ours = dict(cur.recent).get(self.head)
            if ours is not None and ours != str(latest["hash"]).lower():
                self._reorg()
                return True
            self._renew_if_due()  # caught up (or a node behind us: nothing to read yet)
            return False
        last = min(self.head, cur.number + min(self.settings.max_range, self.net.max_log_range))
        now = self.deps.clock.now()
        self.watch.refresh(self.deps.db, now, min(now, cur.time or now))
        fetched = self._fetch(cur.number + 1, last)
        if fetched is None:
            return False  # a node that does not have the blocks yet, or the chain moved meanwhile
        chain, observed = fetched
        if not B.check_chain(cur.hash, chain[:1]):
            self._reorg()
            return True
        if not B.check_chain(cur.hash, chain):
            return False   # reorg during the read: read again
        self._record(chain, observed)
        return self.cursor.number < self.head

    def _renew_if_due(self) -> None:
        now = self.deps.clock.now()
        if self.lease_until is None or (self.lease_until - now).total_seconds() \
                < self.settings.lease_seconds / 2:
            self.renew()

    # --- reading ---------------------------------------------------------------------------------
    def _fetch(self, first: int, last: int):
        """Blocks ``first..last`` and the transfers in them to watched addresses."""
        addresses = self.watch.addresses()
        calls: list[tuple[str, list]] = [
            ("eth_getBlockByNumber", [B.hex_quantity(n), self.settings.scan_native])
            for n in range(first, last + 1)]
        n_blocks = len(calls)
        if self.net.tokens and addresses:
            for group in B.batches(addresses, self.settings.address_batch):
                calls.append(("eth_getLogs", [B.logs_filter(first, last, self.net.tokens, group)]))
        results = self.rpc.batch(calls)
        chain = results[:n_blocks]
        if any(b is None for b in chain):
            return None
        hashes = {B.quantity(b["number"]): str(b["hash"]).lower() for b in chain}
        observed: list[B.Observed] = []
        watched = self.watch.as_set()
        for logs_ in results[n_blocks:]:
            for raw in logs_ or []:
                t = B.decode_transfer_log(raw)
                if t is None or t.to not in watched:
                    continue
                if hashes.get(t.block_number) != t.block_hash:
                    return None  # logs from another branch than the blocks read
                observed.append(t)
        if self.settings.scan_native and watched:
            native = [t for b in chain for t in B.native_transfers(b, watched)]
            observed.extend(self._succeeded(native))
        observed.sort(key=lambda t: (t.block_number, t.log_index, t.tx_hash))
        return chain, observed

    def _succeeded(self, native: list[B.Observed]) -> list[B.Observed]:
        """Drop native transfers whose transaction reverted (one batched call, only for the
        rare transactions that paid a watched address)."""
        if not native:
            return []
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [t.tx_hash]) for t in native])
        kept = []
        for t, r in zip(native, receipts):
            if r is None:
                raise RpcUnavailable(f"{self.net.name}: no receipt for {t.tx_hash} yet")
            if B.quantity(r.get("status", "0x1")) == 1:
                kept.append(t)
        return kept

    # --- recording ---------------------------------------------------------------------------
    def _record(self, chain: list[dict], observed: list[B.Observed]) -> None:
        """Commit the blocks in groups that fit a commit, each with its cursor advance."""
        by_block: dict[int, list[B.Observed]] = {}
        for t in observed:
            by_block.setdefault(t.block_number, []).append(t)
        group: list[dict] = []
        size = 0
        for block in chain:
            n = B.quantity(block["number"])
            k = len(by_block.get(n, ()))
            if group and size + k > self.settings.max_transfers_per_unit:
                self._commit_blocks(group, by_block)
                group, size = [], 0
            group.append(block)
            size += k
        if group:
            self._commit_blocks(group, by_block)

    def _commit_blocks(self, group: list[dict], by_block: dict[int, list[B.Observed]]) -> None:
        prev = self.cursor
        tip = group[-1]
        tip_n, tip_h = B.quantity(tip["number"]), str(tip["hash"]).lower()
        tip_time = dt.datetime.fromtimestamp(B.quantity(tip["timestamp"]), dt.UTC)
        found = [t for b in group for t in by_block.get(B.quantity(b["number"]), ())]
        recent = B.trim_recent(prev.recent + [(B.quantity(b["number"]), str(b["hash"]).lower())
                                              for b in group], self._keep())
        counts = {"transfers": 0, "own": 0, "confirmed": 0, "more": False}
        senders = sorted({t.sender for t in found if t.token is None})
        nonce_refs = [outgoing.nonce_ref(self.deps.db, self.net.name, a) for a in senders]

        def unit(uow):
            counts.update(transfers=0, own=0, confirmed=0)
            self._check_owner(uow, expect_block=prev.number)
            snaps = uow.get_all([*(self.transfer_ref(t.tx_hash, t.log_index) for t in found),
                                 *nonce_refs])
            ours = {a for a, r in zip(senders, nonce_refs)
                    if outgoing.is_hot_wallet(snaps[r.path].to_dict())}
            written: set[str] = set()
            for t in found:
                if t.token is None and t.sender in ours:
                    counts["own"] += 1       # a gas top-up: Payloom's own ether, not a payment
                    continue
                ref = self.transfer_ref(t.tx_hash, t.log_index)
                if self._observe(uow, ref, snaps[ref.path], t, tip_n):
                    written.add(ref.path)
            counts["transfers"] = len(written)
            counts["confirmed"], counts["more"] = self._confirm(uow, tip_n, skip=written)
            self._fault("before_commit")
            uow.update(self.cursor_ref, {
                "block_number": tip_n, "block_hash": tip_h, "block_time": tip_time,
                "recent": [{"n": n, "h": h} for n, h in recent], "head": self.head,
                "lease_until": uow.now + dt.timedelta(seconds=self.settings.lease_seconds),
                "updated_at": uow.now})
            return uow.now + dt.timedelta(seconds=self.settings.lease_seconds)

        self.lease_until = run_unit(self.deps, unit)
        self.cursor = Cursor(tip_n, tip_h, tip_time, recent)
        self.stats.blocks += len(group)
        self.stats.transfers += counts["transfers"]
        self.stats.own += counts["own"]
        self.stats.confirmed += counts["confirmed"]
        self.stats.cursor = tip_n
        self._fault("after_commit")
        while counts["more"]:  # more seen transfers reached their depth than one unit takes
            counts["confirmed"], counts["more"] = run_unit(self.deps, self._confirm_more(tip_n))
            self.stats.confirmed += counts["confirmed"]

    def _confirm(self, uow, tip: int, skip: set[str] = frozenset()) -> tuple[int, bool]:
        """Move ``seen`` transfers whose depth is reached at block ``tip`` to ``confirmed``
        (oldest first, at most ``confirm_batch``); returns (confirmed, more may remain)."""
        limit = self.settings.confirm_batch
        col = self.deps.db.collection(TRANSFERS)
        pending = uow.query(col.where(filter=firestore.FieldFilter("network", "==", self.net.name))
                            .where(filter=firestore.FieldFilter("status", "==", "seen"))
                            .where(filter=firestore.FieldFilter("block_number", "<=", tip))
                            .order_by("block_number").limit(limit))
        confirmed = 0
        for snap in pending:
            if snap.reference.path in skip:
                continue
            d = snap.to_dict()
            depth = B.confirmations(tip, d["block_number"])
            if B.is_confirmed(depth, d.get("required_confirmations", 0)):
                d.update(status="confirmed", confirmations=depth, confirmed_at=uow.now)
                uow.update(snap.reference, {"status": "confirmed", "confirmations": depth,
                                            "confirmed_at": uow.now, "updated_at": uow.now})
                uow.emit(ev.TRANSFER_CONFIRMED, tenant=d["tenant"], livemode=d["livemode"],
                         data=ev.payload(d))
                confirmed += 1
            elif depth != d.get("confirmations"):
                uow.update(snap.reference, {"confirmations": depth})
        return confirmed, len(pending) >= limit and confirmed > 0

    def _confirm_more(self, tip: int):
        def unit(uow):
            self._check_owner(uow, expect_block=tip)
            return self._confirm(uow, tip)
        return unit

    def _observe(self, uow, ref, snap, t: B.Observed, tip: int) -> bool:
        """Record one observed transfer; True when it is new (or back after a reorg)."""
        w = self.watch.get(t.to)
        depth = B.confirmations(tip, t.block_number)
        old = snap.to_dict() if snap.exists else None
        if old and old.get("status") in ACTIVE and old.get("block_hash") == t.block_hash:
            return False  # recorded already (a step replayed after a crash)
        if old and old.get("status") in ACTIVE:
            # Moved to another block without us seeing the reorg (deeper than the window).
            old.update(status="reorged", confirmations=0, reorged_at=uow.now)
            uow.emit(ev.TRANSFER_REORGED, tenant=old["tenant"], livemode=old["livemode"],
                     data=ev.payload(old))
        required = old["required_confirmations"] if old else w.required_confirmations
        confirmed = B.is_confirmed(depth, required)
        doc = {
            "id": ref.id, "object": "chain_transfer", "network": self.net.name,
            "chain_id": self.net.chain_id, "tx_hash": t.tx_hash, "log_index": t.log_index,
            "block_number": t.block_number, "block_hash": t.block_hash, "from": t.sender,
            "to": t.to, "asset": self.net.tokens.get(t.token) if t.token else self.net.native_asset,
            "token": t.token, "amount": str(t.amount), "status": "confirmed" if confirmed else "seen",
            "confirmations": depth, "required_confirmations": required,
            "first_seen_at": old["first_seen_at"] if old else uow.now,
            "confirmed_at": uow.now if confirmed else None, "reorged_at": None,
            "intent_id": old.get("intent_id") if old else w.intent_id,
            "deposit_asset": old.get("deposit_asset") if old else w.asset,
            "tenant": old["tenant"] if old else w.tenant,
            "livemode": old["livemode"] if old else w.livemode,
            "updated_at": uow.now,
        }
        uow.set(ref, doc)
        data = ev.payload(doc)
        uow.emit(ev.TRANSFER_SEEN, tenant=doc["tenant"], livemode=doc["livemode"], data=data)
        if confirmed:
            uow.emit(ev.TRANSFER_CONFIRMED, tenant=doc["tenant"], livemode=doc["livemode"],
                     data=data)
        return True

    def _keep(self) -> int:
        return max(self.settings.keep_blocks, self.net.reorg_depth + 1)

    # --- reorgs ---------------------------------------------------------------------------------
    def _reorg(self) -> None:
        """The cursor's block is no longer canonical: find the common ancestor in the stored
        hashes, mark every transfer above it ``reorged`` and move the cursor back to it."""
        cur = self.cursor
        numbers = [n for n, _ in cur.recent]
        blocks_ = self.rpc.batch([("eth_getBlockByNumber", [B.hex_quantity(n), False])
                                  for n in numbers])
        canonical = {n: str(b["hash"]).lower() for n, b in zip(numbers, blocks_) if b}
        ancestor = B.common_ancestor(cur.recent, canonical)
        if ancestor is None:
            # Deeper than the stored window: trust the chain below it (logged loudly).
            base = max(0, min(numbers) - 1)
            b = self.rpc.call("eth_getBlockByNumber", [B.hex_quantity(base), False])
            if b is None:
                raise RpcUnavailable(f"{self.net.name}: block {base} not found")
            ancestor = (base, str(b["hash"]).lower())
            logs.log(_log, logging.ERROR, "reorg deeper than the stored window",
                     network=self.net.name, window=len(numbers), rewind_to=base)
        anc_n, anc_h = ancestor
        anc_block = self.rpc.call("eth_getBlockByNumber", [B.hex_quantity(anc_n), False])
        if anc_block is None or str(anc_block["hash"]).lower() != anc_h:
            return  # the chain moved again meanwhile: the next poll starts over
        anc_time = dt.datetime.fromtimestamp(B.quantity(anc_block["timestamp"]), dt.UTC)
        recent = [(n, h) for n, h in cur.recent if n <= anc_n]
        col = self.deps.db.collection(TRANSFERS)
        limit = self.settings.max_transfers_per_unit
        logs.log(_log, logging.WARNING, "chain reorg", network=self.net.name,
                 from_block=cur.number, ancestor=anc_n, depth=cur.number - anc_n)

        def unit(uow):
            self._check_owner(uow, expect_block=cur.number)
            hits = uow.query(col.where(filter=firestore.FieldFilter("network", "==", self.net.name))
                             .where(filter=firestore.FieldFilter("status", "in", ACTIVE))
                             .where(filter=firestore.FieldFilter("block_number", ">", anc_n))
                             .order_by("block_number").limit(limit))
            for snap in hits:
                d = snap.to_dict()
                d.update(status="reorged", confirmations=0, reorged_at=uow.now, confirmed_at=None)
                uow.update(snap.reference, {"status": "reorged", "confirmations": 0,
                                            "reorged_at": uow.now, "confirmed_at": None,
                                            "updated_at": uow.now})
                uow.emit(ev.TRANSFER_REORGED, tenant=d["tenant"], livemode=d["livemode"],
                         data=ev.payload(d))
            if len(hits) < limit:  # the last group moves the cursor back
                uow.update(self.cursor_ref, {
                    "block_number": anc_n, "block_hash": anc_h, "block_time": anc_time,
                    "recent": [{"n": n, "h": h} for n, h in recent], "head": self.head,
                    "last_reorg": {"at": uow.now, "from_block": cur.number, "ancestor": anc_n},
                    "lease_until": uow.now + dt.timedelta(seconds=self.settings.lease_seconds),
                    "updated_at": uow.now})
            return len(hits), len(hits) < limit

        done = False
        while not done:
            marked, done = run_unit(self.deps, unit)
            self.stats.reorged += marked
        self.cursor = Cursor(anc_n, anc_h, anc_time, recent)
        self.stats.reorgs += 1


def transfer_id(network: str, tx_hash: str, log_index: int) -> str:
    return f"{network}:{tx_hash.lower()}:{log_index}"


def run_networks(deps, networks: Iterable[Any], *, settings: WatcherSettings | None = None,
                 seconds: float | None = None) -> list[RunStats]:
    """One scheduled invocation: a watcher per network, side by side in threads."""
    from concurrent.futures import ThreadPoolExecutor

    nets = list(networks)
    if not nets:
        return []

    def one(net):
        w = Watcher(deps, net, settings=settings)
        try:
            return w.run(seconds=seconds)
        except Exception:  # noqa: BLE001 — one network's failure must not stop the others
            _log.exception("chain watcher failed for %s", w.net.name)
            w.stats.stopped = "error"
            return w.stats

    with ThreadPoolExecutor(max_workers=len(nets)) as pool:
        return list(pool.map(one, nets))
