"""One-time codes sent by SMS, and phone sign-in / sign-up with them.

A code is 6 digits from ``secrets.randbelow``. Only ``HMAC-SHA256(key = salt || pepper,
msg = purpose ":" phone ":" code)`` is stored, with a fresh 16-byte salt per code (``pepper`` is
an optional server secret, ``PAYLOOM_OTP_PEPPER``). One live code per (purpose, number), in
``phone_otps/{sha256(purpose:phone)}``; a new code replaces the old one.

Rules (ADR 0011):

* expiry ``ttl_seconds`` (60 s, configurable 60–300);
* one send per ``resend_interval_seconds`` (60 s) per number: a faster resend is a 429 with
  ``Retry-After``;
* ``max_attempts`` (5) wrong tries kill the code; a used code never works again;
* per number: ``sends_per_hour`` (5) and ``sends_per_day`` (30) SMS;
* per IP: ``ip_starts_per_hour`` (150) starts and ``ip_verifications_per_window`` (30) checks per
  ``ip_verification_window_seconds`` (300);
* the comparison is constant time (``hmac.compare_digest``); codes are never logged.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from google.cloud import firestore
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.identity import directory
from shared.identity.phone import PhoneNumber, mask, parse_phone
from shared.identity.ports_sms import SmsError, sms_sender, sms_settings
from shared.platform.clock import rfc3339
from shared.platform.errors import (InvalidRequest, RateLimited,
                                    ServiceUnavailable)
from shared.platform.logs import get_logger
from shared.platform.outbox import publish_events, record_event
from shared.platform.ratelimit import Limit, enforce

_log = get_logger(__name__)
COLLECTION = "phone_otps"
SETTINGS_KEY = "identity.otp_settings"
CODE_DIGITS = 6
CODE_RE = re.compile(r"^\d{6}$")
PURPOSES = ("signin",)
# Provider errors that mean "this number cannot receive our SMS" (Twilio codes).
_UNREACHABLE = {21211, 21214, 21408, 21610, 21612, 21614}


class OtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_OTP_", extra="ignore")

    ttl_seconds: int = Field(60, ge=60, le=300)
    resend_interval_seconds: int = Field(60, ge=1)
    max_attempts: int = Field(5, ge=1, le=10)
    pepper: str = Field("", repr=False)
    sends_per_hour: int = 5
    sends_per_day: int = 30
    ip_starts_per_hour: int = 150
    ip_verifications_per_window: int = 30
    ip_verification_window_seconds: int = 300


def otp_settings(deps) -> OtpSettings:
    return deps.get(SETTINGS_KEY, OtpSettings)


def _doc_ref(db, purpose: str, e164: str):
    return db.collection(COLLECTION).document(hashlib.sha256(f"{purpose}:{e164}".encode()).hexdigest())


def hash_code(code: str, *, salt: bytes, phone: str, purpose: str, pepper: str = "") -> str:
    key = salt + pepper.encode()
    return hmac.new(key, f"{purpose}:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def _retry_after(seconds: float) -> RateLimited:
    wait = max(1, int(-(-seconds // 1)))
    return RateLimited(f"A code was sent moments ago; you can ask for another in {wait}s.",
                       code="otp_resend_too_soon", headers={"Retry-After": str(wait)})


# --- sending ----------------------------------------------------------------------------------

def start_verification(deps, *, phone: str, purpose: str, ip: str) -> dict[str, Any]:
    """Send a fresh code to ``phone``. The answer never says whether an account exists."""
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}.", param="purpose")
    s = otp_settings(deps)
    db, now = deps.db, deps.clock.now()
    enforce(db, Limit("auth.otp.start.ip", s.ip_starts_per_hour, 3600), ip, now)
    number = parse_phone(phone)
    ref = _doc_ref(db, purpose, number.e164)
    resend = dt.timedelta(seconds=s.resend_interval_seconds)

    snap = ref.get()
    if snap.exists and snap.get("sent_at") and now < snap.get("sent_at") + resend:
        raise _retry_after((snap.get("sent_at") + resend - now).total_seconds())
    enforce(db, Limit("auth.otp.send.phone.hour", s.sends_per_hour, 3600), number.e164, now)
    enforce(db, Limit("auth.otp.send.phone.day", s.sends_per_day, 86400), number.e164, now)

    code, salt = new_code(), secrets.token_bytes(16)
    expires_at = now + dt.timedelta(seconds=s.ttl_seconds)
    doc = {"purpose": purpose, "phone": number.e164, "salt": salt.hex(),
           "code_hash": hash_code(code, salt=salt, phone=number.e164, purpose=purpose, pepper=s.pepper),
           "status": "pending", "attempts": 0, "max_attempts": s.max_attempts,
           "created_at": now, "sent_at": now, "expires_at": expires_at, "consumed_at": None,
           "provider_id": None, "purge_at": now + dt.timedelta(days=1)}

    @firestore.transactional
    def claim(txn) -> float | None:
        current = ref.get(transaction=txn)
        if current.exists and current.get("sent_at") and now < current.get("sent_at") + resend:
            return (current.get("sent_at") + resend - now).total_seconds()
        txn.set(ref, doc)
        return None

    wait = claim(db.transaction())
    if wait is not None:  # a concurrent request won the race
        raise _retry_after(wait)

    body = (f"{sms_settings(deps).brand} code: {code}\n"
            f"It expires in {s.ttl_seconds // 60 if s.ttl_seconds % 60 == 0 else s.ttl_seconds}"
            f"{' min' if s.ttl_seconds % 60 == 0 else ' s'}. Never share it.")
    try:
        sent = sms_sender(deps).send(number.e164, body)
    except SmsError as exc:
        # Nothing reached the phone: free the resend window so the user can try again.
        ref.update({"status": "failed", "sent_at": None})
        _log.warning("otp sms failed for %s: %s", mask(number.e164), exc)
        if exc.provider_code in _UNREACHABLE:
            raise InvalidRequest("This number cannot receive SMS.", code="phone_unreachable",
                                 param="phone") from None
        raise ServiceUnavailable("The SMS could not be sent; try again shortly.",
                                 code="sms_unavailable", headers={"Retry-After": "5"}) from None
    ref.update({"provider_id": sent.provider_id})
    _log.info("otp sent to %s (%s)", mask(number.e164), number.carrier.name if number.carrier else "-")
    return {"object": "phone_verification", "purpose": purpose, "phone": number.e164,
            "country_code": number.country_code, "region": number.region,
            "carrier": number.carrier.name if number.carrier else None,
            "expires_in": s.ttl_seconds, "expires_at": rfc3339(expires_at),
            "resend_after": s.resend_interval_seconds}


# --- checking ---------------------------------------------------------------------------------

_FAILURES = {
    "missing": ("This code is not valid. Request a new one.", "otp_invalid"),
    "consumed": ("This code was already used. Request a new one.", "otp_invalid"),
    "expired": ("This code has expired. Request a new one.", "otp_expired"),
    "dead": ("Too many wrong codes. Request a new one.", "otp_attempts_exceeded"),
    "wrong": ("The code is incorrect.", "otp_incorrect"),
}


def _check_in_txn(txn, ref, *, code: str, number: PhoneNumber, purpose: str, now: dt.datetime,
                  pepper: str) -> tuple[str, int]:
    """Read and judge the code inside ``txn``; records the outcome (attempt or consumption).

    Returns (outcome, remaining attempts); outcome "ok" or a key of ``_FAILURES``.
    Must run before any other write of the transaction (it reads).
    """
    snap = ref.get(transaction=txn)
    if not snap.exists:
        return "missing", 0
    doc = snap.to_dict()
    if doc["status"] == "consumed":
        return "consumed", 0
    if doc["status"] == "dead" or doc["attempts"] >= doc["max_attempts"]:
        return "dead", 0
    if doc["status"] != "pending":
        return "missing", 0
    if now >= doc["expires_at"]:
        txn.update(ref, {"status": "expired"})
        return "expired", 0
    expected = doc["code_hash"]
    given = hash_code(code, salt=bytes.fromhex(doc["salt"]), phone=number.e164, purpose=purpose,
                      pepper=pepper)
    if hmac.compare_digest(expected.encode(), given.encode()):
        txn.update(ref, {"status": "consumed", "consumed_at": now})
        return "ok", 0
    attempts = doc["attempts"] + 1
    update: dict[str, Any] = {"attempts": attempts}
    if attempts >= doc["max_attempts"]:
        update["status"] = "dead"
    txn.update(ref, update)
    return ("dead" if attempts >= doc["max_attempts"] else "wrong"), doc["max_attempts"] - attempts


def _raise_failure(outcome: str, remaining: int) -> None:
    message, code = _FAILURES[outcome]
    if outcome == "wrong":
        message += f" {remaining} attempt{'s' if remaining != 1 else ''} left."
    raise InvalidRequest(message, code=code, param="code")


def _verification_limit(deps, ip: str) -> None:
    s = otp_settings(deps)
    enforce(deps.db, Limit("auth.otp.verify.ip", s.ip_verifications_per_window,
                           s.ip_verification_window_seconds), ip, deps.clock.now())


def verify_code(deps, *, phone: str, code: str, purpose: str, ip: str) -> PhoneNumber:
    """Check and consume a code (for flows that do their own thing after, e.g. MFA)."""
    _verification_limit(deps, ip)
    number = parse_phone(phone)
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidRequest("The code is 6 digits.", code="parameter_invalid", param="code")
    db, now = deps.db, deps.clock.now()
    ref = _doc_ref(db, purpose, number.e164)
    pepper = otp_settings(deps).pepper

    @firestore.transactional
    def run(txn):
        return _check_in_txn(txn, ref, code=code, number=number, purpose=purpose, now=now,
                             pepper=pepper)

    outcome, remaining = run(db.transaction())
    if outcome != "ok":
        _raise_failure(outcome, remaining)
    return number


# --- phone sign-in / sign-up -----------------------------------------------------------------

def sign_in_with_code(deps, *, phone: str, code: str, ip: str,
                      user_agent: str | None) -> dict[str, Any]:
    """Consume the code and, in the same transaction, find or create the phone's user.

    Returns ``start_session(...)``'s answer plus ``user_id`` and ``new_user``.
    """
    from shared.identity.signin import finish_sign_in_now, is_challenge

    _verification_limit(deps, ip)
    number = parse_phone(phone)
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidRequest("The code is 6 digits.", code="parameter_invalid", param="code")
    db, now = deps.db, deps.clock.now()
    purpose = "signin"
    ref = _doc_ref(db, purpose, number.e164)
    pepper = otp_settings(deps).pepper
    handle = directory.handle_ref(db, "phone", number.e164)

    @firestore.transactional
    def run(txn):
        # All reads first (Firestore transactions read before they write).
        held = handle.get(transaction=txn)
        user = None
        if held.exists:
            user = directory.get_user(db, held.get("user_id"), transaction=txn)
        outcome, remaining = _check_in_txn(txn, ref, code=code, number=number, purpose=purpose,
                                           now=now, pepper=pepper)
        if outcome != "ok":
            return outcome, remaining, None, False, []
        if user is not None:
            if not user.get("phone_verified"):
                txn.update(directory.user_ref(db, user["id"]), {"phone_verified": True})
            return "ok", 0, user, False, []
        user = directory.new_user_doc(now=now, phone=number.e164, phone_verified=True)
        directory.insert_user(db, txn, user, now=now)
        event = record_event(db, txn, type="user.created", tenant=user["id"], now=now,
                             data={"object": {"id": user["id"], "object": "user"},
                                   "method": "phone",
                                   "carrier": number.carrier.key if number.carrier else None})
        return "ok", 0, user, True, [event]

    outcome, remaining, user, created, events = run(db.transaction())
    if outcome != "ok":
        _raise_failure(outcome, remaining)
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic)
    answer = finish_sign_in_now(deps, user, amr=["sms"], ip=ip, user_agent=user_agent)
    if is_challenge(answer):  # a second factor is on: no tokens yet
        return answer
    return {**answer, "user_id": user["id"], "new_user": created}
