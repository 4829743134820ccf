"""HD deposit addresses (BIP-32/BIP-44 with ``bip-utils``): watch-only and custodial.

Two trees give every payment a fresh deposit address (index = a per-merchant counter):

- **Watch-only** (the merchant keeps the keys): the merchant gives the account-level extended
  public key of ``m/44'/60'/0'`` (``xpub…``); we derive ``0/index`` (external chain) from it.
  No private key ever reaches the server; the merchant's own wallet (same path) sees the funds.
- **Custodial** (Payloom keeps the keys, sweeping needs them): a BIP-39 entropy, sealed through
  the KMS port, is the one secret; its mnemonic is the paper backup; ``m/44'/60'/0'/0/index`` is
  the standard Ethereum path, so restoring the mnemonic in any BIP-44 wallet (or here, with
  ``restore_from_mnemonic``) finds the same addresses. Test and live mode have separate seeds.

Costs: one derivation from an account node is two non-hardened child steps (~0.3 ms with
coincurve); the account node of an xpub is parsed once and cached (it is public data). Private
keys are derived on demand and never cached.
"""
from __future__ import annotations

import dataclasses
import functools
import secrets
from typing import Any

from bip_utils import (
    Bip39MnemonicDecoder,
    Bip39MnemonicEncoder,
    Bip39MnemonicValidator,
    Bip39SeedGenerator,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip44Levels,
)
from bip_utils.utils.mnemonic.mnemonic_ex import MnemonicChecksumError
from eth_utils import to_checksum_address

from shared.platform.errors import InvalidRequest

MAX_INDEX = 2**31 - 1          # non-hardened child indexes
ACCOUNT_PATH = "m/44'/60'/0'"  # the level of the xpub a merchant gives us
CUSTODY_COLLECTION = "chain_custody"


def _check_index(index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"address index must be an int in [0, {MAX_INDEX}]")


# --- watch-only: from a merchant's account xpub ----------------------------------------------

@dataclasses.dataclass(frozen=True)
class Xpub:
    """A validated account-level extended public key (``m/44'/60'/<account>'``)."""
    text: str
    depth: int
    fingerprint: str  # of this key (hex), shown to the merchant to confirm the right wallet

    def address(self, index: int) -> str:
        return derive_address(self.text, index)


@functools.lru_cache(maxsize=1024)
def _account_node(xpub: str) -> Any:
    ctx = Bip44.FromExtendedKey(xpub, Bip44Coins.ETHEREUM)
    if not ctx.IsPublicOnly():
        raise InvalidRequest("That is a private extended key (xprv); give the extended PUBLIC "
                             "key (xpub) only: Payloom never needs the merchant's private key.",
                             code="invalid_xpub", param="xpub")
    if not ctx.IsLevel(Bip44Levels.ACCOUNT):
        raise InvalidRequest(f"The xpub must be the account-level key of {ACCOUNT_PATH} "
                             f"(depth 3); this one has depth {ctx.Bip32Object().Depth().ToInt()}.",
                             code="invalid_xpub", param="xpub")
    return ctx.Change(Bip44Changes.CHAIN_EXT)


def parse_xpub(text: Any, *, param: str = "xpub") -> Xpub:
    """Validate a merchant's xpub: 400 ``invalid_xpub`` on garbage, an xprv, a wrong depth or a
    bad checksum (the error never echoes the value)."""
    if not isinstance(text, str) or not 100 <= len(text.strip()) <= 120:
        raise InvalidRequest("Not an extended public key (expected an 'xpub…' string of "
                             "about 111 characters).", code="invalid_xpub", param=param)
    text = text.strip()
    try:
        _account_node(text)
        key = Bip44.FromExtendedKey(text, Bip44Coins.ETHEREUM).Bip32Object()
    except InvalidRequest as exc:
        exc.param = param
        raise
    except Exception:  # noqa: BLE001 -- bip-utils raises Base58/Bip32/Value/Type errors alike
        raise InvalidRequest("Not a valid extended public key (bad encoding or checksum).",
                             code="invalid_xpub", param=param) from None
    return Xpub(text=text, depth=key.Depth().ToInt(),
                fingerprint=key.PublicKey().FingerPrint().ToBytes().hex())


def derive_address(xpub: str, index: int) -> str:
    """The checksum address at ``<xpub>/0/index`` (watch-only; raises 400 on a bad xpub)."""
    _check_index(index)
    try:
        node = _account_node(xpub)
    except InvalidRequest:
        raise
    except Exception:  # noqa: BLE001 -- any decoding failure of the key is bad input
        raise InvalidRequest("Not a valid extended public key.", code="invalid_xpub",
                             param="xpub") from None
    return to_checksum_address(node.AddressIndex(index).PublicKey().ToAddress())


# --- custodial: Payloom's own tree --------------------------------------------------------------

class HdTree:
    """A custodial tree from a BIP-39 seed (64 bytes). Derives addresses and private keys at
    ``m/44'/60'/<account>'/0/index``. Keep instances short-lived: they hold key material."""

    def __init__(self, seed: bytes, *, account: int = 0):
        if not isinstance(seed, (bytes, bytearray)) or not 16 <= len(seed) <= 64:
            raise ValueError("seed must be 16..64 bytes")
        _check_index(account)
        self._account = Bip44.FromSeed(bytes(seed), Bip44Coins.ETHEREUM).Purpose().Coin().Account(account)
        self._node = self._account.Change(Bip44Changes.CHAIN_EXT)

    def xpub(self) -> str:
        """The account-level xpub: what watch-only services (the watcher, reconciliation) need."""
        return self._account.PublicKey().ToExtended()

    def address(self, index: int) -> str:
        _check_index(index)
        return to_checksum_address(self._node.AddressIndex(index).PublicKey().ToAddress())

    def private_key(self, index: int) -> bytes:
        """The 32-byte secp256k1 key of ``index`` (sweeping and refunds only; never log it)."""
        _check_index(index)
        return self._node.AddressIndex(index).PrivateKey().Raw().ToBytes()

    def __repr__(self) -> str:  # never print key material
        return "HdTree(<sealed>)"


def custodial_address(seed: bytes, index: int, *, account: int = 0) -> str:
    return HdTree(seed, account=account).address(index)


def custodial_private_key(seed: bytes, index: int, *, account: int = 0) -> bytes:
    return HdTree(seed, account=account).private_key(index)


# --- backup: BIP-39 ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, repr=False)
class CustodialSeed:
    """The custodial secret: BIP-39 entropy (32 bytes → 24 words). The mnemonic is its backup;
    the 64-byte BIP-39 seed (empty passphrase) feeds the HD tree."""
    entropy: bytes

    def __post_init__(self):
        if len(self.entropy) not in (16, 20, 24, 28, 32):
            raise ValueError("BIP-39 entropy must be 16, 20, 24, 28 or 32 bytes")

    @classmethod
    def generate(cls) -> CustodialSeed:
        return cls(secrets.token_bytes(32))

    def mnemonic(self) -> str:
        """The paper backup (24 English words); shown once, at provisioning, to the custodians."""
        return Bip39MnemonicEncoder().Encode(self.entropy).ToStr()

    def seed(self) -> bytes:
        return bytes(Bip39SeedGenerator(self.mnemonic()).Generate())

    def tree(self, *, account: int = 0) -> HdTree:
        return HdTree(self.seed(), account=account)

    def __repr__(self) -> str:
        return "CustodialSeed(<sealed>)"


def parse_mnemonic(mnemonic: str) -> CustodialSeed:
    """A BIP-39 mnemonic back to its entropy; 400 ``invalid_mnemonic`` if words or checksum are
    wrong (a typo in a 24-word backup is caught here, not after sweeping to the wrong tree)."""
    words = " ".join(str(mnemonic).lower().split())
    try:
        if not Bip39MnemonicValidator().IsValid(words):
            raise ValueError
        return CustodialSeed(bytes(Bip39MnemonicDecoder().Decode(words)))
    except (ValueError, MnemonicChecksumError):
        raise InvalidRequest("Not a valid BIP-39 mnemonic (unknown word, wrong length or "
                             "checksum).", code="invalid_mnemonic", param="mnemonic") from None


def restore_from_mnemonic(mnemonic: str, *, account: int = 0) -> HdTree:
    """The custodial tree from its paper backup: the same addresses as before the loss."""
    return parse_mnemonic(mnemonic).tree(account=account)


# --- the sealed custodial seed ------------------------------------------------------------------
# One document per mode: chain_custody/hd_seed_test and chain_custody/hd_seed_live, holding the
# BIP-39 entropy sealed through the KMS port (AES-256-GCM data key wrapped by the KEK; the sealed
# value is bound to this document and purpose) and the account xpub in clear, so watch-only code
# (address derivation for the watcher, reconciliation) never unseals anything. In production the
# same sealed blob may live in a Secret Manager secret instead (docs/decisions/0032).

class CustodySeedMissing(RuntimeError):
    """No custodial seed is provisioned for this mode (run ``provision_custodial_seed``)."""


def _seed_doc_id(livemode: bool) -> str:
    return "hd_seed_live" if livemode else "hd_seed_test"


def _seed_context(livemode: bool) -> str:
    from shared.platform.secrets_at_rest import context
    return context(CUSTODY_COLLECTION, _seed_doc_id(livemode), "bip39_entropy")


def provision_custodial_seed(deps: Any, *, livemode: bool = False,
                             seed: CustodialSeed | None = None) -> tuple[CustodialSeed, bool]:
    """Create the mode's custodial seed once; returns ``(seed, created)``. Idempotent: when one
    exists it is returned unchanged (``created`` False) and ``seed`` is ignored, so a retried
    bootstrap can never replace the keys that funds were sent to. ``seed`` restores a backup."""
    from shared.platform.secrets_at_rest import envelope
    from shared.platform.uow import run_unit

    candidate = seed or CustodialSeed.generate()
    sealed = envelope(deps).seal(candidate.entropy, context=_seed_context(livemode))
    xpub = candidate.tree().xpub()
    ref = deps.db.collection(CUSTODY_COLLECTION).document(_seed_doc_id(livemode))

    def unit(uow) -> bool:
        if uow.get(ref).exists:
            return False
        uow.create(ref, {"entropy": sealed, "xpub": xpub, "path": ACCOUNT_PATH,
                         "livemode": livemode, "created_at": uow.now})
        return True

    created = run_unit(deps, unit)
    return (candidate, True) if created else (load_custodial_seed(deps, livemode=livemode), False)


def custodial_xpub(deps: Any, *, livemode: bool = False) -> str:
    """The custodial account xpub (public): enough to derive every deposit address."""
    snap = deps.db.collection(CUSTODY_COLLECTION).document(_seed_doc_id(livemode)).get()
    if not snap.exists:
        raise CustodySeedMissing(f"no custodial seed for {'live' if livemode else 'test'} mode")
    return snap.to_dict()["xpub"]


def load_custodial_seed(deps: Any, *, livemode: bool = False) -> CustodialSeed:
    """Unseal the mode's custodial seed (one KMS unwrap, then cached DEK): sweeping and crypto
    refunds only. Raises ``CustodySeedMissing``, or ``SecretIntegrityError`` if the stored value
    was tampered with or copied from the other mode, and checks the unsealed seed still derives
    the recorded xpub (a wrong KEK or a swapped blob fails loudly, not silently elsewhere)."""
    from shared.platform.secrets_at_rest import SecretIntegrityError, envelope

    snap = deps.db.collection(CUSTODY_COLLECTION).document(_seed_doc_id(livemode)).get()
    if not snap.exists:
        raise CustodySeedMissing(f"no custodial seed for {'live' if livemode else 'test'} mode")
    data = snap.to_dict()
    seed = CustodialSeed(envelope(deps).open(data["entropy"], context=_seed_context(livemode)))
    if seed.tree().xpub() != data["xpub"]:
        raise SecretIntegrityError("the custodial seed does not derive its recorded xpub")
    return seed
