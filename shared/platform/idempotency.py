"""Idempotency keys with Stripe's semantics.

The claim is an atomic Firestore ``create()``. The first response (status and body bytes) is
stored for 24 h and replayed verbatim. The same key with different parameters is an
``idempotency_error``; a duplicate arriving while the first is running gets 409; a claim whose
request died (lease past ``locked_until``) can be taken over so a retry runs. Requests that
fail validation never reach the claim, so they are not cached (as at Stripe).

Cost: one ``create`` per new key, one ``update`` to store the response; a replay is one failed
``create`` plus one ``get``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

from google.api_core import exceptions as gexc

from shared.platform.errors import IdempotencyError, InvalidRequest

COLLECTION = "idempotency_keys"
MAX_KEY_LENGTH = 255


@dataclasses.dataclass
class StoredResponse:
    status: int
    body: bytes
    content_type: str


@dataclasses.dataclass
class Claim:
    ref: object
    key: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Parameters that must match on a retry: method, path and the canonical JSON body."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                             param="Idempotency-Key", code="idempotency_key_invalid")
    return key


def _doc_id(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\x1f{key}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, db, *, ttl_seconds: int = 86400, lock_seconds: int = 60):
        self.db = db
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.lock = dt.timedelta(seconds=lock_seconds)

    def claim(self, scope: str, key: str, fp: str, now: dt.datetime) -> Claim | StoredResponse:
        ref = self.db.collection(COLLECTION).document(_doc_id(scope, key))
        record = {"scope": scope, "key": key, "fingerprint": fp, "state": "in_progress",
                  "created": now, "locked_until": now + self.lock, "expires_at": now + self.ttl}
        try:
            ref.create(record)
            return Claim(ref, key)
        except gexc.AlreadyExists:
            pass
        snap = ref.get()
        if not snap.exists:  # Pruned between our create and get: claim again.
            return self.claim(scope, key, fp, now)
        data = snap.to_dict()
        if data["expires_at"] <= now:
            return self._take_over(ref, snap, record, key, scope, fp, now)
        if data["fingerprint"] != fp:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with.", param="Idempotency-Key")
        if data["state"] == "completed":
            return StoredResponse(data["status"], data["body"], data["content_type"])
        if data["locked_until"] <= now:
            return self._take_over(ref, snap, record, key, scope, fp, now)
        raise IdempotencyError("A request with this Idempotency-Key is still in progress; "
                               "retry after it completes.", code="idempotency_key_in_use",
                               param="Idempotency-Key", headers={"Retry-After": "1"})

    def _take_over(self, ref, snap, record, key, scope, fp, now) -> Claim:
        try:
            ref.update(record, option=self.db.write_option(last_update_time=snap.update_time))
        except (gexc.FailedPrecondition, gexc.Aborted, gexc.Conflict):
            raise IdempotencyError("A retry with this Idempotency-Key is already running.",
                                   code="idempotency_key_in_use", param="Idempotency-Key",
                                   headers={"Retry-After": "1"}) from None
        return Claim(ref, key)

    def complete(self, claim: Claim, status: int, body: bytes, content_type: str) -> None:
        claim.ref.update({"state": "completed", "status": status, "body": body,
                          "content_type": content_type})

    def release(self, claim: Claim) -> None:
        """Forget a claim (used when the request never reached the service)."""
        claim.ref.delete()
