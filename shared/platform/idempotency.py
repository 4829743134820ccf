"""Idempotency keys with Stripe's semantics.

The first response (status and body bytes) is stored for 24 h and replayed verbatim. The same
key with different parameters is an ``idempotency_error``; a duplicate arriving while the first
is running gets 409 ``idempotency_key_in_use`` or the replay, never a second effect. Requests
that fail validation never reach the key, so they are not cached (as at Stripe); neither are
429 and 5xx answers (nothing committed, so the same key may succeed later).

Two ways to hold a key:
- ``AtomicKey`` (every route by default): the record is written once, completed, in the SAME
  commit as the service's writes and events (Stripe's "atomic phase"). It is read with the
  service's first read (``UnitOfWork.prefetch``): a replay costs one round trip, a new key none
  of its own. A concurrent duplicate loses the commit race (the record must not exist), runs
  again, reads the record and replays.
- ``IdempotencyStore`` (routes with ``atomic=False``, which must call the outside world between
  reads and writes): a ``create()`` claim with a lease, the response stored by an update; a claim
  whose request died (lease past ``locked_until``) can be taken over so a retry runs.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

from google.api_core import exceptions as gexc

from shared.platform import jsonbody
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
        canonical = json.dumps(jsonbody.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                             param="Idempotency-Key", code="idempotency_key_invalid")
    return key


class Replay(BaseException):
    """Raised from inside the service's first read when the key already has a response.

    A BaseException so that no service's ``except Exception`` can swallow it."""

    def __init__(self, stored: StoredResponse):
        super().__init__("idempotent replay")
        self.stored = stored


def _in_use() -> IdempotencyError:
    return IdempotencyError("A request with this Idempotency-Key is still in progress; retry "
                            "after it completes.", code="idempotency_key_in_use",
                            param="Idempotency-Key", headers={"Retry-After": "1"})


def _reused() -> IdempotencyError:
    return IdempotencyError("Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.", param="Idempotency-Key")


class AtomicKey:
    """One key whose record commits with the request's own writes."""

    def __init__(self, db, scope: str, key: str, fp: str, now: dt.datetime, *,
                 ttl_seconds: int = 86400):
        self.ref = db.collection(COLLECTION).document(_doc_id(scope, key))
        self.scope, self.key, self.fp, self.now = scope, key, fp, now
        self.ttl = dt.timedelta(seconds=ttl_seconds)

    def check(self, snap) -> None:
        """The record as read: replay it, refuse the key, or let this request proceed (no
        record, an expired one, or the dead lease of a non-atomic claim)."""
        if not snap.exists:
            return
        data = snap.to_dict()
        if data["expires_at"] <= self.now:
            return
        if data["fingerprint"] != self.fp:
            raise _reused()
        if data["state"] == "completed":
            raise Replay(StoredResponse(data["status"], data["body"], data["content_type"]))
        if data.get("locked_until") and data["locked_until"] <= self.now:
            return
        raise _in_use()

    def record(self, status: int, body: bytes, content_type: str) -> dict:
        return {"scope": self.scope, "key": self.key, "fingerprint": self.fp,
                "state": "completed", "status": status, "body": body,
                "content_type": content_type, "created": self.now,
                "expires_at": self.now + self.ttl}


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
            raise _reused()
        if data["state"] == "completed":
            return StoredResponse(data["status"], data["body"], data["content_type"])
        if data["locked_until"] <= now:
            return self._take_over(ref, snap, record, key, scope, fp, now)
        raise _in_use()

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
