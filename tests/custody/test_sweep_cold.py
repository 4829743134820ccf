"""The hot wallet's cap and its neighbours on a real anvil: the excess over the cap goes to the
cold address (down to the target, one transfer per asset at a time, tracked to finality, gas
booked); a crypto refund signed at the same moment as a batch's top-ups never shares their
nonce; a token sweep stuck with too low a fee gets exactly the extra gas it needs before its
replacement goes out, and reconciliation still explains every unit."""
from __future__ import annotations

import datetime as dt
import threading

from eth_account import Account

from shared.custody import sweep_poll
from shared.custody import sweep_records as R
from shared.custody.sweep_settings import SweepSettings
from shared.platform.auth import Principal
from shared.platform.ids import new_id
from shared.platform.uow import run_unit
from shared.refunds import crypto, hot_wallet
from shared.refunds import service as refunds
from shared.refunds.models import CreateRefund
from shared.reports import reconcile
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.custody.test_sweeps import (  # noqa: F401  (the custody fixture and its helpers)
    GWEI,
    assert_ledger_clean,
    custody,
    custody_network,
    fees_booked,
    mining_paused,
    receipt,
)
from tests.refunds.test_crypto_refunds import eth_balance, fund_hot, rpc, token_balance


def test_over_the_cap_the_excess_goes_to_cold_once(custody, chain):  # noqa: F811
    c = custody
    cold = Account.create().address
    c.use(custody_network(chain, {"cold_address": cold,
                                  "hot_caps": {"ETH": "1", "USDC": "100.00"}}))
    fund_hot(chain, c.hot, eth=3 * 10**18, asset="USDC", amount=500 * 10**6)
    with mining_paused(chain):
        run = c.sweep("cap")
        rpc(chain, "evm_mine")
    assert (run.planned, run.cold_transfers) == (0, 2)
    recs = {r["asset"]: r for r in c.records()}
    assert {r["kind"] for r in recs.values()} == {R.COLD}
    assert recs["USDC"]["amount"] == str(420 * 10**6)          # down to the target: 80% of 100
    assert recs["USDC"]["to"] == cold and recs["ETH"]["to"] == cold
    nonces = sorted(r["tx"]["nonce"] for r in recs.values())
    assert nonces == [0, 1]                                    # consecutive, sent together:
    blocks = {receipt(chain, R.latest(r["tx"])["hash"])["blockNumber"] for r in recs.values()}
    assert len(blocks) == 1
    # in flight: the next run does not send the excess again
    assert c.sweep("cap-again").cold_transfers == 0
    [batch] = run.batches
    c.drive(batch)
    recs = {r["asset"]: r for r in c.records()}
    assert all(r["status"] == R.SUCCEEDED for r in recs.values())
    assert token_balance(chain, "USDC", cold) == 420 * 10**6
    assert token_balance(chain, "USDC", c.hot) == 80 * 10**6
    assert eth_balance(chain, cold) == int(recs["ETH"]["amount"])
    hot_left = eth_balance(chain, c.hot)
    assert 8 * 10**17 <= hot_left <= 10**18                      # at least the target, under the cap
    assert fees_booked(c.deps) == sum(int(r["fee"]) // GWEI for r in recs.values())
    assert c.events() == ["custody.cold_transfer.succeeded"] * 2
    assert c.sweep("cap-done").cold_transfers == 0              # at the target now
    cursor = c.deps.db.collection(R.CURSORS).document("anvil").get().to_dict()
    assert cursor["cold_in_flight"] == {}
    assert_ledger_clean(c.deps)


def test_a_refund_signed_with_the_top_ups_never_shares_a_nonce(custody, chain):  # noqa: F811
    c = custody
    fund_hot(chain, c.hot, eth=10**18)
    payers = [c.pay_usdc(5_000_000 + i, sender=6 + i) for i in range(2)]
    pi_eth, _ = c.pay_eth(400_000_000, sender=8)
    c.shop.sync()                              # the watcher sees the payments, then time passes
    for _, u in payers:
        c.close_window(u["address"])
    c.final()
    pi = c.shop.doc(pi_eth)
    principal = Principal(kind="api_key", id=new_id("key"), tenant_id=c.shop.id,
                          scopes=frozenset({"*"}), livemode=False)
    refund = run_unit(c.deps, lambda uow: refunds.create(uow, principal, CreateRefund(
        payment_intent=pi["id"], amount=100_000_000, address=chain.accounts[9].address), "r1"))
    outcomes: dict[str, object] = {}
    start = threading.Barrier(2)

    def refund_send():
        start.wait()
        outcomes["refund"] = crypto.send(c.deps, refund.id)

    def sweeper():
        start.wait()
        outcomes["sweep"] = c.sweep("together")

    threads = [threading.Thread(target=refund_send), threading.Thread(target=sweeper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes["refund"] == "sent" and outcomes["sweep"].planned == 3, outcomes
    sent = c.deps.db.collection("refunds").document(refund.id).get().to_dict()["chain"]
    ups = [R.latest(t) | {"nonce": t["nonce"]} for r in c.records() for t in r["top_ups"]]
    assert len(ups) == 2
    hot_nonces = sorted([sent["nonce"], *(u["nonce"] for u in ups)])
    assert hot_nonces == [0, 1, 2]                                # three distinct, no gap
    stored = c.deps.db.collection("chain_nonces").document(f"anvil:{c.hot.lower()}").get().to_dict()
    assert stored["next"] == 3
    for h in [sent["hash"], *(u["hash"] for u in ups)]:
        assert receipt(chain, h)["status"] == "0x1"
    c.drive(*outcomes["sweep"].batches)
    assert all(r["status"] == R.SUCCEEDED for r in c.records())
    assert token_balance(chain, "USDC", c.hot) == 10_000_001


def test_a_stuck_token_sweep_gets_the_extra_gas_first(custody, chain):  # noqa: F811
    c = custody
    fund_hot(chain, c.hot, eth=10**18)
    _, u = c.pay_usdc(7_000_000)
    c.shop.sync()
    c.close_window(u["address"])
    c.final()
    [batch] = c.sweep("token-stuck").batches                  # the top-up is mined at once
    with mining_paused(chain):
        assert sweep_poll.poll(c.deps, batch) == "pending"      # so the transfer is sent
        r = c.record(u["address"])
        assert r["status"] == R.SENDING and receipt(chain, R.latest(r["tx"])["hash"]) is None
        rpc(chain, "anvil_dropTransaction", R.latest(r["tx"])["hash"])   # stuck: never mined
        c.deps.extras["custody.sweep_settings"] = SweepSettings(bump_after=dt.timedelta(0))
        assert sweep_poll.poll(c.deps, batch) == "pending"
        r = c.record(u["address"])
        old, new = r["tx"]["attempts"]
        first, extra = r["top_ups"]
        assert r["status"] == R.FUNDING and r["tx"]["bumps"] == 1
        # exactly the larger gas reservation, from the hot wallet's next nonce
        assert int(R.latest(extra)["value"]) == r["tx"]["gas"] * (
            int(new["max_fee_per_gas"]) - int(old["max_fee_per_gas"]))
        assert extra["nonce"] == first["nonce"] + 1
        rpc(chain, "evm_mine")                                    # the extra top-up lands
        c.deps.extras["custody.sweep_settings"] = SweepSettings()
        assert sweep_poll.poll(c.deps, batch) == "pending"       # now the replacement goes out
        assert c.record(u["address"])["status"] == R.SENDING
        rpc(chain, "evm_mine")
    c.drive(batch)
    r = c.record(u["address"])
    assert r["status"] == R.SUCCEEDED and r["tx"]["mined"]["hash"] == new["hash"]
    assert token_balance(chain, "USDC", c.hot) == 7_000_000
    assert eth_balance(chain, u["address"]) == sum(
        int(R.latest(t)["value"]) for t in r["top_ups"]) - int(r["tx"]["mined"]["fee"])
    c.shop.sync()
    assert reconcile.run_network(c.deps, c.net, run_key="token-bump").discrepancies == 0
    assert fees_booked(c.deps) == int(r["fee"]) // GWEI
    assert_ledger_clean(c.deps)


def test_the_hot_wallet_key_is_the_refunds_one(custody):  # noqa: F811
    """Sweeps fill the very wallet refunds spend from (ADR 0035's account 1, index 0)."""
    assert hot_wallet.hot_address(custody.deps, livemode=False) == custody.hot
