"""Sweeps on a real anvil, with payments made through the real flow (crypto chosen over HTTP,
paid on chain, the watcher, the payments consumer, the ledger): final deposits of custodial
addresses reach the hot wallet as soon as they are final (tokens with a gas top-up of exactly
what is missing, which the watcher does not take for a payment), in type-2 transactions; nothing moves before
finality or from a merchant's xpub address; gas is booked once; reconciliation stays exact
and still finds a spend no sweep explains."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json

import pytest
from google.cloud import firestore

from shared.chain import hd, payment_uri
from shared.chain.networks import ChainNetworks, Network, load_networks
from shared.custody import sweep_ledger, sweep_poll, sweeps
from shared.custody import sweep_records as R
from shared.custody.gas import ETH_TRANSFER_GAS
from shared.custody.sweep_settings import SweepSettings
from shared.ledger import accounts, audit
from shared.platform.outbox import COLLECTION as EVENTS
from shared.refunds import hot_wallet
from shared.reports import reconcile
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.payments.test_crypto_flow import Shop
from tests.refunds.test_crypto_refunds import eth_balance, fund_hot, rpc, token_balance

REORG = 2                                    # this test network's finality depth
GWEI = 10**9
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def custody_network(chain, custody=None, reorg_depth=REORG) -> Network:  # noqa: F811
    raw = json.loads(chain.networks_env)[0]
    raw.update(reorg_depth=reorg_depth, custody=custody)
    return load_networks(env={"PAYLOOM_CHAIN_NETWORKS": json.dumps([raw])}).networks[0]


@dataclasses.dataclass
class Custody:
    """A custodial shop (no xpub) on the module's anvil, the custody network and the hot wallet."""
    deps: object
    chain: object
    shop: Shop
    net: Network
    hot: str

    def use(self, net: Network) -> None:
        self.net = net
        self.deps.extras["chain.networks"] = ChainNetworks(networks=(net,))

    # --- payments ---------------------------------------------------------------------------
    def pay_eth(self, gwei: int, sender: int = 5):
        pi, secret = self.shop.intent(gwei)
        c = self.shop.choose(pi, secret)["crypto"]
        self.shop.pay(c["uri"], sender=sender)
        return pi, c

    def pay_usdc(self, units: int, sender: int = 6):
        w = self.chain.accounts[sender].address
        self.shop.pay(payment_uri.erc20_uri(self.chain.tokens["USDC"], w, self.chain.chain_id,
                                            units), sender=0)            # fund the payer
        pi, secret = self.shop.intent(units, currency="USDC")
        c = self.shop.choose(pi, secret, asset="USDC")["crypto"]
        self.shop.pay(c["uri"], sender=sender)
        return pi, c

    def close_window(self, address: str) -> None:
        """Time passes: the address's watch window is over, the watcher has dropped it, and a
        sweep deferred until then is due."""
        self.deps.db.collection("deposit_addresses").document(
            f"anvil:{address.lower()}").update({"watch_until": LONG_AGO})
        self.shop.watcher.watch._full_at = None
        queued = self.deps.db.collection(R.QUEUE).document(R.queue_id("anvil", address))
        if queued.get().exists:
            queued.update({"watch_until": LONG_AGO, "due_at": LONG_AGO})

    def final(self) -> None:
        self.shop.mine(REORG + 1)
        self.shop.sync()

    # --- sweeping -------------------------------------------------------------------------------
    def sweep(self, key: str):
        return sweeps.run(self.deps, self.net, run_key=key)

    def drive(self, *batches: str, rounds: int = 20) -> None:
        """Poll the batches, mining a block between polls, until every one is done."""
        for _ in range(rounds):
            outcomes = [sweep_poll.poll(self.deps, b) for b in batches]
            if all(o == "done" for o in outcomes):
                return
            self.shop.mine(1)
        raise AssertionError(f"batches not done: {outcomes}")

    def records(self) -> list[dict]:
        return [s.to_dict() for s in self.deps.db.collection(R.SWEEPS).stream()]

    def record(self, address: str) -> dict:
        [doc] = [r for r in self.records() if r["from"].lower() == address.lower()]
        return doc

    def events(self, prefix: str = "custody.") -> list[str]:
        return sorted(e.to_dict()["type"] for e in self.deps.db.collection(EVENTS).stream()
                      if e.to_dict()["type"].startswith(prefix))


@pytest.fixture
def custody(deps, chain, function_client):  # noqa: F811
    shop = Shop(deps, chain, function_client("payments"), xpub=False)
    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    hot = seed.tree(account=hot_wallet.HOT_ACCOUNT).address(hot_wallet.HOT_INDEX)
    deps.extras["custody.sweep_settings"] = SweepSettings()
    env = Custody(deps, chain, shop, custody_network(chain), hot)
    env.use(env.net)
    return env


@contextlib.contextmanager
def mining_paused(chain):  # noqa: F811
    """Blocks only when the test mines one (``evm_mine``): transactions wait in the pool."""
    rpc(chain, "evm_setAutomine", False)
    try:
        yield
    finally:
        rpc(chain, "evm_setAutomine", True)


def tx_of(chain, tx_hash):  # noqa: F811
    return rpc(chain, "eth_getTransactionByHash", tx_hash)


def receipt(chain, tx_hash):  # noqa: F811
    return rpc(chain, "eth_getTransactionReceipt", tx_hash)


def fees_booked(deps) -> int:
    acc = accounts.system_account_id("network_fees", "ETH", "test")
    got = accounts.read_balances(deps.db, [acc])
    return got[acc][1].debits_posted if acc in got else 0


def assert_ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def test_final_deposits_reach_the_hot_wallet_with_exact_top_ups(custody, chain):  # noqa: F811
    c = custody
    fund_hot(chain, c.hot, eth=10**18)
    hot_eth = eth_balance(chain, c.hot)
    pi_usdc, usdc = c.pay_usdc(25_000_000)                     # 25 USDC
    pi_eth, eth = c.pay_eth(500_000_000)                       # 0.5 ETH, in the newest block
    c.shop.sync()
    assert c.shop.doc(pi_eth)["status"] == "succeeded" and c.shop.doc(pi_usdc)["status"] == "succeeded"

    early = c.sweep("early")                                   # paid, but not final yet
    assert (early.discovered, early.planned, early.batches) == (0, 0, [])
    assert c.records() == []

    c.final()
    first = c.sweep("r1")
    # both sweep as soon as the money is final, the token one while its address is still
    # watched: its gas top-up comes from the hot wallet, which the watcher does not take for
    # a payment (before, it waited for the watch window to close)
    assert (first.discovered, first.planned, first.deferred) == (2, 2, {})
    e = c.record(eth["address"])
    assert e["status"] == R.SENDING and e["asset"] == "ETH" and e["top_ups"] == []
    signed = R.latest(e["tx"])
    assert int(signed["value"]) == 5 * 10**17 - ETH_TRANSFER_GAS * int(signed["max_fee_per_gas"])
    assert tx_of(chain, signed["hash"])["type"] == "0x2"

    u = c.record(usdc["address"])
    assert u["status"] == R.FUNDING and u["asset"] == "USDC" and u["amount"] == "25000000"
    [up] = u["top_ups"]
    # the deposit address held no ether: the top-up is exactly gas limit × maxFeePerGas
    assert int(R.latest(up)["value"]) == u["tx"]["gas"] * int(R.latest(u["tx"])["max_fee_per_gas"])
    assert up["sender"] == c.hot and tx_of(chain, R.latest(up)["hash"])["type"] == "0x2"
    assert receipt(chain, R.latest(u["tx"])["hash"]) is None   # sent once the top-up is mined
    window = c.deps.db.collection("deposit_addresses").document(
        f"anvil:{usdc['address'].lower()}").get().to_dict()["watch_until"]
    assert window > c.deps.clock.now()                        # the window is still open
    c.drive(*first.batches)
    e, u = c.record(eth["address"]), c.record(usdc["address"])
    assert e["status"] == u["status"] == R.SUCCEEDED
    assert tx_of(chain, u["tx"]["mined"]["hash"])["type"] == "0x2"
    # on chain: the money is in the hot wallet; the addresses keep only the unspent gas
    assert token_balance(chain, "USDC", c.hot) == 25_000_000
    assert token_balance(chain, "USDC", usdc["address"]) == 0
    eth_value = int(e["tx"]["mined"]["value"])
    assert e["amount"] == str(eth_value)
    assert eth_balance(chain, eth["address"]) == 5 * 10**17 - eth_value - int(e["tx"]["mined"]["fee"])
    top = int(up["attempts"][0]["value"])
    assert eth_balance(chain, usdc["address"]) == top - int(u["tx"]["mined"]["fee"])
    assert eth_balance(chain, c.hot) == hot_eth + eth_value - top - int(u["top_ups"][0]["mined"]["fee"])

    # gas booked once, network_fees → external, in gwei; the sub-gwei rest kept on the record
    for r in (e, u):
        assert int(r["fee"]) == sum(int(o["mined"]["fee"]) for o in R.all_outgoing(r))
        assert r["ledger_transfer"] == sweep_ledger.fee_transfer_id(r["id"])
    assert fees_booked(c.deps) == sum(int(r["fee"]) // GWEI for r in (e, u))
    assert c.events() == ["custody.sweep.succeeded", "custody.sweep.succeeded"]
    for b in first.batches:
        assert sweep_poll.poll(c.deps, b) == "done"
    assert fees_booked(c.deps) == sum(int(r["fee"]) // GWEI for r in (e, u))
    assert_ledger_clean(c.deps)
    assert c.deps.db.collection(R.QUEUE).get() == []          # nothing left to sweep

    # the top-up, mined inside the watch window, was never taken for a payment: no transfer
    # recorded, no receipt, no event; reconciliation explains every unit
    c.shop.sync()
    assert c.shop.watcher.stats.own == 1
    seen = c.deps.db.collection("chain_transfers").where(
        filter=firestore.FieldFilter("to", "==", usdc["address"].lower())).get()
    assert len(seen) == 1 and not (c.shop.doc(pi_usdc)["crypto"].get("unmatched") or [])
    receipts = c.deps.db.collection("crypto_receipts").where(
        filter=firestore.FieldFilter("intent_id", "==", pi_usdc)).get()
    assert [r.to_dict()["tx_hash"] for r in receipts] == [seen[0].to_dict()["tx_hash"]]
    assert c.events("payment_intent.payment_unmatched") == []
    run = reconcile.run_network(c.deps, c.net, run_key="after-sweeps")
    assert run.status == "completed" and run.discrepancies == 0, c.deps.db.collection(
        reconcile.RUNS).document(reconcile.run_id("anvil", "after-sweeps")).get().to_dict()["items"]

    # a transaction from a custodial address that no sweep explains is still custody_spent
    key = hd.load_custodial_seed(c.deps).tree().private_key(usdc["derivation"]["index"])
    from tests.reports.test_reconciliation import spend_from
    rpc(chain, "anvil_setBalance", usdc["address"], hex(eth_balance(chain, usdc["address"]) + 10**18))
    spend_from(c.shop, key, usdc["address"], 10**15)
    c.shop.mine(1)
    c.shop.sync()
    run = reconcile.run_network(c.deps, c.net, run_key="spent")
    items = c.deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "spent")).get().to_dict()["items"]
    assert [(i["address"], i["asset"], i["kind"]) for i in items] == \
        [(usdc["address"], "ETH", "custody_spent")]


def test_xpub_addresses_are_never_swept(deps, chain, function_client):  # noqa: F811
    shop = Shop(deps, chain, function_client("payments"))     # the merchant's own xpub
    hd.provision_custodial_seed(deps, livemode=False)
    net = custody_network(chain)
    deps.extras["chain.networks"] = ChainNetworks(networks=(net,))
    pi, secret = shop.intent(100_000_000)
    c = shop.choose(pi, secret)["crypto"]
    assert c["derivation"]["tree"] == "xpub"
    shop.pay(c["uri"], sender=7)
    shop.mine(REORG + 1)
    shop.sync()
    run = sweeps.run(deps, net, run_key="xpub")
    assert (run.status, run.discovered, run.planned) == ("completed", 0, 0)
    assert deps.db.collection(R.QUEUE).get() == [] and deps.db.collection(R.SWEEPS).get() == []
    assert eth_balance(chain, c["address"]) == 10**17


def test_a_crash_after_commit_and_duplicate_deliveries_move_money_once(custody, chain,  # noqa: F811
                                                                        monkeypatch):
    c = custody
    _, eth = c.pay_eth(200_000_000)
    c.final()

    def crash(*_a, **_k):
        raise RuntimeError("the process died right after the commit")
    monkeypatch.setattr(sweeps, "broadcast_many", crash)
    with pytest.raises(RuntimeError):
        c.sweep("crash")
    monkeypatch.undo()
    r = c.record(eth["address"])
    stored = R.latest(r["tx"])
    assert receipt(chain, stored["hash"]) is None and eth_balance(chain, eth["address"]) == 2 * 10**17
    # the Scheduler delivers the run again, then the next run comes: nothing is planned twice
    again = c.sweep("crash")
    later = c.sweep("later")
    assert again.planned == later.planned == 0 and len(c.records()) == 1
    [batch] = {d["batch_id"] for d in c.records()}
    # the poll sends the SAME bytes; duplicate deliveries change nothing
    assert sweep_poll.poll(c.deps, batch) == "pending"
    assert sweep_poll.poll(c.deps, batch) == "pending"
    assert receipt(chain, stored["hash"])["status"] == "0x1"
    c.drive(batch)
    done = c.record(eth["address"])
    assert done["status"] == R.SUCCEEDED and done["tx"]["mined"]["hash"] == stored["hash"]
    assert len(done["tx"]["attempts"]) == 1
    assert eth_balance(chain, eth["address"]) == 2 * 10**17 - int(stored["value"]) - int(done["fee"])
    assert fees_booked(c.deps) == int(done["fee"]) // GWEI
    assert c.events() == ["custody.sweep.succeeded"]
    assert_ledger_clean(c.deps)


def test_a_stuck_sweep_is_replaced_with_a_higher_fee(custody, chain):  # noqa: F811
    c = custody
    _, eth = c.pay_eth(300_000_000)
    c.final()
    with mining_paused(chain):
        run = c.sweep("stuck")
        [batch] = run.batches
        first = R.latest(c.record(eth["address"])["tx"])
        assert tx_of(chain, first["hash"])["blockNumber"] is None     # waiting in the pool
        assert sweep_poll.poll(c.deps, batch) == "pending"              # not overdue: same bytes
        assert len(c.record(eth["address"])["tx"]["attempts"]) == 1
        c.deps.extras["custody.sweep_settings"] = SweepSettings(bump_after=dt.timedelta(0))
        assert sweep_poll.poll(c.deps, batch) == "pending"
        r = c.record(eth["address"])
        old, new = r["tx"]["attempts"]
        assert r["tx"]["bumps"] == 1 and r["status"] == R.SENDING
        assert int(new["max_fee_per_gas"]) * 8 >= int(old["max_fee_per_gas"]) * 9
        assert int(new["max_priority_fee_per_gas"]) * 8 >= int(old["max_priority_fee_per_gas"]) * 9
        extra = r["tx"]["gas"] * (int(new["max_fee_per_gas"]) - int(old["max_fee_per_gas"]))
        assert int(new["value"]) == int(old["value"]) - extra       # the sweep pays its own bump
        assert int(tx_of(chain, new["hash"])["nonce"], 16) == r["tx"]["nonce"]
        rpc(chain, "evm_mine")
    c.deps.extras["custody.sweep_settings"] = SweepSettings()
    c.drive(batch)
    r = c.record(eth["address"])
    assert r["status"] == R.SUCCEEDED and r["tx"]["mined"]["hash"] == new["hash"]
    assert receipt(chain, old["hash"]) is None and r["amount"] == new["value"]
    assert eth_balance(chain, eth["address"]) == 3 * 10**17 - int(new["value"]) - int(r["fee"])
    run = reconcile.run_network(c.deps, c.net, run_key="bumped")
    assert run.discrepancies == 0


def test_a_dropped_transaction_is_sent_again_with_the_same_bytes(custody, chain):  # noqa: F811
    c = custody
    _, eth = c.pay_eth(100_000_000)
    c.final()
    with mining_paused(chain):
        [batch] = c.sweep("drop").batches
        signed = R.latest(c.record(eth["address"])["tx"])
        rpc(chain, "anvil_dropTransaction", signed["hash"])
        assert tx_of(chain, signed["hash"]) is None
        assert sweep_poll.poll(c.deps, batch) == "pending"
        assert tx_of(chain, signed["hash"]) is not None              # back in the pool
        rpc(chain, "evm_mine")
    c.drive(batch)
    r = c.record(eth["address"])
    assert r["status"] == R.SUCCEEDED and r["tx"]["mined"]["hash"] == signed["hash"]


def test_a_sweep_whose_nonce_is_taken_fails_keeps_the_funds_and_alerts(custody, chain):  # noqa: F811
    c = custody
    c.deps.extras["custody.sweep_settings"] = SweepSettings(alert_after_failures=1)
    _, eth = c.pay_eth(100_000_000)
    c.final()
    key = hd.load_custodial_seed(c.deps).tree().private_key(eth["derivation"]["index"])
    with mining_paused(chain):
        [batch] = c.sweep("taken").batches
        signed = R.latest(c.record(eth["address"])["tx"])
        rpc(chain, "anvil_dropTransaction", signed["hash"])
        from eth_account import Account
        outside = Account.sign_transaction({
            "chainId": chain.chain_id, "nonce": 0, "to": chain.accounts[9].address, "value": 1,
            "gas": 21_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1, "type": 2}, key)
        rpc(chain, "eth_sendRawTransaction", "0x" + bytes(outside.raw_transaction).hex())
        rpc(chain, "evm_mine")
    assert sweep_poll.poll(c.deps, batch) == "done"
    r = c.record(eth["address"])
    assert (r["status"], r["failure_reason"], r["fee"], r["ledger_transfer"]) == \
        (R.FAILED, "nonce_replaced", "0", None)
    assert c.events() == ["custody.sweep.failed", "custody.sweep.repeatedly_failed"]
    q = c.deps.db.collection(R.QUEUE).document(R.queue_id("anvil", eth["address"])).get().to_dict()
    assert q["in_flight"] is None and q["failures"] == 1 and q["due_at"] > c.deps.clock.now()
    assert eth_balance(chain, eth["address"]) > 10**17 - 10**15      # still there, minus the spend
    assert fees_booked(c.deps) == 0
    c.shop.mine(1)
    c.shop.sync()
    run = reconcile.run_network(c.deps, c.net, run_key="taken")
    [item] = c.deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "taken")).get().to_dict()["items"]
    assert (item["address"], item["kind"]) == (eth["address"], "custody_spent")
    assert run.discrepancies == 1
