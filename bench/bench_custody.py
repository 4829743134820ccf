"""Custody sweeps (issue 9, ADR 0038): the cost and speed of sweeping a batch of 50 custodial
deposit addresses to the hot wallet, ether and USDC.

Runs on ``bench/run.py``'s stack (anvil with the tokens deployed, the Firestore emulator) but on
its own network name (``<test network>-bench-custody``: the same anvil and chain id), so its
cursors, queue and nonce documents never meet the payments bench's watcher. The watcher's part
is written directly (what it records when it sees the payments: a ``chain_transfers`` document
per deposit and its cursor), the deposits themselves are real transfers on anvil, and the
network's finality is 1 block so the bench does not wait for 12.

Rows, per asset (a batch of N = 50 addresses; ``--quick``: 10):
* plan: one scheduled run (discover, one batched balance read, gas estimates, ONE signing unit,
  one batched broadcast): wall time, addresses per second;
* to final: plan + polls until every sweep is final (a block mined between polls): wall time,
  addresses per second;
* per swept address: JSON-RPC HTTP requests (a batch is one), JSON-RPC calls, broadcast
  requests, Firestore RPCs, all over plan + polls;
* gas per sweep: the deposit's transaction (ether: exactly 21,000; a token transfer: its
  receipt) and the top-up's.
"""
from __future__ import annotations

import datetime as dt
import secrets
import statistics
import time
from typing import Any

import requests

from bench.harness import BenchEnv, RpcCounter

USDC_FUNDER, ETH_FUNDER = 0, 8          # anvil accounts: 0 deployed the tokens
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


class CountingSession(requests.Session):
    """Counts the HTTP requests the broadcasts send (they bypass ``RpcClient.batch``)."""

    def __init__(self):
        super().__init__()
        self.posts = 0

    def post(self, *a, **kw):
        self.posts += 1
        return super().post(*a, **kw)


def _rpc(url: str, method: str, *params: Any) -> Any:
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": list(params)}, timeout=30).json()
    if "error" in r:
        raise RuntimeError(r["error"])
    return r["result"]


def _mine(url: str, n: int = 1) -> None:
    _rpc(url, "anvil_mine", hex(n))


def _wait_all(url: str, hashes: list[str]) -> None:
    deadline = time.monotonic() + 60
    pending = list(hashes)
    while pending:
        pending = [h for h in pending if _rpc(url, "eth_getTransactionReceipt", h) is None]
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} funding transactions not mined")
        if pending:
            _mine(url)


def _accounts(url: str) -> list[str]:
    return _rpc(url, "eth_accounts")


def _setup(env: BenchEnv, net, asset: str, n: int, tag: str) -> list[str]:
    """n custodial deposit addresses (fresh indices), funded on anvil, recorded as the watcher
    records a confirmed payment; returns their addresses."""
    from shared.chain import hd, tokens
    from shared.payments import deposit

    deps, db, url = env.deps, env.deps.db, net.rpc_urls[0]
    tree = hd.load_custodial_seed(deps, livemode=False).tree()
    base = 1_000_000 + secrets.randbelow(10**9)
    addresses = [tree.address(base + i) for i in range(n)]
    accts = _accounts(url)
    hashes = []
    for a in addresses:
        if asset == net.native_asset:
            hashes.append(_rpc(url, "eth_sendTransaction", {
                "from": accts[ETH_FUNDER], "to": a, "value": hex(10**17)}))
        else:
            hashes.append(_rpc(url, "eth_sendTransaction", {
                "from": accts[USDC_FUNDER], "to": net.tokens[asset], "gas": hex(100_000),
                "data": "0x" + tokens.encode_transfer_call(a, 25 * 10**6).hex()}))
    _wait_all(url, hashes)
    head = int(_rpc(url, "eth_blockNumber"), 16)
    now = deps.clock.now()
    batch = db.batch()
    for i, (a, h) in enumerate(zip(addresses, hashes)):
        token = net.tokens.get(asset)
        batch.set(deposit.watch_ref(db, net.name, a), deposit.watch_document(
            network=net.name, chain_id=net.chain_id, address=a, asset=asset, token=token,
            tenant=f"mch_bench{tag}", livemode=False, intent_id=None, required_confirmations=1,
            watch_until=LONG_AGO, now=now, index=base + i,
            tree=deposit.Tree("custodial", "platform")))
        batch.set(db.collection("chain_transfers").document(f"{net.name}:{h}:{i}"), {
            "network": net.name, "to": a.lower(), "asset": asset, "status": "confirmed",
            "block_number": head, "amount": "0", "tx_hash": h, "log_index": i})
    # the planner starts just before these blocks (not at genesis of a long-running anvil)
    batch.set(db.collection("chain_sweep_cursors").document(net.name),
              {"network": net.name, "block": head - 1}, merge=True)
    batch.commit()
    _mine(url, net.reorg_depth + 2)
    db.collection("chain_cursors").document(net.name).set(
        {"block_number": head + net.reorg_depth + 2, "block_time": now}, merge=True)
    return addresses


def _sweep(env: BenchEnv, net, asset: str, n: int, tag: str) -> list[dict]:
    from shared.chain.rpc import RpcClient
    from shared.custody import sweep_poll, sweeps
    from shared.custody import sweep_records as R

    deps, url = env.deps, net.rpc_urls[0]
    addresses = _setup(env, net, asset, n, tag)
    session = CountingSession()
    rpc = RpcClient(net.name, net.rpc_urls, session=session)
    deps.extras[f"custody.rpc:{net.name}"] = rpc
    try:
        with RpcCounter() as fs:
            t0 = time.perf_counter()
            run = sweeps.run(deps, net, run_key=f"bench-{tag}-{asset}")
            planned_s = time.perf_counter() - t0
            for _ in range(60):
                if all(sweep_poll.poll(deps, b) == "done" for b in run.batches):
                    break
                _mine(url)
            total_s = time.perf_counter() - t0
    finally:
        deps.extras.pop(f"custody.rpc:{net.name}", None)
    docs = [s.to_dict() for s in deps.db.get_all(
        [R.sweep_ref(deps.db, R.sweep_id(net.name, a, asset, b)) for a in addresses
         for b in run.batches]) if s.exists]
    done = [d for d in docs if d["status"] == R.SUCCEEDED]
    swept = max(1, len(done))
    gas_tx = [d["tx"]["mined"]["gas_used"] for d in done]
    gas_up = [t["mined"]["gas_used"] for d in done for t in d.get("top_ups") or [] if t.get("mined")]
    label = f"{asset} sweep, batch of {n}"
    return [
        {"name": f"{label}: plan (one run)", "n": run.planned, "seconds": round(planned_s, 2),
         "per_second": round(run.planned / planned_s, 1) if planned_s else None,
         "batches": len(run.batches), "errors": n - len(done)},
        {"name": f"{label}: plan to final", "n": len(done), "seconds": round(total_s, 2),
         "per_second": round(len(done) / total_s, 1) if total_s else None},
        {"name": f"{label}: per swept address", "rpc_http": round(rpc.http_calls / swept, 3),
         "rpc_calls": round(rpc.rpc_requests / swept, 2),
         "broadcast_http": round((session.posts - rpc.http_calls) / swept, 3),
         "firestore_rpcs": round(fs.total / swept, 2)},
        {"name": f"{label}: gas", "tx_gas": int(statistics.median(gas_tx)) if gas_tx else None,
         "top_up_gas": int(statistics.median(gas_up)) if gas_up else 0,
         "fee_gwei_median": int(statistics.median(int(d["fee"]) for d in done) // 10**9)
         if done else None},
    ]


def run(env: BenchEnv) -> list[dict]:
    from shared.chain import hd
    from shared.chain.networks import ChainNetworks, chain_networks
    from shared.refunds import hot_wallet

    tag = secrets.token_hex(3)
    n = 10 if env.quick else 50
    deps = env.deps
    try:
        base = next(x for x in chain_networks(deps).networks if not x.livemode)
        net = base.model_copy(update={"name": f"{base.name}-bench-custody"[:32], "reorg_depth": 1,
                                      "custody": None})
        seed, _ = hd.provision_custodial_seed(deps, livemode=False)
        hot = seed.tree(account=hot_wallet.HOT_ACCOUNT).address(hot_wallet.HOT_INDEX)
        url = net.rpc_urls[0]
        _wait_all(url, [_rpc(url, "eth_sendTransaction", {
            "from": _accounts(url)[ETH_FUNDER], "to": hot, "value": hex(10**19)})])
    except Exception as exc:  # noqa: BLE001 - one failed row, not a failed bench run
        return [{"name": "custody bench setup: FAILED", "errors": 1,
                 "error": f"{type(exc).__name__}: {exc}"[:1000]}]
    saved = deps.extras.get("chain.networks")
    deps.extras["chain.networks"] = ChainNetworks(networks=(net,))
    rows: list[dict] = []
    try:
        for asset in (net.native_asset, "USDC"):
            try:
                rows += _sweep(env, net, asset, n, tag)
            except Exception as exc:  # noqa: BLE001 - report it, keep the other figures
                rows.append({"name": f"{asset} sweep: FAILED", "errors": 1,
                             "error": f"{type(exc).__name__}: {exc}"[:1000]})
    finally:
        if saved is None:
            deps.extras.pop("chain.networks", None)
        else:
            deps.extras["chain.networks"] = saved
    return rows
