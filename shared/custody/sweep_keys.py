"""The custodial keys a sweep task run signs with.

The mode's seed is unsealed at most once per run (one KMS unwrap), keys are derived on demand
and never stored, cached across runs or logged. Deposit keys are account 0 of the seed (the
deposit tree, ``m/44'/60'/0'/0/i``); the hot wallet is account 1 index 0 (ADR 0035).
"""
from __future__ import annotations


class SweepKeys:
    """The mode's custodial keys for one task run: deposit keys (account 0) and the hot wallet
    (account 1, index 0). Unseals the seed on first use only."""

    def __init__(self, deps, livemode: bool):
        self.deps, self.livemode = deps, livemode
        self._seed = None
        self._trees: dict[int, object] = {}

    def _tree(self, account: int):
        from shared.chain import hd
        if self._seed is None:
            self._seed = hd.load_custodial_seed(self.deps, livemode=self.livemode)
        if account not in self._trees:
            self._trees[account] = self._seed.tree(account=account)
        return self._trees[account]

    def deposit(self, index: int, address: str) -> bytes:
        """The key of deposit ``index``, refused when it does not derive ``address``."""
        tree = self._tree(0)
        if tree.address(index).lower() != address.lower():
            raise KeyError("deposit address does not derive from its recorded index")
        return tree.private_key(index)

    def hot(self):
        from shared.refunds import hot_wallet
        tree = self._tree(hot_wallet.HOT_ACCOUNT)
        return hot_wallet.HotKey(tree.address(hot_wallet.HOT_INDEX),
                                 tree.private_key(hot_wallet.HOT_INDEX))

    def __repr__(self) -> str:  # never print key material
        return "SweepKeys(<sealed>)"
