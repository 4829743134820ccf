"""The chain watcher on a real anvil and the Firestore emulator.

Every test watches fresh addresses on the module's anvil (tokens deployed by the ``chain``
fixture) and starts its watcher at the current head, so tests do not see each other's blocks.
"""
from __future__ import annotations

import datetime as dt
import http.server
import threading
import time
import urllib.request

import pytest
import requests
from eth_account import Account

from shared.chain import events as ev
from shared.chain.networks import Network
from shared.chain.tokens import encode_transfer_call
from shared.chain.watch_list import COLLECTION as DEPOSITS
from shared.chain.watch_list import doc_id
from shared.chain.watcher import (
    CURSORS,
    TRANSFERS,
    LeaseLost,
    Watcher,
    WatcherSettings,
    transfer_id,
)

TENANT = "mch_test_watcher"


# --- helpers ------------------------------------------------------------------------------------

def rpc(url, method, *params):
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                      timeout=10).json()
    if "error" in r:
        raise RuntimeError(r["error"])
    return r["result"]


def network(chain, urls=None) -> Network:
    return Network(name="anvil", chain_id=chain.chain_id, rpc_urls=tuple(urls or [chain.rpc_url]),
                   tokens=dict(chain.tokens), reorg_depth=12)


def fast(**over) -> WatcherSettings:
    base = {"poll_interval_s": 0.2, "lease_seconds": 5, "lease_wait_s": 0, "rpc_timeout_s": 2,
            "rpc_cooldown_s": 0.5, "health_flush_s": 0.5}
    base.update(over)
    return WatcherSettings(**base)


def watch(deps, address, *, asset="ETH", token=None, required=1, intent="pi_test", hours=1,
          tenant=TENANT, livemode=False):
    now = deps.clock.now()
    deps.db.collection(DEPOSITS).document(doc_id("anvil", address)).set({
        "network": "anvil", "chain_id": 31337, "address": address, "asset": asset,
        "token": token, "tenant": tenant, "livemode": livemode, "intent_id": intent,
        "required_confirmations": required, "watch_until": now + dt.timedelta(hours=hours),
        "created_at": now})


def fresh() -> str:
    return Account.create().address


def mined(chain, tx_hash: str) -> str:
    """Wait until the transaction is in a block (automine answers before it is queryable)."""
    if not _automine(chain):
        return tx_hash
    deadline = time.monotonic() + 5
    while rpc(chain.rpc_url, "eth_getTransactionReceipt", tx_hash) is None:
        assert time.monotonic() < deadline, "transaction not mined"
        time.sleep(0.01)
    return tx_hash


def _automine(chain) -> bool:
    return bool(rpc(chain.rpc_url, "anvil_getAutomine"))


def pay_eth(chain, to, wei, sender=1) -> str:
    return mined(chain, rpc(chain.rpc_url, "eth_sendTransaction",
                            {"from": chain.accounts[sender].address, "to": to, "value": hex(wei)}))


def pay_token(chain, asset, to, amount) -> str:
    """Account 0 holds every token's supply."""
    return mined(chain, rpc(chain.rpc_url, "eth_sendTransaction",
                            {"from": chain.accounts[0].address, "to": chain.tokens[asset],
                             "data": "0x" + encode_transfer_call(to, amount).hex(),
                             "gas": hex(100_000)}))


def signed_eth(chain, to, wei, sender=2) -> tuple[str, str]:
    """A signed raw transfer (anvil_reorg can put it back into the new branch)."""
    acct = chain.accounts[sender]
    w3 = chain.w3
    tx = {"to": to, "value": wei, "gas": 21_000, "chainId": chain.chain_id,
          "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
          "maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2}
    signed = Account.sign_transaction(tx, acct.key)
    return "0x" + signed.raw_transaction.hex().removeprefix("0x"), "0x" + signed.hash.hex().removeprefix("0x")


def mine(chain, n=1):
    rpc(chain.rpc_url, "anvil_mine", hex(n))


def head(chain) -> int:
    return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)


def catch_up(w: Watcher, limit=100):
    for _ in range(limit):
        if not w.step() and w.cursor.number >= head_of(w):
            return
    raise AssertionError("watcher did not catch up")


def head_of(w):
    return int(w.rpc.call("eth_blockNumber"), 16)


def transfers(deps) -> dict[str, dict]:
    return {s.id: s.to_dict() for s in deps.db.collection(TRANSFERS).stream()}


def chain_events(deps) -> list[dict]:
    evs = [s.to_dict() for s in deps.db.collection("events").stream()]
    evs = [e for e in evs if e["type"].startswith("chain.")]
    # events of one commit share created_at; within one, the emit order is reorged, seen, confirmed
    rank = {ev.TRANSFER_REORGED: 0, ev.TRANSFER_SEEN: 1, ev.TRANSFER_CONFIRMED: 2}
    return sorted(evs, key=lambda e: (e["created_at"], rank[e["type"]]))


def kinds(deps, tx_hash=None):
    return [e["type"].removeprefix("chain.transfer_") for e in chain_events(deps)
            if tx_hash is None or e["data"]["object"]["tx_hash"] == tx_hash.lower()]


@pytest.fixture
def started(deps, chain):
    """A watcher holding the lease, its cursor at the current head."""
    w = Watcher(deps, network(chain), settings=fast(), owner="w1")
    assert w.acquire()
    return w


# --- seeing transfers -------------------------------------------------------------------------

def test_erc20_and_eth_to_watched_addresses_are_seen_within_the_loop(deps, chain):
    eth_to, usdc_to, ignored = fresh(), fresh(), fresh()
    watch(deps, eth_to, required=1)
    watch(deps, usdc_to, asset="USDC", token=chain.tokens["USDC"], required=1)
    w = Watcher(deps, network(chain), settings=fast(), owner="loop")
    thread = threading.Thread(target=w.run, kwargs={"seconds": 6})
    thread.start()
    try:
        time.sleep(1.0)  # the loop holds the lease and follows the head
        t0 = time.monotonic()
        eth_tx = pay_eth(chain, eth_to, 10**18 + 1)
        usdc_tx = pay_token(chain, "USDC", usdc_to, 12_345_678)
        pay_eth(chain, ignored, 10**15)
        pay_token(chain, "USDC", ignored, 5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(transfers(deps)) < 2:
            time.sleep(0.05)
        seen_after = time.monotonic() - t0
    finally:
        thread.join()
    docs = transfers(deps)
    assert set(docs) == {transfer_id("anvil", eth_tx, -1), transfer_id("anvil", usdc_tx, 0)}
    eth = docs[transfer_id("anvil", eth_tx, -1)]
    assert (eth["asset"], eth["token"], eth["amount"], eth["status"]) == ("ETH", None, str(10**18 + 1), "confirmed")
    assert eth["to"] == eth_to.lower() and eth["tenant"] == TENANT and eth["intent_id"] == "pi_test"
    usdc = docs[transfer_id("anvil", usdc_tx, 0)]
    assert (usdc["asset"], usdc["token"], usdc["amount"]) == ("USDC", chain.tokens["USDC"].lower(), "12345678")
    assert seen_after < 3.0
    assert kinds(deps, eth_tx) == ["seen", "confirmed"] and kinds(deps, usdc_tx) == ["seen", "confirmed"]
    # the cursor followed the head and the lease was released at the end
    cursor = deps.db.collection(CURSORS).document("anvil").get().to_dict()
    assert cursor["block_number"] == head(chain) and cursor["lease_owner"] is None
    assert w.stats.stopped == "deadline" and w.stats.transfers == 2


def test_events_are_internal_and_carry_the_transfer(deps, chain, started):
    to = fresh()
    watch(deps, to, required=0, livemode=False)
    tx = pay_eth(chain, to, 7)
    catch_up(started)
    evs = chain_events(deps)
    assert [e["type"] for e in evs] == [ev.TRANSFER_SEEN, ev.TRANSFER_CONFIRMED]
    obj = evs[0]["data"]["object"]
    assert obj["object"] == "chain_transfer" and obj["from"] == chain.accounts[1].address.lower()
    assert obj["tx_hash"] == tx.lower() and obj["amount"] == "7" and evs[0]["tenant"] == TENANT
    from shared.platform import catalog
    assert not catalog.is_public(ev.TRANSFER_SEEN)


@pytest.mark.parametrize("required", [0, 1, 2, 6])
def test_confirmed_exactly_at_the_required_depth(deps, chain, started, required):
    to = fresh()
    watch(deps, to, asset="MUSD", token=chain.tokens["MUSD"], required=required)
    tx = pay_token(chain, "MUSD", to, 10**18)
    catch_up(started)
    tid = transfer_id("anvil", tx, 0)
    depth = 1
    while True:
        doc = transfers(deps)[tid]
        assert doc["confirmations"] == depth
        if depth >= max(1, required):
            assert doc["status"] == "confirmed" and doc["confirmed_at"] is not None
            break
        assert doc["status"] == "seen"
        mine(chain)
        catch_up(started)
        depth += 1
    assert depth == max(1, required)
    assert kinds(deps, tx) == ["seen", "confirmed"]
    mine(chain, 3)
    catch_up(started)
    assert kinds(deps, tx) == ["seen", "confirmed"]   # confirmed once, not again


def test_native_transfer_that_reverts_is_not_recorded(deps, chain, started):
    """A watched address that is a contract which rejects ETH: the tx is mined but failed."""
    token = chain.tokens["PPT"]  # an ERC-20 has no receive(): plain ETH to it reverts
    watch(deps, token, required=1)
    try:
        rpc(chain.rpc_url, "eth_sendTransaction", {"from": chain.accounts[3].address, "to": token,
                                                   "value": hex(1), "gas": hex(60_000)})
    except RuntimeError:
        pytest.skip("anvil refused the reverting transaction up front")
    catch_up(started)
    assert transfers(deps) == {}


# --- reorgs -------------------------------------------------------------------------------------

def test_reorg_of_depth_3_after_confirmation_then_confirmed_again_once(deps, chain, started):
    to = fresh()
    watch(deps, to, required=2)
    raw, tx = signed_eth(chain, to, 5 * 10**17)
    mined(chain, rpc(chain.rpc_url, "eth_sendRawTransaction", raw))
    mine(chain)                      # depth 2: confirmed
    catch_up(started)
    tid = transfer_id("anvil", tx, -1)
    before = transfers(deps)[tid]
    assert before["status"] == "confirmed"
    # replace the last 3 blocks; the transaction goes into the second new block
    rpc(chain.rpc_url, "anvil_reorg", 3, [[raw, 1]])
    started.step()                   # sees the reorg, rolls back
    after = transfers(deps)[tid]
    assert after["status"] == "reorged" and after["confirmed_at"] is None
    assert kinds(deps, tx) == ["seen", "confirmed", "reorged"]
    catch_up(started)
    again = transfers(deps)[tid]
    assert again["block_hash"] != before["block_hash"]
    # re-included in the new branch; depth decides whether it is confirmed yet
    mine(chain)
    catch_up(started)
    final = transfers(deps)[tid]
    assert final["status"] == "confirmed" and final["first_seen_at"] == before["first_seen_at"]
    assert kinds(deps, tx) == ["seen", "confirmed", "reorged", "seen", "confirmed"]
    types = kinds(deps, tx)
    assert types.count("confirmed") - types.count("reorged") == 1   # one confirmed at a time
    cursor = deps.db.collection(CURSORS).document("anvil").get().to_dict()
    assert cursor["last_reorg"]["from_block"] - cursor["last_reorg"]["ancestor"] == 3


def test_reorg_that_drops_the_transaction_leaves_it_reorged(deps, chain, started):
    to = fresh()
    watch(deps, to, required=0)
    tx = pay_eth(chain, to, 10**16)
    catch_up(started)
    rpc(chain.rpc_url, "anvil_reorg", 2, [])
    mine(chain, 2)
    catch_up(started)
    doc = transfers(deps)[transfer_id("anvil", tx, -1)]
    assert doc["status"] == "reorged"
    assert kinds(deps, tx) == ["seen", "confirmed", "reorged"]
    assert started.stats.reorgs == 1


# --- crashes ------------------------------------------------------------------------------------

class Crash(Exception):
    pass


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_crash_mid_block_neither_misses_nor_doubles(deps, chain, point):
    to = fresh()
    watch(deps, to, asset="USDC", token=chain.tokens["USDC"], required=1)
    crashed = []

    def fault(where):
        if where == point and not crashed:
            crashed.append(where)
            raise Crash(where)

    w1 = Watcher(deps, network(chain), settings=fast(lease_seconds=1), owner="crashy", fault=fault)
    assert w1.acquire()
    start = w1.cursor.number
    tx = pay_token(chain, "USDC", to, 42)
    with pytest.raises(Crash):
        w1.step()
    cursor = deps.db.collection(CURSORS).document("anvil").get().to_dict()
    if point == "before_commit":
        assert transfers(deps) == {} and cursor["block_number"] == start
    else:
        assert len(transfers(deps)) == 1 and cursor["block_number"] == start + 1
    # a new invocation takes over once the crashed holder's lease expires
    w2 = Watcher(deps, network(chain), settings=fast(lease_seconds=1), owner="next")
    assert not w2.acquire()
    assert w2.acquire(wait_s=3)
    catch_up(w2)
    docs = transfers(deps)
    assert list(docs) == [transfer_id("anvil", tx, 0)] and docs[transfer_id("anvil", tx, 0)]["amount"] == "42"
    assert kinds(deps) == ["seen", "confirmed"]
    # the crashed holder cannot write any more (fenced by the cursor's owner)
    pay_token(chain, "USDC", to, 1)
    with pytest.raises(LeaseLost):
        w1.step()


def test_crash_between_groups_of_a_catch_up(deps, chain):
    """Three blocks with a payment each, committed one block per unit; a crash after the first
    commit: the rest comes on the next run, each transfer once."""
    to = [fresh() for _ in range(3)]
    for a in to:
        watch(deps, a, required=1)
    commits = []

    def fault(where):
        if where == "after_commit":
            commits.append(1)
            if len(commits) == 1:
                raise Crash()

    w1 = Watcher(deps, network(chain), settings=fast(max_transfers_per_unit=1, lease_seconds=1),
                 owner="a", fault=fault)
    assert w1.acquire()
    txs = [pay_eth(chain, a, 1000 + i) for i, a in enumerate(to)]
    with pytest.raises(Crash):
        w1.step()
    assert len(transfers(deps)) == 1
    w2 = Watcher(deps, network(chain), settings=fast(max_transfers_per_unit=1), owner="b")
    assert w2.acquire(wait_s=3)
    catch_up(w2)
    assert set(transfers(deps)) == {transfer_id("anvil", t, -1) for t in txs}
    assert sorted(kinds(deps)) == sorted(["seen", "confirmed"] * 3)


# --- the lease ---------------------------------------------------------------------------------

def test_one_holder_per_network_and_handover_on_release(deps, chain):
    a = Watcher(deps, network(chain), settings=fast(lease_seconds=30), owner="a")
    b = Watcher(deps, network(chain), settings=fast(lease_seconds=30), owner="b")
    assert a.acquire()
    assert not b.acquire(wait_s=0.3)
    stats = b.run(seconds=0.3)
    assert stats.stopped == "lease held elsewhere" and not stats.acquired
    a.release()
    assert b.acquire()
    assert b.cursor.number == a.cursor.number
    with pytest.raises(LeaseLost):
        a.renew()


def test_late_address_still_seen_when_created_before_its_block(deps, chain, started):
    """The watch list refreshes incrementally; an address created after the last full read is
    found before the block that pays it is read."""
    mine(chain)
    catch_up(started)               # the list was read (empty)
    to = fresh()
    watch(deps, to, required=1)
    tx = pay_eth(chain, to, 99)
    catch_up(started)
    assert transfer_id("anvil", tx, -1) in transfers(deps)


# --- RPC failover -------------------------------------------------------------------------------

class _Proxy(http.server.BaseHTTPRequestHandler):
    """A switchable loopback hop in front of anvil (an RPC provider that goes down)."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.down:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = urllib.request.Request(self.server.target, data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            data = resp.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def proxy(chain):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    srv.target, srv.down = chain.rpc_url, False
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_failover_from_a_dead_endpoint_to_the_next(deps, chain):
    from infra.local.stack import free_port

    dead = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY"
    to = fresh()
    watch(deps, to, required=1)
    w = Watcher(deps, network(chain, [dead, chain.rpc_url]), settings=fast(rpc_cooldown_s=30),
                owner="fo")
    assert w.acquire()
    tx = pay_eth(chain, to, 3)
    catch_up(w)
    assert transfers(deps)[transfer_id("anvil", tx, -1)]["status"] == "confirmed"
    w.rpc.flush_health(deps.db)
    h0 = deps.db.collection("chain_rpc_health").document("anvil:0").get().to_dict()
    h1 = deps.db.collection("chain_rpc_health").document("anvil:1").get().to_dict()
    assert h0["errors"] >= 1 and h0["healthy"] is False and h0["calls"] == 1   # benched after one
    assert h1["healthy"] is True and h1["latest_block"] == head(chain) and h1["calls"] > 2
    assert "SECRETKEY" not in h0["url"]


def test_provider_down_mid_run_fails_over_and_back(deps, chain, proxy):
    to = fresh()
    watch(deps, to, required=1)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    w = Watcher(deps, network(chain, [url, chain.rpc_url]), settings=fast(rpc_cooldown_s=0.2),
                owner="p")
    assert w.acquire()
    proxy.down = True
    tx1 = pay_eth(chain, to, 1)
    catch_up(w)
    proxy.down = False
    time.sleep(0.3)
    tx2 = pay_eth(chain, to, 2)
    catch_up(w)
    assert {transfer_id("anvil", tx1, -1), transfer_id("anvil", tx2, -1)} == set(transfers(deps))
    assert w.rpc.endpoints[0].errors >= 1 and w.rpc.endpoints[0].consecutive_errors == 0


def test_every_endpoint_down_then_catch_up_missing_nothing(deps, chain, proxy):
    to = fresh()
    watch(deps, to, required=1)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    w = Watcher(deps, network(chain, [url]), settings=fast(rpc_cooldown_s=0.1), owner="down")
    thread = threading.Thread(target=w.run, kwargs={"seconds": 4})
    thread.start()
    try:
        time.sleep(0.5)
        proxy.down = True
        txs = [pay_eth(chain, to, 10 + i) for i in range(3)]
        time.sleep(1.5)
        assert transfers(deps) == {}
        proxy.down = False
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and len(transfers(deps)) < 3:
            time.sleep(0.05)
    finally:
        thread.join()
    assert set(transfers(deps)) == {transfer_id("anvil", t, -1) for t in txs}
    assert w.stats.rpc_errors >= 1 and w.stats.stopped == "deadline"


# --- scale: RPC calls per block ----------------------------------------------------------------

def test_a_thousand_watched_addresses_cost_a_bounded_number_of_rpc_calls(deps, chain, started):
    addresses = [fresh() for _ in range(1000)]
    batch = deps.db.batch()
    now = deps.clock.now()
    for i, a in enumerate(addresses):
        token = chain.tokens["USDC"] if i % 2 else None
        batch.set(deps.db.collection(DEPOSITS).document(doc_id("anvil", a)), {
            "network": "anvil", "chain_id": 31337, "address": a, "asset": "USDC" if token else "ETH",
            "token": token, "tenant": TENANT, "livemode": False, "intent_id": f"pi_{i}",
            "required_confirmations": 1, "watch_until": now + dt.timedelta(hours=1), "created_at": now})
        if i % 400 == 399:
            batch.commit()
            batch = deps.db.batch()
    batch.commit()
    paid = [addresses[0], addresses[1], addresses[501], addresses[998], addresses[999]]
    mine(chain)
    catch_up(started)   # loads the list
    before = dict(started.rpc.counters)
    blocks_before = started.stats.blocks
    rpc(chain.rpc_url, "evm_setAutomine", False)
    try:
        for a in paid:
            if addresses.index(a) % 2:
                pay_token(chain, "USDC", a, 100)
            else:
                pay_eth(chain, a, 100)
        mine(chain)
    finally:
        rpc(chain.rpc_url, "evm_setAutomine", True)
    mine(chain, 4)   # five blocks, the first one carrying five payments
    t0 = time.monotonic()
    catch_up(started)
    elapsed = time.monotonic() - t0
    blocks = started.stats.blocks - blocks_before
    http_calls = started.rpc.counters["http_calls"] - before["http_calls"]
    rpc_requests = started.rpc.counters["rpc_requests"] - before["rpc_requests"]
    assert len(transfers(deps)) == 5
    assert blocks == 5
    # one step for all five blocks: latest header, one batch (5 blocks + 2 getLogs), receipts
    # for the 3 native payments, and the final latest-header poll that finds nothing new
    assert http_calls <= 4, http_calls
    assert rpc_requests <= 1 + 5 + 2 + 3 + 1, rpc_requests
    print(f"\n1000 watched: {blocks} blocks, {http_calls} HTTP calls, {rpc_requests} JSON-RPC "
          f"requests, {elapsed * 1000:.0f} ms to record 5 transfers")


def test_block_by_block_costs_two_http_calls_per_block(deps, chain, started):
    watch(deps, fresh(), asset="USDC", token=chain.tokens["USDC"], required=1)
    mine(chain)
    catch_up(started)
    before = dict(started.rpc.counters)
    for _ in range(5):
        mine(chain)
        assert started.step() is False   # caught up after the block
    used = started.rpc.counters["http_calls"] - before["http_calls"]
    assert used == 10, used   # per block: latest header + (block, getLogs) batch
