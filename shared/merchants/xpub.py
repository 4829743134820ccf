"""Validate a merchant's extended public key (watch-only deposit addresses, BIP-32).

Parsed with ``bip-utils`` when it is installed: the Base58Check checksum, the version bytes
(``xpub`` mainnet or ``tpub`` testnet) and a valid secp256k1 point. Without it (helper C1 adds
it to requirements), the fallback only checks the shape: ``xpub``/``tpub`` + Base58, 111
characters; the checksum is then not verified. An extended PRIVATE key (``xprv``/``tprv``) is
refused outright and never stored or echoed: the server holds no merchant private key.
"""
from __future__ import annotations

import re

from shared.platform.errors import InvalidRequest

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_SHAPE = re.compile(rf"^(xpub|tpub)[{_BASE58}]{{107}}$")
_VERSIONS = {"xpub": ("0488b21e", "0488ade4"), "tpub": ("043587cf", "04358394")}


def _invalid(message: str, code: str = "invalid_xpub") -> InvalidRequest:
    return InvalidRequest(message, param="xpub", code=code)


def validate_xpub(value: str) -> str:
    """``value`` stripped if it is a usable extended public key; 400 otherwise."""
    value = (value or "").strip()
    if value[:4] in ("xprv", "tprv", "yprv", "zprv"):
        raise _invalid("This is an extended PRIVATE key: never send it. Send the account's "
                       "extended public key (xpub…) instead.", "private_key_refused")
    if not _SHAPE.match(value):
        raise _invalid("xpub must be an extended public key: 'xpub' or 'tpub' followed by "
                       "Base58 characters, 111 in all.")
    try:
        from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
    except ImportError:  # shape only (see the module docstring)
        return value
    pub, priv = _VERSIONS[value[:4]]
    try:
        key = Bip32Secp256k1.FromExtendedKey(
            value, Bip32KeyNetVersions(bytes.fromhex(pub), bytes.fromhex(priv)))
    except Exception:  # noqa: BLE001 — bip-utils raises several types for a bad key
        raise _invalid("xpub does not parse: bad checksum or key.") from None
    if not key.IsPublicOnly():
        raise _invalid("Send an extended public key.", "private_key_refused")
    return value
