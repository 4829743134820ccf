"""Prefixed random ids in Stripe's style (``usr_…``, ``evt_…``).

Random (not time-ordered) so Firestore never sees a sequential hotspot on document ids.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_ID_RE = re.compile(r"^[a-z]{2,8}_[A-Za-z0-9]{8,64}$")


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def derived_id(prefix: str, *parts: str, length: int = 24) -> str:
    """A deterministic id from stable inputs, so a retried request re-finds what it created."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    n = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        n, r = divmod(n, len(_ALPHABET))
        chars.append(_ALPHABET[r])
    return f"{prefix}_" + "".join(chars)


def is_id(value: str, prefix: str | None = None) -> bool:
    if not isinstance(value, str) or not _ID_RE.match(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
