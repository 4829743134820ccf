"""Standard Webhooks v1 signatures (pure: no I/O, no clock).

Why this scheme: receivers verify with the reference ``standardwebhooks`` library (or any Svix
client) without Payloom-specific code. The signed content is ``{id}.{timestamp}.{body}``; the key
is the base64-decoded part of the secret after ``whsec_``. While a rotated secret is in its
grace period every live secret signs, space-separated, so a receiver holding either verifies.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable

PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # the spec's bounds for the random key


def new_secret(nbytes: int = 32) -> str:
    """A fresh signing secret: ``whsec_`` + base64 of ``nbytes`` random bytes (24..64)."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a signing secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes")
    return PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret (the bytes after ``whsec_``); ValueError when malformed."""
    if not secret.startswith(PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except ValueError:
        raise ValueError("a signing secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError("a signing secret holds 24 to 64 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, f"{msg_id}.{timestamp}." + body)>``."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per live secret, newest first, space-separated (rotation without downtime)."""
    signatures = [sign(s, msg_id, timestamp, body) for s in secrets]
    if not signatures:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(signatures)


def headers(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt. ``msg_id`` is the event id: stable across retries
    and replays, so it is the receiver's idempotency key."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
            "content-type": "application/json"}
