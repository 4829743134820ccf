"""The watcher does not take Payloom's own ether for a payment: a native transfer to a watched
address from an address whose ``chain_nonces`` document is a hot wallet's (a sweep's gas
top-up) is neither recorded nor announced, while the same transfer from anyone else — a
deposit address included (its nonce document has no hot-wallet role) — is a payment."""
from __future__ import annotations

from shared.chain import outgoing
from tests.chain.test_watcher import (  # noqa: F401  (the started fixture)
    catch_up,
    fresh,
    kinds,
    pay_eth,
    pay_token,
    started,
    transfers,
    watch,
)
from tests.chain.test_watcher import transfer_id as tid


def nonce_doc(deps, address: str, **fields) -> None:
    outgoing.nonce_ref(deps.db, "anvil", address).set(
        {"next": 0, "network": "anvil", "address": address, **fields})


def test_native_transfers_from_a_hot_wallet_are_not_payments(deps, chain, started):  # noqa: F811
    hot, deposit_sender = chain.accounts[3].address, chain.accounts[4].address
    nonce_doc(deps, hot, role=outgoing.HOT_WALLET)
    nonce_doc(deps, deposit_sender)                     # a deposit address's nonce document
    usdc_to = fresh()
    watch(deps, usdc_to, asset="USDC", token=chain.tokens["USDC"])
    top_up = pay_eth(chain, usdc_to, 10**15, sender=3)     # the hot wallet's gas top-up
    paid = pay_token(chain, "USDC", usdc_to, 5_000_000)
    other = pay_eth(chain, usdc_to, 10**15, sender=4)      # ether from someone else: a payment
    catch_up(started)
    docs = transfers(deps)
    assert set(docs) == {tid("anvil", paid, 0), tid("anvil", other, -1)}
    assert kinds(deps, top_up) == [] and kinds(deps, other) == ["seen", "confirmed"]
    assert started.stats.own == 1 and started.stats.transfers == 2
