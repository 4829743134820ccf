"""Password guessing limits per account: an attempt budget and a consecutive-failure cap.

One document per account, ``login_guards/{usr_…}``, read in the same batch as the user and its
credentials and written in the login's own commit (under the unit of work's precondition), so
the limits cost no extra round trip and concurrent guesses cannot lose a count:

* **Budget** (``login_attempts_per_minute``, 10): attempts per account per fixed minute. Email
  and username resolve to the same account, so they share it.
* **Consecutive failures** (NIST SP 800-63B 5.2.2): from ``lockout_after`` (10) failures on,
  every further failure locks password sign-in for a back-off that doubles from
  ``lockout_base_seconds`` up to ``lockout_max_seconds``; at ``hard_lock_after`` (100) password
  sign-in is locked until the password is reset. A success resets the count. Other sign-in
  methods and the password reset still work, so an attacker can lock out a password, not a user.
* The owner is told (through the outbox) when the account first locks and when it hard-locks.

Unknown identifiers get a guard too (``login_guards/unknown_{sha256(kind:identifier)}``), with
the same rules, so a locked or rate-limited answer never tells an existing account from a
made-up one.

Per client IP (credential stuffing across accounts), ``login_guards/ip_{sha256(ip)}`` counts
*failed* logins per minute (``login_failures_per_ip_per_minute``). It rides in the same read
batch, and only a failure writes it, so a successful login never contends on a shared IP
(carrier-grade NAT) and costs no extra round trip.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

from shared.platform.errors import RateLimited

COLLECTION = "login_guards"
WINDOW_SECONDS = 60


def guard_ref(db, *, user_id: str | None, kind: str, identifier: str):
    if user_id:
        return db.collection(COLLECTION).document(user_id)
    digest = hashlib.sha256(f"{kind}:{identifier.strip().lower()}".encode()).hexdigest()
    return db.collection(COLLECTION).document(f"unknown_{digest}")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a failure or success changes, and whether the owner should hear about it."""
    doc: dict[str, Any]
    notify: str | None = None  # "locked" | "hard_locked"


def _window(doc: dict[str, Any], now: dt.datetime) -> tuple[int, int]:
    epoch = int(now.timestamp())
    start = epoch - epoch % WINDOW_SECONDS
    count = int(doc.get("window_count") or 0) if doc.get("window_start") == start else 0
    return start, count


def check(doc: dict[str, Any], now: dt.datetime, settings) -> None:
    """Refuse the attempt before any password work: hard lock, lockout or spent budget."""
    if doc.get("hard_locked"):
        raise RateLimited("Password sign-in is locked after too many failed attempts. Reset "
                          "your password (POST /v1/auth/password/forgot) or sign in another way.",
                          code="login_locked")
    locked_until = doc.get("locked_until")
    if locked_until is not None and locked_until > now:
        wait = max(1, int((locked_until - now).total_seconds() + 0.999))
        raise RateLimited(f"Too many failed sign-in attempts; try again in {wait}s.",
                          code="login_locked", headers={"Retry-After": str(wait)})
    start, count = _window(doc, now)
    if count >= settings.login_attempts_per_minute:
        wait = max(1, start + WINDOW_SECONDS - int(now.timestamp()))
        raise RateLimited(f"Too many sign-in attempts for this account; limit is "
                          f"{settings.login_attempts_per_minute} per minute.",
                          headers={"Retry-After": str(wait)})


# A guard nobody has touched for this long is deleted by the TTL policy (its failures are
# forgiven); a hard-locked one never expires: it waits for a password reset.
IDLE_EXPIRY = dt.timedelta(days=30)


def after_attempt(doc: dict[str, Any], now: dt.datetime, settings, *, ok: bool) -> Verdict:
    """The guard document after this attempt (whole document: it is written with ``set``)."""
    start, count = _window(doc, now)
    base = {"window_start": start, "window_count": count + 1, "updated_at": now,
            "expires_at": now + IDLE_EXPIRY}
    if ok:
        return Verdict({**base, "consecutive_failures": 0, "locked_until": None,
                        "hard_locked": False, "lock_notified": False})
    failures = int(doc.get("consecutive_failures") or 0) + 1
    out = {**base, "consecutive_failures": failures, "last_failure_at": now,
           "locked_until": doc.get("locked_until"), "hard_locked": bool(doc.get("hard_locked")),
           "lock_notified": bool(doc.get("lock_notified"))}
    notify = None
    if failures >= settings.hard_lock_after:
        out.update(hard_locked=True, locked_until=None, expires_at=None)
        notify = "hard_locked" if not doc.get("hard_locked") else None
    elif failures >= settings.lockout_after:
        doublings = min(failures - settings.lockout_after, 30)
        seconds = min(settings.lockout_max_seconds, settings.lockout_base_seconds * 2 ** doublings)
        out["locked_until"] = now + dt.timedelta(seconds=seconds)
        if not doc.get("lock_notified"):
            out["lock_notified"] = True
            notify = "locked"
    return Verdict(out, notify)


def reset_doc(now: dt.datetime) -> dict[str, Any]:
    """A password reset or change clears every lock."""
    return {"consecutive_failures": 0, "locked_until": None, "hard_locked": False,
            "lock_notified": False, "updated_at": now, "expires_at": now + IDLE_EXPIRY}


def ip_ref(db, ip: str):
    return db.collection(COLLECTION).document(
        "ip_" + hashlib.sha256(ip.strip().lower().encode()).hexdigest())


def check_ip(doc: dict[str, Any], now: dt.datetime, settings) -> None:
    start, count = _window(doc, now)
    if count >= settings.login_failures_per_ip_per_minute:
        wait = max(1, start + WINDOW_SECONDS - int(now.timestamp()))
        raise RateLimited(f"Too many failed sign-ins from this address; limit is "
                          f"{settings.login_failures_per_ip_per_minute} per minute.",
                          headers={"Retry-After": str(wait)})


def ip_after_failure(doc: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    start, count = _window(doc, now)
    return {"window_start": start, "window_count": count + 1, "updated_at": now,
            "expires_at": now + dt.timedelta(seconds=2 * WINDOW_SECONDS)}
