"""Payloom's hot wallet: the key crypto refunds are signed with, and its nonce counter.

The hot wallet is the custodial tree's ``m/44'/60'/1'/0/0`` (BIP-44 ACCOUNT 1, index 0), one
per mode (the mode's sealed seed, ``shared.chain.hd``). Account 0 is the deposit-address tree
(indices handed out by counters from 0 upward), so no deposit address can ever be the hot
wallet, and the paper backup of the seed restores the hot wallet too (any BIP-44 wallet: second
account). Sweeping and custody fund it; refunds only spend from it.

Nonces (``chain_nonces/{network}:{address lower}`` = ``{next}``): the unit that signs a refund
reads this document and the refund and writes both, so two refunds signed at once can never get
the same nonce (the loser re-runs and takes the next). The nonce used is
``max(stored next, the node's pending count)``: transactions signed but not yet broadcast (a
crash between commit and broadcast) keep their nonce reserved (their poll task rebroadcasts the
same bytes and fills the gap); a transaction sent from this address by another tool moves the
node's count past ours and we follow it.

The private key is unsealed per task run (``load_custodial_seed``: one KMS unwrap, then the
cached data key) and never stored, cached or logged.
"""
from __future__ import annotations

import dataclasses
from typing import Any

HOT_ACCOUNT, HOT_INDEX = 1, 0
NONCES = "chain_nonces"


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


def nonce_ref(db, network: str, address: str):
    return db.collection(NONCES).document(f"{network}:{address.lower()}")


def next_nonce(stored: int | None, chain_pending: int) -> int:
    """The nonce to sign with (pure; see the module doc)."""
    return max(int(stored or 0), int(chain_pending))


def sign(tx: dict[str, Any], key: bytes) -> tuple[str, str]:
    """(raw transaction hex, its hash hex) of an EIP-1559 (type 2) transaction. Deterministic
    (RFC 6979): a unit that runs twice signs the same bytes."""
    from eth_account import Account
    signed = Account.sign_transaction({**tx, "type": 2}, key)
    return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()
