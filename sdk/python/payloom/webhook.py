"""Verify Payloom's webhooks (Standard Webhooks v1), the way the reference receiver does.

Signed content: ``{webhook-id}.{webhook-timestamp}.{raw body}``; signature: ``v1,`` + base64
HMAC-SHA256 with the key that follows ``whsec_`` in the secret (base64). ``webhook-signature``
may list several signatures separated by spaces: during a secret rotation every live secret
signs, so a receiver holding either secret verifies. Versions other than ``v1`` are skipped
(``v1a`` asymmetric signatures are not Payloom's). The timestamp must be within ``tolerance``
seconds of now, both ways, so a captured request cannot be replayed later; de-duplicate by
``webhook-id`` (stable across retries and replays) for the rest.

Always verify the RAW bytes you received: re-serialised JSON does not verify.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from payloom.errors import SignatureVerificationError
from payloom.objects import convert

PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
_TIMESTAMP = re.compile(r"^\d{1,15}(\.\d+)?$")

Secret = Union[str, bytes]


def _key(secret: Secret) -> bytes:
    """The HMAC key: the base64 after ``whsec_`` (the prefix is optional, as in the
    ``standardwebhooks`` library); raw bytes are taken as the key itself."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _lower(headers: Mapping[str, str]) -> dict:
    return {str(k).lower(): v for k, v in headers.items()}


class WebhookSignature:
    @staticmethod
    def compute(secret: Secret, msg_id: str, timestamp: int, payload: Union[bytes, str]) -> str:
        """``v1,<base64>`` for one secret (for tests and local tools)."""
        body = payload.encode() if isinstance(payload, str) else payload
        signed = f"{msg_id}.{int(timestamp)}.".encode() + body
        return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()

    @classmethod
    def headers(cls, secrets: Union[Secret, Sequence[Secret]], msg_id: str,
                payload: Union[bytes, str], timestamp: Optional[int] = None) -> dict:
        """The three headers Payloom would send (one signature per secret)."""
        ts = int(time.time()) if timestamp is None else int(timestamp)
        many = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
                "webhook-signature": " ".join(cls.compute(s, msg_id, ts, payload) for s in many)}

    @classmethod
    def verify(cls, payload: Union[bytes, str], headers: Mapping[str, str],
               secret: Union[Secret, Iterable[Secret]], tolerance: Optional[int] = DEFAULT_TOLERANCE,
               now: Optional[float] = None) -> int:
        """Raise ``SignatureVerificationError`` unless a ``v1`` signature matches one of the
        secrets (a list is accepted: your old and new secret while rotating) and the timestamp
        is within ``tolerance`` seconds (None: not checked). Returns the timestamp."""
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
        if not secrets:
            raise ValueError("no webhook secret given")
        keys = [_key(s) for s in secrets]          # a malformed secret is a ValueError first
        h = _lower(headers)
        msg_id, stamp = h.get("webhook-id"), h.get("webhook-timestamp")
        signatures = h.get("webhook-signature")
        if not (msg_id and stamp and signatures):
            raise SignatureVerificationError("Missing webhook-id, webhook-timestamp or "
                                             "webhook-signature header.", headers=headers)
        stamp = stamp.strip()
        if not _TIMESTAMP.match(stamp):
            raise SignatureVerificationError("Invalid webhook-timestamp.", headers=headers)
        timestamp = int(stamp.split(".")[0])
        current = time.time() if now is None else now
        if tolerance is not None:
            if timestamp < current - tolerance:
                raise SignatureVerificationError("Message timestamp too old.", headers=headers)
            if timestamp > current + tolerance:
                raise SignatureVerificationError("Message timestamp too new.", headers=headers)
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = [hmac.new(k, signed, hashlib.sha256).digest() for k in keys]
        for entry in signatures.split(" "):
            version, sep, value = entry.partition(",")
            if not sep or version != "v1":
                continue
            try:
                given = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            if any(hmac.compare_digest(given, e) for e in expected):
                return timestamp
        raise SignatureVerificationError("No matching signature found.", headers=headers)


class Webhook:
    DEFAULT_TOLERANCE = DEFAULT_TOLERANCE

    @staticmethod
    def construct_event(payload: Union[bytes, str], headers: Mapping[str, str],
                        secret: Union[Secret, Iterable[Secret]],
                        tolerance: Optional[int] = DEFAULT_TOLERANCE) -> Any:
        """Verify, then parse: an ``Event`` (``event.type``, ``event.data.object``).
        Raises ``SignatureVerificationError`` (answer 400) or ``ValueError`` for a bad secret."""
        WebhookSignature.verify(payload, headers, secret, tolerance)
        text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
        try:
            data = json.loads(text)
        except ValueError:
            raise SignatureVerificationError("The payload is not JSON.", headers=headers) from None
        return convert(data)
