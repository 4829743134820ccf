"""HD derivation against known vectors and an independent implementation (eth-account).

anvil's default mnemonic gives the ten well-known dev accounts at m/44'/60'/0'/0/i; the BIP-39
"abandon … about" vector gives the address every BIP-44 wallet shows for it. Watch-only derivation
from the account xpub must agree with the custodial tree, and garbage xpubs/mnemonics are 400s.
"""
from __future__ import annotations

import pytest
from eth_account import Account

from shared.chain import hd
from shared.platform.errors import InvalidRequest

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_ADDRESSES = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
]
ANVIL_KEY_0 = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_KEY_1 = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ABANDON = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def test_restore_from_anvils_mnemonic_gives_the_known_accounts_and_keys():
    tree = hd.restore_from_mnemonic(ANVIL_MNEMONIC)
    assert [tree.address(i) for i in range(10)] == ANVIL_ADDRESSES
    assert tree.private_key(0).hex() == ANVIL_KEY_0
    assert tree.private_key(1).hex() == ANVIL_KEY_1
    assert Account.from_key(tree.private_key(7)).address == ANVIL_ADDRESSES[7]


def test_the_bip39_zero_entropy_vector():
    seed = hd.parse_mnemonic(ABANDON)
    assert seed.entropy == bytes(16)
    assert seed.tree().address(0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


def test_custodial_tree_agrees_with_eth_account_on_a_fresh_seed():
    seed = hd.CustodialSeed.generate()
    assert len(seed.entropy) == 32 and len(seed.mnemonic().split()) == 24
    Account.enable_unaudited_hdwallet_features()
    for index in (0, 1, 2, 1000, 2**31 - 1):
        expected = Account.from_mnemonic(seed.mnemonic(), account_path=f"m/44'/60'/0'/0/{index}")
        assert hd.custodial_address(seed.seed(), index) == expected.address
        assert hd.custodial_private_key(seed.seed(), index) == bytes(expected.key)


def test_backup_and_recovery_derive_the_same_addresses():
    """Export the mnemonic (the paper backup), lose everything, restore: same addresses, same
    keys, same xpub; a restored backup with one word changed is refused (checksum)."""
    original = hd.CustodialSeed.generate()
    before = [original.tree().address(i) for i in range(25)]
    backup = original.mnemonic()
    restored = hd.restore_from_mnemonic("  " + backup.upper().replace(" ", "   ") + "\n")
    assert [restored.address(i) for i in range(25)] == before
    assert restored.private_key(24) == original.tree().private_key(24)
    assert restored.xpub() == original.tree().xpub()
    words = backup.split()
    words[5] = "zoo" if words[5] != "zoo" else "abandon"
    with pytest.raises(InvalidRequest) as exc:
        hd.restore_from_mnemonic(" ".join(words))
    assert exc.value.code == "invalid_mnemonic"
    for bad in ("", "not a mnemonic", " ".join(words[:23]), 42):
        with pytest.raises(InvalidRequest):
            hd.parse_mnemonic(bad)


def test_watch_only_derivation_from_the_account_xpub_matches_the_private_tree():
    tree = hd.restore_from_mnemonic(ANVIL_MNEMONIC)
    xpub = tree.xpub()
    assert xpub.startswith("xpub")
    parsed = hd.parse_xpub(xpub)
    assert parsed.depth == 3 and len(parsed.fingerprint) == 8
    assert [hd.derive_address(xpub, i) for i in range(10)] == ANVIL_ADDRESSES
    assert parsed.address(123_456) == tree.address(123_456)
    assert hd.parse_xpub("  " + xpub + "\n").text == xpub


def _account_xprv() -> str:
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins
    ctx = Bip44.FromSeed(Bip39SeedGenerator(ANVIL_MNEMONIC).Generate(), Bip44Coins.ETHEREUM)
    return ctx.Purpose().Coin().Account(0).PrivateKey().ToExtended()


def _master_xpub() -> str:
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins
    ctx = Bip44.FromSeed(Bip39SeedGenerator(ANVIL_MNEMONIC).Generate(), Bip44Coins.ETHEREUM)
    return ctx.PublicKey().ToExtended()


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


@pytest.mark.parametrize("make", [
    lambda: "garbage", lambda: "", lambda: None, lambda: 12345, lambda: "x" * 111,
    lambda: _flip(hd.restore_from_mnemonic(ANVIL_MNEMONIC).xpub(), 60),   # checksum breaks
    _account_xprv,                                                          # private key: refused
    _master_xpub,                                                           # depth 0, not account
], ids=["garbage", "empty", "none", "int", "x111", "bad-checksum", "xprv", "master-depth"])
def test_bad_xpubs_are_400_invalid_xpub_and_never_echoed(make):
    value = make()
    with pytest.raises(InvalidRequest) as exc:
        hd.parse_xpub(value, param="deposit_xpub")
    assert exc.value.status == 400 and exc.value.code == "invalid_xpub"
    assert exc.value.param == "deposit_xpub"
    if isinstance(value, str) and len(value) > 20:
        assert value not in exc.value.message


def test_indexes_outside_the_non_hardened_range_are_refused():
    xpub = hd.restore_from_mnemonic(ANVIL_MNEMONIC).xpub()
    for bad in (-1, 2**31, True, "1", 1.0):
        with pytest.raises(ValueError):
            hd.derive_address(xpub, bad)


def test_key_material_never_appears_in_reprs():
    seed = hd.CustodialSeed.generate()
    assert seed.entropy.hex() not in repr(seed) and seed.mnemonic().split()[0] not in repr(seed).lower()
    assert "sealed" in repr(seed.tree())


def test_a_thousand_watch_only_addresses_derive_quickly():
    import time
    xpub = hd.CustodialSeed.generate().tree().xpub()
    started = time.perf_counter()
    addresses = {hd.derive_address(xpub, i) for i in range(1000)}
    elapsed = time.perf_counter() - started
    assert len(addresses) == 1000
    assert elapsed < 5.0, elapsed
