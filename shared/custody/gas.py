"""EIP-1559 fees for Payloom's own transactions: what to offer, what a top-up must cover, how
much a stuck transaction's replacement bumps, and what a mined one really cost.

Fee market: ``eth_feeHistory(1, latest, [50])`` gives the NEXT block's base fee (its last
``baseFeePerGas``) and the latest block's median tip; ``eth_maxPriorityFeePerGas`` is the node's
own tip suggestion and wins when it answers. The offer is ``maxFeePerGas = 2 × base + tip``
(refunds' rule, ``shared.refunds.crypto.max_fee``): it stays includable through six full blocks
of +12.5% base fee, and the sender pays only ``base + tip`` per gas (the rest is never charged).

Replacement (a transaction unmined after ``bump_after``): the same nonce with BOTH fees raised
by at least 12.5% (rounded up) and never below today's market. Geth and most nodes refuse a
replacement under +10% ("replacement transaction underpriced"); 12.5% clears that on every
client we know with one step, and repeated bumps compound.

Everything here is integers in wei (never floats) and pure.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from shared.refunds.crypto import max_fee

ETH_TRANSFER_GAS = 21_000              # an EOA-to-EOA ether transfer, exactly
BUMP_NUM, BUMP_DEN = 9, 8              # +12.5% per replacement


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(str(value or "0x0"), 16)


@dataclasses.dataclass(frozen=True)
class Fees:
    """The fee offer for the next block."""
    base_fee: int
    tip: int

    @property
    def max_fee(self) -> int:
        return max_fee(self.base_fee, self.tip)


def fee_calls() -> list[tuple[str, list[Any]]]:
    """The JSON-RPC calls that price the next block (ride in the caller's batch)."""
    return [("eth_feeHistory", [hex(1), "latest", [50]]), ("eth_maxPriorityFeePerGas", [])]


def fees_from(history: dict[str, Any] | None, tip: Any) -> Fees:
    """``Fees`` from the answers to ``fee_calls`` (a node without a tip suggestion: the median
    tip of the latest block)."""
    history = history or {}
    bases = history.get("baseFeePerGas") or ["0x0"]
    base = _int(bases[-1])
    if tip is None:
        rewards = history.get("reward") or [["0x0"]]
        tip = rewards[-1][0] if rewards and rewards[-1] else "0x0"
    return Fees(base_fee=base, tip=_int(tip))


def token_gas_limit(estimate: int) -> int:
    """Gas limit of a token transfer: the node's estimate + 25% (storage refunds and a balance
    that changes between estimate and inclusion can make the real use differ)."""
    return int(estimate) * 5 // 4


def top_up(gas_limit: int, max_fee_per_gas: int, eth_balance: int) -> int:
    """Ether a deposit address must receive so its transaction can be included: a node accepts
    it only when ``balance ≥ gas limit × maxFeePerGas`` (+ value, 0 for a token transfer). What
    the address holds already counts; the top-up is exactly the rest."""
    return max(0, int(gas_limit) * int(max_fee_per_gas) - int(eth_balance))


def _up(value: int) -> int:
    return -(-int(value) * BUMP_NUM // BUMP_DEN)


def bumped(max_fee_per_gas: int, tip: int, market: Fees) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) of a replacement: both +12.5% at least, the market
    at least, and the cap never below the tip."""
    new_tip = max(_up(tip), market.tip)
    new_max = max(_up(max_fee_per_gas), market.max_fee, new_tip)
    return new_max, new_tip


def fee_paid(receipt: dict[str, Any]) -> int:
    """Wei a mined transaction cost its sender (reverted ones pay too)."""
    return _int(receipt.get("gasUsed")) * _int(receipt.get("effectiveGasPrice"))
