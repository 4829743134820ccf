"""Sweeping's rules, pure: the network's custody block, EIP-1559 fees and replacement bumps,
what one deposit address sweeps (tokens first, exact top-ups, dust, finality and the watch
window), what the hot wallet can fund, and the cap → cold rule (reconciliation's side: tests/reports/test_reconcile_rules.py)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from eth_account import Account
from pydantic import ValidationError

from infra.local.chain_setup import local_networks_env
from shared.chain.networks import ANVIL_TOKEN_ADDRESSES, load_networks
from shared.custody import cold, gas, sweep_plan

NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
HOT = "0x" + "aB" * 20
COLD = Account.create().address            # checksummed
GWEI = 10**9


def network(custody=None, reorg_depth=2):
    raw = json.loads(local_networks_env("http://127.0.0.1:8545", ANVIL_TOKEN_ADDRESSES,
                                        reorg_depth=reorg_depth))[0]
    raw["custody"] = custody
    return load_networks(env={"PAYLOOM_CHAIN_NETWORKS": json.dumps([raw])}).networks[0]


FEES = gas.Fees(base_fee=GWEI, tip=GWEI // 10)          # max fee 2.1 gwei


# --- the custody block ----------------------------------------------------------------------------
def test_custody_block_parses_amounts_at_the_asset_scale():
    net = network({"cold_address": COLD, "hot_caps": {"USDC": "50000.00", "ETH": "2.5"},
                   "min_sweep": {"USDC": "1", "ETH": "0.001"}, "hot_target_bps": 6000})
    rules = net.custody_rules
    assert rules.cap("USDC") == 50_000 * 10**6 and rules.cap("ETH") == 25 * 10**17
    assert rules.target("USDC") == 30_000 * 10**6 and rules.target("PPT") is None
    assert rules.min_sweep_of("USDC") == 10**6 and rules.min_sweep_of("ETH") == 10**15
    assert rules.min_sweep_of("PPT") == 0
    assert network().custody is None and network().custody_rules.cap("ETH") is None


@pytest.mark.parametrize("custody, fragment", [
    ({"cold_address": COLD.lower(), "hot_caps": {"USDC": "1"}}, "checksummed"),
    ({"cold_address": "0x" + "00" * 20}, "zero address"),
    ({"hot_caps": {"USDC": "1"}}, "need a cold_address"),
    ({"cold_address": COLD, "hot_caps": {"USDC": "1.0000001"}}, "decimal amount"),
    ({"cold_address": COLD, "hot_caps": {"USDC": "0"}}, "positive"),
    ({"cold_address": COLD, "hot_caps": {"USDC": "1e3"}}, "decimal amount"),
    ({"min_sweep": {"USD": "1"}}, "on-chain asset"),
    ({"cold_address": COLD, "hot_caps": {"BTC": "1"}}, "on-chain asset"),
    ({"cold_address": ANVIL_TOKEN_ADDRESSES["USDC"]}, "token contract"),
    ({"cold_address": COLD, "surprise": 1}, "Extra inputs"),
])
def test_a_bad_custody_block_fails_at_load_time(custody, fragment):
    with pytest.raises(ValidationError) as info:
        network(custody)
    assert fragment in str(info.value)


# --- fees -----------------------------------------------------------------------------------------
def test_fees_come_from_the_next_base_fee_and_the_node_tip():
    history = {"baseFeePerGas": [hex(7 * GWEI), hex(8 * GWEI)], "reward": [[hex(3)]]}
    assert gas.fees_from(history, hex(GWEI)) == gas.Fees(8 * GWEI, GWEI)
    assert gas.fees_from(history, None) == gas.Fees(8 * GWEI, 3)      # the block's median tip
    assert gas.Fees(8 * GWEI, GWEI).max_fee == 17 * GWEI


@pytest.mark.parametrize("old_max, old_tip", [(2 * GWEI, GWEI // 10), (10**9 + 1, 1), (7, 7)])
def test_a_replacement_raises_both_fees_by_at_least_an_eighth(old_max, old_tip):
    calm = gas.Fees(base_fee=1, tip=1)
    new_max, new_tip = gas.bumped(old_max, old_tip, calm)
    assert new_max * 8 >= old_max * 9 and new_tip * 8 >= old_tip * 9
    assert new_max > old_max and new_tip > old_tip and new_max >= new_tip
    busy = gas.Fees(base_fee=50 * GWEI, tip=3 * GWEI)               # the market moved up
    assert gas.bumped(old_max, old_tip, busy) == (max(-(-old_max * 9 // 8), busy.max_fee),
                                                  max(-(-old_tip * 9 // 8), busy.tip))


def test_top_up_is_exactly_the_missing_gas_and_fee_paid_is_exact():
    assert gas.top_up(60_000, 3 * GWEI, 0) == 180_000 * GWEI
    assert gas.top_up(60_000, 3 * GWEI, 100_000 * GWEI) == 80_000 * GWEI
    assert gas.top_up(60_000, 3 * GWEI, 10**18) == 0
    assert gas.fee_paid({"gasUsed": hex(21_000), "effectiveGasPrice": hex(1_234_567_891)}) == \
        21_000 * 1_234_567_891
    assert gas.token_gas_limit(51_555) == 64_443


# --- one address ------------------------------------------------------------------------------------
def holding(**balances):
    return sweep_plan.Holding(Account.create().address, 7, balances, nonce=0)


def decide(h, net=None, token_gas=51_555):
    return sweep_plan.decide(h, net or network(), FEES, HOT, token_gas=token_gas)


def test_ether_sweeps_the_balance_less_the_gas_reservation():
    d = decide(holding(ETH=10**18), token_gas=None)
    p = d.plan
    assert d.reason == "planned" and p.asset == "ETH" and p.token is None and p.top_up == 0
    assert p.value == p.amount == 10**18 - 21_000 * FEES.max_fee and p.gas == 21_000
    assert p.to.lower() == HOT.lower() and p.data == "0x"


def test_dust_and_ether_below_its_own_gas_stay():
    cost = 21_000 * FEES.max_fee
    assert decide(holding(ETH=2 * cost - 1), token_gas=None).reason == "dust"
    assert decide(holding(ETH=2 * cost), token_gas=None).plan.value == cost
    assert decide(holding(), token_gas=None).reason == "empty"
    net = network({"min_sweep": {"ETH": "0.01", "USDC": "5"}})
    assert decide(holding(ETH=10**16), net, token_gas=None).reason == "dust"   # 0.01 − gas
    assert sweep_plan.token_candidate(holding(USDC=4_999_999), net) is None
    assert sweep_plan.token_candidate(holding(USDC=5_000_000), net) == "USDC"


def test_a_token_sweep_gets_exactly_the_gas_it_lacks():
    d = decide(holding(USDC=25_000_000, ETH=10**12))
    p = d.plan
    limit = gas.token_gas_limit(51_555)
    assert p.asset == "USDC" and p.amount == 25_000_000 and p.value == 0 and p.gas == limit
    assert p.top_up == limit * FEES.max_fee - 10**12 and not p.remaining
    assert p.to == ANVIL_TOKEN_ADDRESSES["USDC"] and p.data.startswith("0xa9059cbb")
    # enough ether of its own: no top-up, and the rest of the ether is left for a later batch
    rich = decide(holding(USDC=1, PPT=5, ETH=10**18)).plan
    assert rich.asset == "PPT" and rich.top_up == 0 and rich.remaining    # asset order, then more


def test_a_token_sweep_with_a_top_up_is_planned_at_once():
    """The watcher does not take the hot wallet's top-up for a payment (ADR 0038), so a token
    sweep no longer waits for the address's watch window to close."""
    d = decide(holding(USDC=10))
    assert d.reason == "planned" and d.plan.top_up > 0 and d.defer_until is None


def test_the_hot_wallet_funds_top_ups_in_order_while_it_can():
    ds = [decide(holding(USDC=10)), decide(holding(ETH=10**18), token_gas=None),
          decide(holding(USDC=20))]
    each = ds[0].plan.top_up + 21_000 * FEES.max_fee
    kept, spent = sweep_plan.fund(ds, each + 1, FEES, reserve=0, retry_at=NOW)
    assert [d.reason for d in kept] == ["planned", "planned", "hot_wallet_underfunded"]
    assert spent == each and kept[2].defer_until == NOW


# --- the cap --------------------------------------------------------------------------------------
def test_over_the_cap_the_excess_goes_down_to_the_target():
    net = network({"cold_address": COLD, "hot_caps": {"USDC": "100", "ETH": "1"}})
    eth_cost = 21_000 * FEES.max_fee
    plans = {p.asset: p for p in cold.plan(net, {"USDC": 500 * 10**6, "ETH": 3 * 10**18}, FEES,
                                             reserved=10**17, token_gas={"USDC": 40_000},
                                             in_flight=set())}
    usdc = plans["USDC"]
    assert usdc.amount == 420 * 10**6 and usdc.value == 0 and usdc.to == net.tokens["USDC"]
    usdc_gas = gas.token_gas_limit(40_000) * FEES.max_fee
    assert plans["ETH"].amount == 3 * 10**18 - 10**17 - usdc_gas - eth_cost - 8 * 10**17
    assert plans["ETH"].to == COLD and plans["ETH"].value == plans["ETH"].amount
    # at the cap: nothing; in flight: nothing; no gas for the token transfer: nothing
    assert cold.plan(net, {"USDC": 100 * 10**6, "ETH": 10**18}, FEES, reserved=0,
                     token_gas={"USDC": 40_000}, in_flight=set()) == []
    assert cold.plan(net, {"USDC": 500 * 10**6, "ETH": 0}, FEES, reserved=0,
                     token_gas={"USDC": 40_000}, in_flight=set()) == []
    assert [p.asset for p in cold.plan(net, {"USDC": 500 * 10**6, "ETH": 3 * 10**18}, FEES,
                                       reserved=0, token_gas={"USDC": 1}, in_flight={"ETH"})] == ["USDC"]
    assert cold.plan(network(), {"ETH": 10**30}, FEES, reserved=0, token_gas={},
                     in_flight=set()) == []
