"""Gas for sweeps: what a deposit address's top-up must cover and a token transfer's limit.

The fee market (``Fees``: ``maxFeePerGas = 2 × next base fee + tip``), the +12.5% replacement
of a stuck transaction (``bumped``) and what a mined one cost (``fee_paid``) are
``shared.chain.outgoing``'s, the rules every outgoing transaction of Payloom follows (refunds
and withdrawals too); they are re-exported here for the sweep modules that name them.

Everything here is integers in wei (never floats) and pure.
"""
from __future__ import annotations

from shared.chain.outgoing import (  # noqa: F401  (re-exported)
    BUMP_DEN,
    BUMP_NUM,
    ETH_TRANSFER_GAS,
    Fees,
    bumped,
    fee_calls,
    fee_paid,
    fees_from,
)


def token_gas_limit(estimate: int) -> int:
    """Gas limit of a token transfer: the node's estimate + 25% (storage refunds and a balance
    that changes between estimate and inclusion can make the real use differ)."""
    return int(estimate) * 5 // 4


def top_up(gas_limit: int, max_fee_per_gas: int, eth_balance: int) -> int:
    """Ether a deposit address must receive so its transaction can be included: a node accepts
    it only when ``balance ≥ gas limit × maxFeePerGas`` (+ value, 0 for a token transfer). What
    the address holds already counts; the top-up is exactly the rest."""
    return max(0, int(gas_limit) * int(max_fee_per_gas) - int(eth_balance))
