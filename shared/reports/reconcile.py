"""Reconciliation of deposit addresses: what the chain holds versus what Payloom's books say.

WHAT is compared, per network, deposit address (``deposit_addresses``, every one ever handed
out: a payment after the watch window is found only here) and asset of the network (native +
each configured token, so money sent in the wrong token is checked too):

    onchain    balance at block B (``eth_getBalance`` / ERC-20 ``balanceOf`` through
               ``eth_call``), B = the watcher's cursor (``chain_cursors/{network}``);
    watcher    Σ amounts of the watcher's ``chain_transfers`` to the address in the asset that
               are ``seen``/``confirmed`` in blocks ≤ B;
    ledger     what the ledger booked from the mode's ``external`` account for the address's
               intent in the asset (debits of ``external`` − credits to it: settlement legs,
               net AND fee, minus reorg reversals and, later, on-chain refunds), in base units;
    explained  the parts of ``watcher`` the ledger is not meant to hold, each from the payments
               consumer's record of the transfer (``crypto_receipts``) and the intent's receipts:
               pending (seen, not yet confirmed: never booked before it is final), unmatched
               (after the late window, wrong token, canceled/other-method intent: kept for a
               refund, never booked), unsettled (confirmed on an intent not paid yet, e.g.
               underpaid), dust (the part of a transfer below the ledger scale, recorded exactly
               and never booked: ADR 0031), in_flight (recorded by the watcher, not yet applied
               by the consumer: Pub/Sub lag), reorg_booked (still booked for a transfer the
               watcher already marked reorged: the reversal is in flight).

    expected = ledger − reorg_booked + pending + unmatched + unsettled + dust + in_flight
               − swept

and ``onchain − expected`` must be exactly 0: nothing is tolerated, because every unit is
accounted for (dust included). The difference splits into two checks that say WHERE it is:
``unobserved = onchain + swept − watcher`` (money moved without the watcher seeing it: a payment
to an address no longer watched, ETH sent by a contract's internal call, a watcher gap, or
custody keys used outside Payloom) and ``ledger_gap = ledger − booked`` (the ledger differs from the
receipts the consumer settled: a bug or a manual posting).

WHY at block B and not at the head: the watcher has recorded every transfer up to B in the same
commit that moved its cursor, so a payment in a newer block is not a false alarm; the block's
hash is read in the same batch and compared with the cursor's, so a reorg under B skips the
network for this run (the next run compares again). ``in_flight`` and ``reorg_booked`` are
normal for seconds; older than ``STUCK_AFTER`` they are a ``stuck`` discrepancy.

SWEEPS (ADR 0038): ``swept`` is what Payloom's own sweeps moved out of the address in the
asset, from the ``chain_sweeps`` records whose transaction was mined in a block ≤ B: the value or
token amount of a successful transfer, plus (native asset) the fee of every mined transaction
the address sent, minus the gas top-ups the hot wallet sent it (ether IN, outside the watcher's
sight by design: the watcher ignores native transfers from the hot wallet, ADR 0038). Exact, from
the receipts: the unspent part of a gas reservation stays on the address and is explained.

WHO may spend: only Payloom's sweeps may send from a custodial address (Payloom's tree). Its
nonce at B must equal the number of sweep transactions mined from it at ≤ B; a nonce beyond
that is a transaction no sweep record explains (``custody_spent``: keys used outside Payloom).
A merchant's xpub address is the merchant's wallet: once its nonce is not 0 the merchant moved
money, the balance check is skipped for it (``owner_spent`` counted in the run) and only the
ledger check applies.

Cost per run and network, N addresses, T tokens: ceil(N / PAGE) pages, each ONE batched
JSON-RPC HTTP request of PAGE × (2 + T) + 1 calls, and five Firestore reads (a query of the
watch list page, a query of the pages' chain transfers, a ``get_all`` of receipts + intents,
a query of the intents' ledger transfers, a query of the page's sweep records); one commit for
the run document and its events.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.ledger import assets as assets_mod
from shared.ledger.accounts import system_account_id
from shared.ledger.model import TRANSFERS as LEDGER_TRANSFERS
from shared.platform import logs
from shared.platform.ids import derived_id

_log = logs.get_logger(__name__)
RUNS = "reconciliation_runs"
RUN_RETENTION = dt.timedelta(days=400)     # ``purge_at`` (TTL policy): a year of hourly runs
WATCH = "deposit_addresses"
CURSORS = "chain_cursors"
CHAIN_TRANSFERS = "chain_transfers"
RECEIPTS = "crypto_receipts"
INTENTS = "payment_intents"
SWEEPS = "chain_sweeps"            # shared.custody.sweep_records.SWEEPS
PAGE = 30                          # Firestore ``in`` takes at most 30 values
STUCK_AFTER = dt.timedelta(hours=1)
MAX_EVENTS = 100                   # discrepancy events per run; the run counts every one
MAX_ITEMS = 200                    # discrepancies stored on the run document
ACTIVE = ("seen", "confirmed")
BALANCE_OF = "0x70a08231"          # balanceOf(address)


# --- pure rules --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Explanation:
    onchain: int
    watcher: int = 0
    ledger: int = 0
    booked: int = 0
    pending: int = 0
    unmatched: int = 0
    unsettled: int = 0
    dust: int = 0
    in_flight: int = 0
    reorg_booked: int = 0
    stuck: int = 0
    swept: int = 0                  # net outflow by Payloom's sweeps (signed)
    owner_spent: bool = False
    custody_spent: bool = False

    @property
    def expected(self) -> int:
        return (self.ledger - self.reorg_booked + self.pending + self.unmatched + self.unsettled
                + self.dust + self.in_flight - self.swept)

    @property
    def difference(self) -> int:
        return self.onchain - self.expected

    @property
    def unobserved(self) -> int:
        return self.onchain + self.swept - self.watcher

    @property
    def ledger_gap(self) -> int:
        return self.ledger - self.booked

    @property
    def kinds(self) -> list[str]:
        out = []
        if self.custody_spent:
            out.append("custody_spent")
        if not self.owner_spent and self.unobserved:
            out.append("unobserved")
        if self.ledger_gap:
            out.append("ledger_mismatch")
        if self.stuck:
            out.append("stuck")
        return out

    def breakdown(self) -> dict[str, str]:
        keys = ("watcher", "ledger", "booked", "pending", "unmatched", "unsettled", "dust",
                "in_flight", "reorg_booked", "stuck", "swept", "unobserved", "ledger_gap")
        out = {k: str(getattr(self, k)) for k in keys}
        if self.owner_spent:
            out["owner_spent"] = "true"
        return out


def _when(t: dict[str, Any]) -> dt.datetime | None:
    for k in ("reorged_at", "confirmed_at", "first_seen_at"):
        v = t.get(k)
        if isinstance(v, dt.datetime):
            return v
    return None


def covered(receipt: dict[str, Any] | None, dust_factor: int) -> int:
    """Base units the ledger booked for a settled intent receipt (0 when not settled)."""
    if not receipt or not receipt.get("settled") or receipt.get("reorged"):
        return 0
    return int(receipt.get("ledger_amount") or receipt.get("amount") or 0) * dust_factor


def explain(onchain: int, transfers: Iterable[dict[str, Any]], records: dict[str, dict[str, Any]],
            intent_receipts: dict[str, dict[str, Any]], ledger: int, *, dust_factor: int,
            block: int, now: dt.datetime, nonce: int = 0, tree: str | None = None,
            swept: int = 0, sweep_nonces: int = 0) -> Explanation:
    """Account for an address's balance in one asset (pure; see the module doc).

    ``transfers``: the watcher's documents for the address and asset (any status);
    ``records``: the payments consumer's ``crypto_receipts`` by transfer id; ``intent_receipts``:
    the intent's receipts by reference; ``ledger``: booked base units (signed); ``swept``: the
    net outflow of Payloom's sweeps at ≤ block, ``sweep_nonces``: their mined transactions."""
    x = Explanation(onchain=onchain, ledger=ledger, swept=swept)
    if nonce:
        if tree == "xpub":
            x.owner_spent = True
        elif nonce > sweep_nonces:
            x.custody_spent = True
    for t in transfers:
        tid, amount = t["id"], int(t.get("amount") or 0)
        rec = records.get(tid)
        applied = (rec or {}).get("applied")
        booked = covered(intent_receipts.get(tid), dust_factor) \
            if applied == "confirmed" and not (rec or {}).get("unmatched") else 0
        x.booked += booked
        old = (_when(t) or now) <= now - STUCK_AFTER
        active = t.get("status") in ACTIVE and int(t.get("block_number") or 0) <= block
        if not active:
            if t.get("status") == "reorged" and booked:
                x.reorg_booked += booked
                x.stuck += booked if old else 0
            continue
        x.watcher += amount
        if rec is None or applied != t.get("status"):
            x.in_flight += amount - booked
            x.stuck += (amount - booked) if old else 0
        elif applied == "seen":
            x.pending += amount
        elif rec.get("unmatched"):
            x.unmatched += amount
        elif booked:
            x.dust += amount - booked
        elif int(rec.get("units") or 0) <= 0:
            x.dust += amount
        else:
            x.unsettled += amount
    return x


def ledger_booked(transfers: Iterable[dict[str, Any]], external_id: str) -> int:
    """Signed ledger units moved out of ``external`` by these transfers (holds excluded)."""
    total = 0
    for t in transfers:
        if t.get("kind") == "pending":
            continue
        amount = int(t.get("amount") or 0)
        if t.get("debit_account_id") == external_id:
            total += amount
        elif t.get("credit_account_id") == external_id:
            total -= amount
    return total


def sweep_flows(records: Iterable[dict[str, Any]], network: str, native: str,
                block: int) -> dict[str, dict[str, int]]:
    """{address lower: {"nonces": mined sweep transactions, asset: net outflow}} at ≤ ``block``
    from ``chain_sweeps`` records (pure; see the module doc)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        if r.get("network") != network or r.get("kind") != "sweep":
            continue
        flows = out.setdefault(str(r["from"]).lower(), {"nonces": 0})
        mined = (r.get("tx") or {}).get("mined")
        if mined and int(mined["block_number"]) <= block:
            flows["nonces"] += 1
            flows[native] = flows.get(native, 0) + int(mined["fee"])
            if int(mined["status"]) == 1:
                moved = int(mined["value"]) if r["asset"] == native else int(r["amount"])
                flows[r["asset"]] = flows.get(r["asset"], 0) + moved
        for up in r.get("top_ups") or []:
            got = up.get("mined")
            if got and int(got["block_number"]) <= block and int(got["status"]) == 1:
                flows[native] = flows.get(native, 0) - int(got["value"])
    return out


def balance_calls(address: str, tokens: dict[str, str], tag: str) -> list[tuple[str, list[Any]]]:
    """JSON-RPC calls for one address at block ``tag``: nonce, native balance, each token."""
    calls: list[tuple[str, list[Any]]] = [("eth_getTransactionCount", [address, tag]),
                                          ("eth_getBalance", [address, tag])]
    data = BALANCE_OF + "00" * 12 + address.lower().removeprefix("0x")
    for token in tokens.values():
        calls.append(("eth_call", [{"to": token, "data": data}, tag]))
    return calls


def quantity(value: Any) -> int:
    """A JSON-RPC quantity or an ABI uint256 word ("0x" alone: no code there → 0)."""
    if isinstance(value, int):
        return value
    text = str(value or "0x")
    return int(text, 16) if text not in ("0x", "0x0") else 0


def run_id(network: str, run_key: str) -> str:
    return derived_id("rcn", network, run_key)


def discrepancy_id(rid: str, address: str, asset: str) -> str:
    return derived_id("rcd", rid, address.lower(), asset)


# --- I/O ---------------------------------------------------------------------------------------------
def _chunks(seq: list, n: int):
    for k in range(0, len(seq), n):
        yield seq[k:k + n]


def watch_pages(db, network: str, page: int = PAGE):
    """Every deposit address of the network, oldest first, ``page`` at a time (index
    (network, created_at))."""
    col = db.collection(WATCH)
    last = None
    while True:
        q = col.where(filter=FieldFilter("network", "==", network)).order_by("created_at")
        if last is not None:
            q = q.start_after(last)
        snaps = list(q.limit(page).stream())
        if not snaps:
            return
        yield [s.to_dict() for s in snaps]
        if len(snaps) < page:
            return
        last = snaps[-1]


def page_records(db, docs: list[dict[str, Any]]) -> tuple[dict, dict, dict, dict]:
    """For a page of watch documents: chain transfers by intent, consumer records by transfer
    id, intents by id, ledger transfers by intent."""
    ids = sorted({d["intent_id"] for d in docs if d.get("intent_id")})
    by_intent: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    ledger: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return by_intent, {}, {}, ledger
    for s in db.collection(CHAIN_TRANSFERS).where(
            filter=FieldFilter("intent_id", "in", ids)).stream():
        t = s.to_dict()
        by_intent.setdefault(t["intent_id"], []).append({**t, "id": t.get("id") or s.id})
    for s in db.collection(LEDGER_TRANSFERS).where(
            filter=FieldFilter("metadata.payment_intent", "in", ids)).stream():
        t = s.to_dict()
        ledger.setdefault(t["metadata"]["payment_intent"], []).append(t)
    tids = [t["id"] for ts in by_intent.values() for t in ts]
    refs = [db.collection(RECEIPTS).document(t) for t in tids] + \
        [db.collection(INTENTS).document(i) for i in ids]
    records, intents = {}, {}
    for chunk in _chunks(refs, 300):
        for s in db.get_all(chunk):
            if not s.exists:
                continue
            if s.reference.parent.id == RECEIPTS:
                records[s.id] = s.to_dict()
            else:
                intents[s.id] = s.to_dict()
    return by_intent, records, intents, ledger


class ReorgUnderCursor(Exception):
    """The cursor's block is no longer canonical: compare again next run."""


def read_balances(rpc, network, docs: list[dict[str, Any]], block: int, block_hash: str | None):
    """{address lower: {"nonce": n, asset: balance}} at ``block`` in ONE batched request, and
    the canonical hash of ``block`` checked against the cursor's."""
    tag = hex(block)
    calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [tag, False])]
    for d in docs:
        calls += balance_calls(d["address"], dict(network.tokens), tag)
    results = rpc.batch(calls)
    head = results[0] or {}
    if block_hash and str(head.get("hash", "")).lower() != block_hash.lower():
        raise ReorgUnderCursor(f"{network.name}: block {block} changed")
    out, k = {}, 1
    for d in docs:
        values = {"nonce": quantity(results[k]), network.native_asset: quantity(results[k + 1])}
        k += 2
        for asset in network.tokens:
            values[asset] = quantity(results[k])
            k += 1
        out[d["address"].lower()] = values
    return out


def page_sweeps(db, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep records sent from the page's addresses (one ``in`` query: ≤ 30 values)."""
    addresses = sorted({d["address"] for d in docs})
    if not addresses:
        return []
    return [s.to_dict() for s in db.collection(SWEEPS).where(
        filter=FieldFilter("from", "in", addresses)).stream()]


def compare_page(network, docs: list[dict[str, Any]], balances: dict, records_bundle,
                 block: int, now: dt.datetime, sweeps: list[dict[str, Any]] = ()
                 ) -> list[tuple[dict[str, Any], str, Explanation]]:
    """(watch doc, asset, explanation) for every address × asset of the page (pure)."""
    by_intent, records, intents, ledger = records_bundle
    flows_by = sweep_flows(sweeps, network.name, network.native_asset, block)
    out = []
    for d in docs:
        values = balances.get(d["address"].lower()) or {}
        flows = flows_by.get(d["address"].lower()) or {}
        intent = intents.get(d.get("intent_id") or "") or {}
        receipts = {r["reference"]: r for r in intent.get("receipts") or []}
        tree = (d.get("derivation") or {}).get("tree")
        for asset in network.assets:
            a = assets_mod.get_asset(asset)
            ext = system_account_id("external", asset, "" if d.get("livemode") else "test")
            ts = [t for t in by_intent.get(d.get("intent_id"), [])
                  if t.get("asset") == asset and t.get("network") == network.name
                  and str(t.get("to", "")).lower() == d["address"].lower()]
            lt = [t for t in ledger.get(d.get("intent_id"), []) if t.get("asset") == asset]
            x = explain(int(values.get(asset, 0)), ts, records, receipts,
                        ledger_booked(lt, ext) * a.dust_factor, dust_factor=a.dust_factor,
                        block=block, now=now, nonce=int(values.get("nonce", 0)), tree=tree,
                        swept=flows.get(asset, 0), sweep_nonces=flows.get("nonces", 0))
            if asset != network.native_asset:
                x.custody_spent = False        # reported once per address, on the native row
            out.append((d, asset, x))
    return out


def discrepancy(rid: str, network: str, block: int, d: dict[str, Any], asset: str,
                x: Explanation):
    from shared.reports.models import Discrepancy
    return Discrepancy(
        id=discrepancy_id(rid, d["address"], asset), run_id=rid, network=network, block_number=block,
        address=d["address"], asset=asset, tenant=d.get("tenant"), intent_id=d.get("intent_id"),
        tree=(d.get("derivation") or {}).get("tree"), kind=x.kinds[0], onchain=str(x.onchain),
        expected=str(x.expected), difference=str(x.difference), breakdown=x.breakdown())


def run_network(deps, network, *, run_key: str | None = None, rpc=None):
    """Reconcile one network at its watcher cursor and store ``reconciliation_runs/{id}`` with
    its discrepancy events, in ONE unit. The run id derives from (network, run_key); the default
    key is the UTC hour, so a duplicate Scheduler delivery answers the stored run and emits
    nothing twice."""
    from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable
    from shared.platform.uow import run_unit
    from shared.reports.models import DISCREPANCY, NetworkRun

    db, now = deps.db, deps.clock.now()
    key = run_key or now.strftime("%Y-%m-%dT%H")
    rid = run_id(network.name, key)
    ref = db.collection(RUNS).document(rid)
    stored = ref.get()
    if stored.exists:
        return NetworkRun(**{k: v for k, v in stored.to_dict().items()
                             if k in NetworkRun.model_fields})
    cursor = db.collection(CURSORS).document(network.name).get()
    cur = cursor.to_dict() if cursor.exists else {}
    block = cur.get("block_number")
    stats = {"network": network.name, "block_number": block, "addresses": 0,
             "balances_checked": 0, "discrepancies": 0, "rpc_http_calls": 0}
    found: list[tuple[dict[str, Any], str, Explanation]] = []
    owner_spent = 0
    if block is None:
        status = "no_cursor"
    else:
        rpc = rpc or RpcClient(network.name, network.rpc_urls)
        status = "completed"
        try:
            for docs in watch_pages(db, network.name):
                balances = read_balances(rpc, network, docs, int(block), cur.get("block_hash"))
                rows = compare_page(network, docs, balances, page_records(db, docs), int(block),
                                    now, page_sweeps(db, docs))
                stats["addresses"] += len(docs)
                stats["balances_checked"] += len(rows)
                owner_spent += sum(1 for _, a, x in rows
                                   if x.owner_spent and a == network.native_asset)
                found += [r for r in rows if r[2].kinds]
        except ReorgUnderCursor:
            status, found = "reorg_under_cursor", []
        except (RpcUnavailable, RpcError) as exc:
            status, found = "rpc_unavailable", []
            logs.log(_log, 30, "reconciliation: rpc failed", network=network.name,
                     error=str(exc)[:200])
        stats["rpc_http_calls"] = rpc.http_calls
    items = [discrepancy(rid, network.name, int(block), d, a, x) for d, a, x in found]
    stats.update(status=status, discrepancies=len(items))
    doc = {"id": rid, "object": "reconciliation_run", "run_key": key, **stats,
           "block_hash": cur.get("block_hash"), "owner_spent_addresses": owner_spent,
           "started_at": now, "finished_at": deps.clock.now(), "purge_at": now + RUN_RETENTION,
           "items": [i.model_dump(mode="json") for i in items[:MAX_ITEMS]],
           "items_truncated": len(items) > MAX_ITEMS}

    def unit(uow):
        if uow.get(ref).exists:
            return
        uow.create(ref, doc)
        for item in items[:MAX_EVENTS]:
            uow.emit(DISCREPANCY.name, tenant=item.tenant or "platform",
                     livemode=network.livemode, data={"object": item.model_dump(mode="json")})

    run_unit(deps, unit)
    if items:
        logs.log(_log, 40, "reconciliation found discrepancies", network=network.name,
                 run=rid, count=len(items))
    return NetworkRun(**stats)
