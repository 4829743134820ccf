"""Payloom's hot wallet: the key crypto refunds, withdrawals and gas top-ups are signed with.

The hot wallet is the custodial tree's ``m/44'/60'/1'/0/0`` (BIP-44 ACCOUNT 1, index 0), one
per mode (the mode's sealed seed, ``shared.chain.hd``). Account 0 is the deposit-address tree
(indices handed out by counters from 0 upward), so no deposit address can ever be the hot
wallet, and the paper backup of the seed restores the hot wallet too (any BIP-44 wallet: second
account). Sweeping funds it; refunds, withdrawals, top-ups and cold transfers spend from it.

Its nonces (``chain_nonces/{network}:{address}``, reserved in the unit that signs), signing,
broadcast and tracking are ``shared.chain.outgoing``'s, shared with sweeps and withdrawals;
``nonce_ref``, ``next_nonce`` and ``sign`` are re-exported here for the callers that name them.

The private key is unsealed per task run (``load_custodial_seed``: one KMS unwrap, then the
cached data key) and never stored, cached or logged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from shared.chain.outgoing import next_nonce, nonce_ref, sign  # noqa: F401  (re-exported)

HOT_ACCOUNT, HOT_INDEX = 1, 0


@dataclasses.dataclass(frozen=True, repr=False)
class HotKey:
    address: str
    key: bytes

    def __repr__(self) -> str:  # never print key material
        return f"HotKey({self.address}, <sealed>)"


def hot_key(deps: Any, *, livemode: bool) -> HotKey:
    """The mode's hot wallet key (raises ``hd.CustodySeedMissing`` when not provisioned)."""
    from shared.chain import hd
    tree = hd.load_custodial_seed(deps, livemode=livemode).tree(account=HOT_ACCOUNT)
    return HotKey(tree.address(HOT_INDEX), tree.private_key(HOT_INDEX))


def hot_address(deps: Any, *, livemode: bool) -> str:
    return hot_key(deps, livemode=livemode).address
