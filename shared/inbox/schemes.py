"""Providers' own webhook signature schemes, verified against the raw body. Pure functions.

Each verifier takes the raw body, the request headers (lower-cased names), every secret that is
live for the provider (several during a rotation: any may match), ``now`` in Unix seconds and the
provider's tolerance, and returns what the signature vouches for, or raises
``SignatureRejected``. The tolerance bounds how long a captured request can be replayed; the
inbox's de-duplication by event id covers replays inside it.

Why the reason is a fixed phrase: it is logged and answered, so it must never carry the body, a
header value or anything a secret could be derived from.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from shared.adapters.stripe_cards import parse_signature_header, verify_stripe_signature
from shared.platform.errors import AuthenticationError

TOLERANCE_SECONDS = 300   # both schemes: 5 minutes either way


class SignatureRejected(Exception):
    """The request is not signed by the provider (or not recently). ``reason`` is safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Verified:
    """What a valid signature vouches for besides the body."""
    timestamp: int                  # when the provider signed (Unix seconds)
    message_id: str | None = None   # the scheme's own message id header, if it has one


Verifier = Callable[[bytes, Mapping[str, str], Sequence[str], int, int], Verified]


def stripe(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: int,
           tolerance: int = TOLERANCE_SECONDS) -> Verified:
    """``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>[,v1=…]``.

    Checked with the wallet adapter's verifier (one implementation of Stripe's scheme); a
    signature that matches one secret but is stale is refused as stale."""
    header = headers.get("stripe-signature")
    if not header:
        raise SignatureRejected("missing Stripe-Signature header")
    try:
        timestamp, _ = parse_signature_header(header)
    except AuthenticationError:
        raise SignatureRejected("malformed Stripe-Signature header") from None
    stale = False
    for secret in secrets:
        try:
            verify_stripe_signature(body, header, secret, now, tolerance)
        except AuthenticationError as exc:
            stale = stale or exc.code == "signature_timestamp_out_of_tolerance"
            continue
        return Verified(timestamp=timestamp)
    raise SignatureRejected("signature timestamp outside the tolerance" if stale
                            else "no signature matches the body")


def standard_webhooks(body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: int,
                      tolerance: int = TOLERANCE_SECONDS) -> Verified:
    """Standard Webhooks v1 (Svix): ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
    ``webhook-signature``, a space-separated list of ``v1,<base64 HMAC-SHA256(key,
    "id.timestamp.body")>``; the key is the base64 after ``whsec_``. Unknown versions are
    skipped (the spec's forward compatibility); the message id is the sender's idempotency key."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (msg_id and stamp and signature):
        raise SignatureRejected("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise SignatureRejected("malformed webhook-timestamp header")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureRejected("signature timestamp outside the tolerance")
    offered = [value for version, _, value in (part.partition(",") for part in signature.split())
               if version == "v1" and value]
    if not offered:
        raise SignatureRejected("malformed webhook-signature header")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    for key in standard_keys(secrets):
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected.encode(), value.encode("utf-8", "replace"))
               for value in offered):
            return Verified(timestamp=timestamp, message_id=msg_id)
    raise SignatureRejected("no signature matches the body")


def standard_keys(secrets: Sequence[str]) -> list[bytes]:
    """The HMAC keys of ``whsec_<base64>`` secrets; a secret that is not base64 is skipped
    (a configuration error must not let everything through, nor crash)."""
    keys = []
    for secret in secrets:
        text = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if key:
            keys.append(key)
    return keys


SCHEMES: dict[str, Verifier] = {"stripe": stripe, "standard_webhooks": standard_webhooks}
