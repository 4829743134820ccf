"""What to sweep from one custodial deposit address, decided from its balances (pure).

Rules (ADR 0038):
- Only money at the network's FINAL block (``min(head, watcher cursor) − reorg_depth``) is
  swept: a payment in a newer block may still be reorged away.
- One transaction per address and batch: tokens first (asset order), the ether last. An address
  holding two assets is swept over two batches; its queue entry stays due (``remaining``).
- A token transfer needs gas: the address's own ether pays first, the hot wallet tops up exactly
  the rest (``gas.top_up``). Ether sent with a token sweep's gas headroom and not used stays on
  the address; the next sweep of the address uses it before asking for a top-up.
- Ether is swept as ``balance − 21,000 × maxFeePerGas``; the part of the gas reservation the
  transaction does not spend (``maxFee − effective price``) stays on the address (recorded
  exactly from the receipt; it is only worth sweeping once it exceeds the gas it would cost).
- Dust: a token below its ``min_sweep``; ether whose swept value would be below ``min_sweep`` or
  below the gas it costs. Dust stays where it is (reconciliation keeps explaining it).
- A token sweep runs as soon as its money is final, even while the watcher still follows the
  address: its top-up is plain ether FROM the hot wallet, which the watcher does not take for a
  payment (``shared.chain.watcher``: a hot wallet's own transfers are not payments).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from eth_utils import to_checksum_address

from shared.chain import tokens
from shared.chain.networks import Network
from shared.custody.gas import ETH_TRANSFER_GAS, Fees, token_gas_limit, top_up


@dataclasses.dataclass(frozen=True)
class Holding:
    """A custodial deposit address and what it holds at the final block (base units)."""
    address: str
    index: int
    balances: dict[str, int]
    nonce: int = 0


@dataclasses.dataclass(frozen=True)
class Plan:
    """One transaction out of a deposit address (and the top-up it needs first)."""
    address: str
    index: int
    asset: str
    token: str | None
    amount: int            # base units of ``asset`` that reach the hot wallet
    to: str                # the transaction's ``to``: the hot wallet, or the token contract
    value: int             # wei sent (0 for a token)
    data: str
    gas: int
    top_up: int            # wei the hot wallet sends first (0: the address pays its own gas)
    remaining: bool        # another asset is left to sweep in a later batch


@dataclasses.dataclass(frozen=True)
class Decision:
    address: str
    plan: Plan | None
    reason: str            # planned | dust | hot_wallet_underfunded | estimate_failed | empty
    defer_until: dt.datetime | None = None


def token_candidate(h: Holding, network: Network) -> str | None:
    """The token this batch would sweep from ``h`` (first in asset order above its minimum)."""
    rules = network.custody_rules
    for asset in sorted(network.tokens):
        bal = int(h.balances.get(asset, 0))
        if bal > 0 and bal >= rules.min_sweep_of(asset):
            return asset
    return None


def eth_sweepable(balance: int, fees: Fees, minimum: int) -> int:
    """Wei an ether sweep of ``balance`` would move (0 when it is dust)."""
    cost = ETH_TRANSFER_GAS * fees.max_fee
    value = int(balance) - cost
    return value if value > 0 and value >= max(minimum, cost) else 0


def decide(h: Holding, network: Network, fees: Fees, hot: str, *, token_gas: int | None) -> Decision:
    """The sweep of ``h`` this batch (``token_gas``: the node's estimate for the candidate
    token's transfer, None when there is no candidate)."""
    rules = network.custody_rules
    native = network.native_asset
    eth = int(h.balances.get(native, 0))
    asset = token_candidate(h, network)
    if asset is not None and token_gas is not None:
        amount = int(h.balances[asset])
        gas = token_gas_limit(token_gas)
        need = top_up(gas, fees.max_fee, eth)
        others = [a for a in network.tokens if a != asset
                  and int(h.balances.get(a, 0)) >= max(1, rules.min_sweep_of(a))]
        eth_after = eth + need - gas * fees.max_fee
        token = network.tokens[asset]
        plan = Plan(h.address, h.index, asset, token, amount, token, 0,
                    "0x" + tokens.encode_transfer_call(hot, amount).hex(), gas, need,
                    bool(others) or bool(eth_sweepable(eth_after, fees, rules.min_sweep_of(native))))
        return Decision(h.address, plan, "planned")
    value = eth_sweepable(eth, fees, rules.min_sweep_of(native))
    if value:
        plan = Plan(h.address, h.index, native, None, value, to_checksum_address(hot), value,
                    "0x", ETH_TRANSFER_GAS, 0, False)
        return Decision(h.address, plan, "planned")
    return Decision(h.address, None, "dust" if eth or any(h.balances.values()) else "empty")


def fund(decisions: list[Decision], hot_eth: int, fees: Fees, *, reserve: int,
         retry_at: dt.datetime) -> tuple[list[Decision], int]:
    """Keep the top-ups the hot wallet can pay (each costs its value plus a 21,000-gas
    transfer) after ``reserve``; later ones wait (``hot_wallet_underfunded``). Returns the
    decisions and the wei the kept top-ups take."""
    budget = int(hot_eth) - int(reserve)
    out, spent = [], 0
    for d in decisions:
        if d.plan is None or not d.plan.top_up:
            out.append(d)
            continue
        cost = d.plan.top_up + ETH_TRANSFER_GAS * fees.max_fee
        if spent + cost > budget:
            out.append(Decision(d.address, None, "hot_wallet_underfunded", defer_until=retry_at))
            continue
        spent += cost
        out.append(d)
    return out, spent
