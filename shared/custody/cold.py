"""The hot wallet's cap: above it, the excess goes to the cold, watch-only address (pure).

Per network and asset the ``custody`` block names a cap; when the hot wallet's balance is over
it, one transfer brings the balance down to the TARGET (``cap × hot_target_bps / 10,000``,
80% by default) rather than to the cap itself: every sweep refills the hot wallet, and a target
at the cap would send a small transfer to cold after every batch (each one a fee and a cold
deposit to reconcile). Nothing ever comes back from cold through Payloom: it has no key there
(refilling the hot wallet is a custodians' action outside this system).

For the native asset the hot wallet's own needs come first: the top-ups and the transaction
fees of the same batch (``reserved``) and the cold transfer's own gas are taken off before the
excess is measured. A token transfer to cold costs ether gas, which must be available after the
batch's other spending. One cold transfer per asset is in flight at a time (see
``sweep_records``).
"""
from __future__ import annotations

import dataclasses

from eth_utils import to_checksum_address

from shared.chain import tokens
from shared.chain.networks import Network
from shared.custody.gas import ETH_TRANSFER_GAS, Fees, token_gas_limit


@dataclasses.dataclass(frozen=True)
class ColdPlan:
    asset: str
    token: str | None
    amount: int            # base units leaving the hot wallet for cold
    to: str                # the transaction's ``to``
    value: int
    data: str
    gas: int


def excess(balance: int, cap: int, target: int) -> int:
    """What to send to cold from ``balance`` (0 while at or under the cap)."""
    return int(balance) - int(target) if int(balance) > int(cap) else 0


def plan(network: Network, hot_balances: dict[str, int], fees: Fees, *, reserved: int,
         token_gas: dict[str, int], in_flight: set[str]) -> list[ColdPlan]:
    """Cold transfers for the assets over their cap (see the module doc). ``reserved``: wei the
    batch's top-ups and their gas take from the hot wallet first; ``token_gas``: the node's
    estimate of each token's transfer to cold."""
    rules = network.custody_rules
    if rules.cold_address is None:
        return []
    cold = to_checksum_address(rules.cold_address)
    native = network.native_asset
    eth_left = int(hot_balances.get(native, 0)) - int(reserved)
    out: list[ColdPlan] = []
    for asset in sorted(network.tokens):
        cap = rules.cap(asset)
        if cap is None or asset in in_flight or asset not in token_gas:
            continue
        amount = excess(hot_balances.get(asset, 0), cap, rules.target(asset))
        gas = token_gas_limit(token_gas[asset])
        if amount <= 0 or gas * fees.max_fee > eth_left:
            continue
        eth_left -= gas * fees.max_fee
        token = network.tokens[asset]
        out.append(ColdPlan(asset, token, amount, token, 0,
                            "0x" + tokens.encode_transfer_call(cold, amount).hex(), gas))
    cap = rules.cap(native)
    if cap is not None and native not in in_flight:
        amount = excess(eth_left - ETH_TRANSFER_GAS * fees.max_fee, cap, rules.target(native))
        if amount > 0:
            out.append(ColdPlan(native, None, amount, cold, amount, "0x", ETH_TRANSFER_GAS))
    return out


def over_cap(network: Network, asset: str, balance: int) -> bool:
    cap = network.custody_rules.cap(asset)
    return cap is not None and int(balance) > cap
