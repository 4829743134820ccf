"""Sweeping: the scheduled planner (function ``custody_sweeper``, every 10 minutes).

Per network, one run:

1. **Discover** (``discover``): the watcher's confirmed transfers in blocks up to the FINAL
   block ``F = min(head, watcher cursor) − reorg_depth`` since this planner's cursor, to
   custodial deposit addresses only (the watch document's ``derivation.tree``: a merchant's
   xpub address is the merchant's wallet and is never touched), become queue entries
   (``chain_sweep_queue``). One query, one ``get_all``, one unit.
2. **Plan a batch** (``plan_batch``, up to ``batches_per_run`` of ``batch_size`` addresses):
   the due queue entries; ONE batched JSON-RPC request reads the fee market, the hot wallet's
   pending nonce and balances, and every address's pending nonce and balances AT BLOCK F (money
   in newer blocks is not final yet); a second one estimates the gas of the token transfers.
   ``sweep_plan.decide`` chooses each address's transaction, ``sweep_plan.fund`` keeps the
   top-ups the hot wallet can pay, ``cold.plan`` sends the excess over the hot cap to cold.
3. ONE unit signs and records everything: the hot wallet's top-ups and cold transfers take
   consecutive nonces from ``chain_nonces/{network}:{hot}`` — the SAME document crypto refunds
   reserve theirs in, read and written in the unit, so a refund and a top-up can never share a
   nonce — and each deposit address signs its transfer with the chain's pending nonce, guarded
   by its own ``chain_nonces`` document. The signed bytes and hashes are committed on the
   ``chain_sweeps`` records with the batch and its first poll task BEFORE anything is sent.
4. After the commit, one batched ``eth_sendRawTransaction`` request sends the top-ups and cold
   transfers (consecutive nonces: they land in the same block) and the ether sweeps. Token
   sweeps are sent by the poll once their top-up is mined (``sweep_poll``).

A crash anywhere loses nothing: before the commit nothing was signed for good; after it the
poll sends the same bytes. A duplicate Scheduler delivery finds its batch ids taken (derived
from the run's 10-minute slot) and the addresses in flight: it plans nothing twice.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.chain import hd, outgoing
from shared.chain.networks import Network
from shared.chain.outgoing import broadcast_many
from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable
from shared.custody import cold, gas, sweep_plan
from shared.custody import sweep_records as R
from shared.custody.sweep_keys import SweepKeys
from shared.custody.sweep_models import NetworkSweepRun
from shared.custody.sweep_settings import SweepSettings, sweep_settings
from shared.payments import deposit
from shared.platform import logs
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit

_log = logs.get_logger(__name__)
WATCHER_CURSORS = "chain_cursors"
CHAIN_TRANSFERS = "chain_transfers"
BALANCE_OF = "0x70a08231"
DISCOVER_CHUNK = 400                   # queue entries written per discovery unit


def rpc_for(deps: Any, network: Network) -> RpcClient:
    return outgoing.rpc_for(deps, network, scope="custody")


def slot(now: dt.datetime) -> str:
    """The run key: the Scheduler's 10-minute slot (a duplicate delivery shares it)."""
    return now.strftime("%Y-%m-%dT%H:") + f"{now.minute // 10}0"


def _q(value: Any) -> int:
    text = str(value or "0x")
    return int(text, 16) if text not in ("0x", "0x0") else 0


def balance_call(token: str, address: str, tag: str) -> tuple[str, list[Any]]:
    return ("eth_call", [{"to": token, "data": BALANCE_OF + "00" * 12 + address.lower()[2:]}, tag])


@dataclasses.dataclass
class Stats:
    network: str
    status: str = "completed"
    final_block: int | None = None
    discovered: int = 0
    planned: int = 0
    cold_transfers: int = 0
    deferred: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    batches: list[str] = dataclasses.field(default_factory=list)

    def model(self, http_calls: int) -> NetworkSweepRun:
        return NetworkSweepRun(network=self.network, status=self.status,
                               final_block=self.final_block, discovered=self.discovered,
                               planned=self.planned, cold_transfers=self.cold_transfers,
                               deferred=dict(self.deferred), batches=self.batches,
                               rpc_http_calls=http_calls)


# --- the run --------------------------------------------------------------------------------------
def run(deps: Any, network: Network, *, run_key: str | None = None,
        rpc: RpcClient | None = None) -> NetworkSweepRun:
    """Discover, then plan and send up to ``batches_per_run`` batches (see the module doc)."""
    settings = sweep_settings(deps)
    rpc = rpc or rpc_for(deps, network)
    before = rpc.http_calls
    now = deps.clock.now()
    key = run_key or slot(now)
    stats = Stats(network.name)
    watcher = deps.db.collection(WATCHER_CURSORS).document(network.name).get()
    wcur = watcher.to_dict() if watcher.exists else {}
    if wcur.get("block_number") is None:
        stats.status = "no_cursor"
        return stats.model(0)
    try:
        head = int(rpc.call("eth_blockNumber"), 16)
        final = min(head, int(wcur["block_number"])) - network.reorg_depth
        stats.final_block = final
        stats.discovered = discover(deps, network, final, settings)
        keys = SweepKeys(deps, network.livemode)
        for seq in range(settings.batches_per_run):
            if not plan_batch(deps, network, rpc, keys, key, seq, final, settings, stats):
                break
    except (RpcUnavailable, RpcError) as exc:
        stats.status = "rpc_unavailable"
        logs.log(_log, 30, "sweeper: rpc failed", network=network.name, error=str(exc)[:200])
    except hd.CustodySeedMissing:
        stats.status = "custody_unavailable"
    return stats.model(rpc.http_calls - before)


# --- 1. discover ----------------------------------------------------------------------------------
def discover(deps: Any, network: Network, final: int, settings: SweepSettings) -> int:
    """Queue the custodial addresses that received money in final blocks since the cursor.
    Returns how many entries were created or touched."""
    db, name = deps.db, network.name
    cref = R.cursor_ref(db, name)
    snap = cref.get()
    start = int((snap.to_dict() or {}).get("block", -1)) if snap.exists else -1
    end = min(final, start + settings.scan_blocks)
    if end <= start:
        return 0
    col = db.collection(CHAIN_TRANSFERS)

    def transfers(status: str, limit: int | None = None):
        q = (col.where(filter=FieldFilter("network", "==", name))
             .where(filter=FieldFilter("status", "==", status))
             .where(filter=FieldFilter("block_number", ">", start))
             .where(filter=FieldFilter("block_number", "<=", end)).order_by("block_number"))
        return [s.to_dict() for s in (q.limit(limit) if limit else q).stream()]

    # a transfer the watcher has not confirmed yet (its confirmation step lags): stop before
    # its block, so the cursor never passes a transfer that is not queued
    unconfirmed = transfers("seen", 1)
    if unconfirmed:
        end = int(unconfirmed[0]["block_number"]) - 1
        if end <= start:
            return 0
    found = {str(t["to"]).lower() for t in transfers("confirmed")
             if int(t["block_number"]) <= end}
    watch = [s.to_dict() for s in db.get_all([deposit.watch_ref(db, name, a) for a in sorted(found)])
             if s.exists] if found else []
    custodial = [w for w in watch if (w.get("derivation") or {}).get("tree") == "custodial"
                 and bool(w.get("livemode")) == network.livemode]

    def unit(uow, chunk: list[dict[str, Any]], last: bool) -> int:
        qrefs = [R.queue_ref(uow.db, name, w["address"]) for w in chunk]
        snaps = uow.get_all([cref, *qrefs])
        cur = snaps[cref.path].to_dict() if snaps[cref.path].exists else {}
        if int(cur.get("block", -1)) != start:
            return 0                                   # another run moved the cursor
        for w, qref in zip(chunk, qrefs):
            q = snaps[qref.path]
            if q.exists:
                fields: dict[str, Any] = {"touched_at": uow.now, "updated_at": uow.now}
                if not q.to_dict().get("in_flight"):
                    fields["due_at"] = min(q.to_dict().get("due_at") or uow.now, uow.now)
                uow.update(qref, fields)
            else:
                uow.create(qref, {
                    "network": name, "address": w["address"], "livemode": network.livemode,
                    "index": int(w["derivation"]["index"]), "due_at": uow.now, "in_flight": None, "failures": 0, "remaining": False,
                    "touched_at": uow.now, "created_at": uow.now, "updated_at": uow.now})
        if last:
            uow.set(cref, {"network": name, "block": end, "updated_at": uow.now}, merge=True)
        return len(chunk)

    # a commit takes 500 writes: queue entries go in chunks, the cursor moves with the last one
    # (a crash in between re-queues the same addresses next run, which changes nothing)
    chunks = [custodial[i:i + DISCOVER_CHUNK] for i in range(0, len(custodial), DISCOVER_CHUNK)]
    chunks = chunks or [[]]
    done = 0
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        done += run_unit(deps, lambda uow, c=chunk, end_here=last: unit(uow, c, end_here))
    return done


# --- 2. plan a batch ------------------------------------------------------------------------------
@dataclasses.dataclass
class Reading:
    """What one batched JSON-RPC request said about the hot wallet and the addresses."""
    fees: gas.Fees
    hot_nonce: int
    hot_balances: dict[str, int]
    holdings: list[sweep_plan.Holding]


def read_chain(rpc, network: Network, hot: str, entries: list[dict[str, Any]],
               final: int) -> Reading:
    """Fees, the hot wallet (pending nonce, latest balances) and each address (pending nonce,
    balances at the final block) in ONE HTTP request."""
    tag = hex(final)
    calls = gas.fee_calls() + [("eth_getTransactionCount", [hot, "pending"]),
                               ("eth_getBalance", [hot, "latest"])]
    calls += [balance_call(t, hot, "latest") for _, t in sorted(network.tokens.items())]
    for e in entries:
        calls += [("eth_getTransactionCount", [e["address"], "pending"]),
                  ("eth_getBalance", [e["address"], tag])]
        calls += [balance_call(t, e["address"], tag) for _, t in sorted(network.tokens.items())]
    out = rpc.batch(calls)
    fees = gas.fees_from(out[0], out[1])
    assets = sorted(network.tokens)
    hot_balances = {network.native_asset: _q(out[3]),
                    **{a: _q(out[4 + i]) for i, a in enumerate(assets)}}
    k, holdings = 4 + len(assets), []
    for e in entries:
        balances = {network.native_asset: _q(out[k + 1]),
                    **{a: _q(out[k + 2 + i]) for i, a in enumerate(assets)}}
        holdings.append(sweep_plan.Holding(e["address"], int(e["index"]), balances, _q(out[k])))
        k += 2 + len(assets)
    return Reading(fees, _q(out[2]), hot_balances, holdings)


def estimate(rpc, calls: list[dict[str, Any]]) -> list[int | None]:
    """``eth_estimateGas`` of each call, batched; a call that reverts (a paused token, a
    blocked sender) is None, the others still answer."""
    if not calls:
        return []
    try:
        return [_q(x) for x in rpc.batch([("eth_estimateGas", [c]) for c in calls])]
    except RpcError:
        out: list[int | None] = []
        for c in calls:
            try:
                out.append(_q(rpc.call("eth_estimateGas", [c])))
            except RpcError as exc:
                logs.log(_log, 30, "sweeper: transfer would revert", network=rpc.network,
                         sender=c["from"], reason=exc.message[:160])
                out.append(None)
        return out


def _transfer_call(sender: str, token: str, to: str, amount: int) -> dict[str, Any]:
    from shared.chain import tokens
    return {"from": sender, "to": token,
            "data": "0x" + tokens.encode_transfer_call(to, amount).hex()}


def plan_batch(deps: Any, network: Network, rpc, keys: SweepKeys, run_key: str, seq: int,
               final: int, settings: SweepSettings, stats: Stats) -> bool:
    """Plan, sign, record and send one batch. False when there was nothing left to do."""
    db, name, now = deps.db, network.name, deps.clock.now()
    bid = R.batch_id(name, run_key, seq)
    bref = R.batch_ref(db, bid)
    if bref.get().exists:
        return True                                    # a duplicate run: that batch is done
    q = (db.collection(R.QUEUE).where(filter=FieldFilter("network", "==", name))
         .where(filter=FieldFilter("due_at", "<=", now)).order_by("due_at")
         .limit(settings.batch_size))
    due = [s.to_dict() for s in q.stream()]
    free = [d for d in due if not d.get("in_flight")]
    stale = [d for d in due if d.get("in_flight")]
    rules = network.custody_rules
    if not free and not stale and (seq > 0 or not rules.hot_caps):
        return False
    hot = keys.hot()
    cur = R.cursor_ref(db, name).get()
    in_flight_cold = set(((cur.to_dict() or {}).get("cold_in_flight") or {}) if cur.exists else {})
    reading = read_chain(rpc, network, hot.address, free, final)
    fees = reading.fees

    # gas estimates: each address's candidate token transfer, and each token over its cap
    cands = {h.address: sweep_plan.token_candidate(h, network) for h in reading.holdings}
    calls, owners = [], []
    for h in reading.holdings:
        asset = cands[h.address]
        if asset:
            calls.append(_transfer_call(h.address, network.tokens[asset], hot.address,
                                        h.balances[asset]))
            owners.append(("sweep", h.address))
    if seq == 0 and rules.cold_address:
        for asset in sorted(network.tokens):
            cap = rules.cap(asset)
            bal = reading.hot_balances.get(asset, 0)
            if cap is not None and asset not in in_flight_cold and bal > cap:
                calls.append(_transfer_call(hot.address, network.tokens[asset],
                                            rules.cold_address, cold.excess(bal, cap, rules.target(asset))))
                owners.append(("cold", asset))
    estimates = dict(zip(owners, estimate(rpc, calls)))
    retry_at = now + settings.retry_after
    decisions = []
    for h in reading.holdings:
        token_gas = estimates.get(("sweep", h.address))
        if cands[h.address] and token_gas is None:
            decisions.append(sweep_plan.Decision(h.address, None, "estimate_failed", retry_at))
            continue
        decisions.append(sweep_plan.decide(h, network, fees, hot.address, token_gas=token_gas))
    decisions, reserved = sweep_plan.fund(decisions, reading.hot_balances[network.native_asset],
                                          fees, reserve=0, retry_at=retry_at)
    colds = cold.plan(network, reading.hot_balances, fees, reserved=reserved,
                      token_gas={a: g for (kind, a), g in estimates.items()
                                 if kind == "cold" and g is not None},
                      in_flight=in_flight_cold) if seq == 0 else []
    holdings = {h.address: h for h in reading.holdings}
    entries = {d["address"]: d for d in due}
    project = deps.settings.project_id

    def unit(uow) -> tuple[list[dict[str, Any]], collections.Counter]:
        deferred: collections.Counter = collections.Counter()
        hot_nonces = outgoing.Nonces(uow.db, name, hot.address)
        cref = R.cursor_ref(uow.db, name)
        qrefs = {a: R.queue_ref(uow.db, name, a) for a in entries}
        planned = [d for d in decisions if d.plan is not None]
        nrefs = {d.address: outgoing.nonce_ref(uow.db, name, d.address) for d in planned}
        snaps = uow.get_all([bref, hot_nonces.ref, cref, *qrefs.values(), *nrefs.values()])
        if snaps[bref.path].exists:
            return [], deferred
        hot_nonces.load(snaps[hot_nonces.ref.path], reading.hot_nonce)
        records: list[dict[str, Any]] = []

        def sign(tx: dict[str, Any], key: bytes, sender: str) -> dict[str, Any]:
            tx = {**tx, "chainId": network.chain_id, "maxFeePerGas": fees.max_fee,
                  "maxPriorityFeePerGas": fees.tip}
            out = outgoing.sign_new(tx, key, sender, uow.now)
            out["broadcast_at"] = uow.now
            return out

        for d in decisions:
            qref = qrefs[d.address]
            q = snaps[qref.path].to_dict() if snaps[qref.path].exists else None
            if q is None or q.get("in_flight"):
                continue                              # planned by a concurrent run
            if d.plan is None:
                deferred[d.reason] += 1
                if d.reason in ("dust", "empty"):
                    uow.delete(qref)
                else:
                    uow.update(qref, {"due_at": d.defer_until or retry_at, "last_reason": d.reason,
                                      "updated_at": uow.now})
                continue
            p = d.plan
            try:
                key = keys.deposit(p.index, p.address)
            except KeyError:
                logs.log(_log, 50, "sweeper: deposit address does not derive from its index",
                         network=name, address=p.address)
                deferred["derivation_mismatch"] += 1
                uow.update(qref, {"due_at": now + settings.max_retry_after,
                                  "last_reason": "derivation_mismatch", "updated_at": uow.now})
                continue
            ups = []
            if p.top_up:
                ups.append(sign({"nonce": hot_nonces.take(), "to": p.address, "value": p.top_up,
                                 "data": "0x", "gas": gas.ETH_TRANSFER_GAS}, hot.key, hot.address))
            nonce = holdings[p.address].nonce
            tx = sign({"nonce": nonce, "to": p.to, "value": p.value, "data": p.data,
                       "gas": p.gas}, key, p.address)
            if ups:
                tx["broadcast_at"] = None             # sent once its top-up is mined
            sid = R.sweep_id(name, p.address, p.asset, bid)
            records.append(_record(sid, R.SWEEP, network, bid, p.asset, p.token, p.address,
                                   hot.address, p.amount, p.index, ups, tx, uow.now))
            nref = nrefs[p.address]
            uow.set(nref, {"next": nonce + 1, "network": name, "address": p.address,
                           "updated_at": uow.now})
            uow.update(qref, {"in_flight": bid, "due_at": uow.now + settings.in_flight_check,
                              "remaining": p.remaining, "planned_at": uow.now,
                              "last_reason": "planned", "updated_at": uow.now})
        cold_flight = dict(((snaps[cref.path].to_dict() or {}).get("cold_in_flight") or {})
                           if snaps[cref.path].exists else {})
        for c in colds:
            if c.asset in cold_flight:
                continue
            tx = sign({"nonce": hot_nonces.take(), "to": c.to, "value": c.value, "data": c.data,
                       "gas": c.gas}, hot.key, hot.address)
            sid = R.sweep_id(name, hot.address, c.asset, bid)
            records.append(_record(sid, R.COLD, network, bid, c.asset, c.token, hot.address,
                                   rules.cold_address, c.amount, None, [], tx, uow.now))
            cold_flight[c.asset] = sid
        for d in stale:                               # a batch whose poll went quiet: nudge it
            uow.update(qrefs[d["address"]], {"due_at": uow.now + settings.in_flight_check,
                                             "updated_at": uow.now})
            uow.schedule_task(queue=R.TASK_QUEUE, function=R.TASK_FUNCTION, path=R.POLL_PATH,
                              body={"batch_id": d["in_flight"]},
                              name=task_name("sweep-nudge", project, d["in_flight"], run_key))
        hot_nonces.write(uow)
        if any(r["kind"] == R.COLD for r in records):
            uow.set(cref, {"network": name, "cold_in_flight": cold_flight,
                           "updated_at": uow.now}, merge=True)
        for r in records:
            uow.create(R.sweep_ref(uow.db, r["id"]), r)
        if records:
            uow.create(bref, {"id": bid, "network": name, "livemode": network.livemode,
                              "run_key": run_key, "seq": seq, "sweeps": [r["id"] for r in records],
                              "status": "open", "polls": 0, "created_at": uow.now,
                              "updated_at": uow.now})
            uow.schedule_task(queue=R.TASK_QUEUE, function=R.TASK_FUNCTION, path=R.POLL_PATH,
                              body={"batch_id": bid},
                              schedule_time=uow.now + dt.timedelta(seconds=network.block_time_seconds),
                              name=task_name("sweep-poll", project, bid, "0"))
        return records, deferred

    records, deferred = run_unit(deps, unit)
    stats.deferred.update(deferred)
    if records:
        stats.batches.append(bid)
        stats.planned += sum(1 for r in records if r["kind"] == R.SWEEP)
        stats.cold_transfers += sum(1 for r in records if r["kind"] == R.COLD)
        broadcast_many(rpc, first_sends(records))
    return bool(records or stale or any(d.plan is None for d in decisions))


def first_sends(records: list[dict[str, Any]]) -> list[str]:
    """What goes out right after the commit: the hot wallet's transactions in nonce order (the
    top-ups and cold transfers: one block), then the ether sweeps (no top-up needed)."""
    hot = sorted([o for r in records for o in (*(r.get("top_ups") or []),
                                                *([r["tx"]] if r["kind"] == R.COLD else []))],
                 key=lambda o: o["nonce"])
    own = [r["tx"] for r in records if r["kind"] == R.SWEEP and not r.get("top_ups")]
    return [outgoing.latest(o)["raw"] for o in (*hot, *own)]


def _record(sid: str, kind: str, network: Network, bid: str, asset: str, token: str | None,
            sender: str, to: str, amount: int, index: int | None, ups: list[dict[str, Any]],
            tx: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return {"id": sid, "object": "custody_sweep", "kind": kind, "network": network.name,
            "chain_id": network.chain_id, "livemode": network.livemode, "batch_id": bid,
            "asset": asset, "token": token, "from": sender, "to": to, "amount": str(amount),
            "index": index, "status": R.FUNDING if ups else R.SENDING, "top_ups": ups, "tx": tx,
            "fee": None, "ledger_transfer": None, "failure_reason": None, "created_at": now,
            "updated_at": now, "finished_at": None}
