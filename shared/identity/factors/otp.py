"""One-time codes sent by SMS (phone sign-in ``factors.phone_signin``, adding a phone
``users.user_phone``, the SMS second factor ``factors.sms``).

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
* the comparison is constant time (``hmac.compare_digest``); codes are never logged;
* SMS pumping: only ``allowed_countries`` (default KH), and sends capped per number block and
  per country (``check_destination``);
* the SMS is queued through notify in the same commit as the code and leaves after it, so a
  provider outage never fails or slows the request;
* a used code answers exactly like a number that never had one (no "signed in recently" oracle).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.identity.factors.phone import PhoneNumber, mask, parse_phone
from shared.identity.ports_sms import sms_settings
from shared.identity.responses import PhoneVerification
from shared.platform.clock import rfc3339
from shared.platform.errors import InvalidRequest, RateLimited
from shared.platform.logs import get_logger
from shared.platform.ratelimit import Limit, enforce

_log = get_logger(__name__)
COLLECTION = "phone_otps"
SETTINGS_KEY = "identity.otp_settings"
CODE_DIGITS = 6
CODE_RE = re.compile(r"^\d{6}$")


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
    # SMS pumping (issue 7, defect 11): codes go only to these regions (ISO 3166 alpha-2), and
    # sends are capped per country and per number block (the number minus its last
    # ``prefix_hidden_digits`` digits), so a bot cannot walk a premium range.
    allowed_countries: list[str] = ["KH"]
    sends_per_country_per_hour: int = 1000
    sends_per_prefix_per_hour: int = 20
    prefix_hidden_digits: int = Field(4, ge=1, le=8)


def otp_settings(deps) -> OtpSettings:
    return deps.get(SETTINGS_KEY, OtpSettings)


def code_ref(db, purpose: str, e164: str, user_id: str | None = None):
    """One live code per (purpose, number), and per user when the code is bound to one: a code
    another account asks for the same number never replaces (or cancels) this user's."""
    key = f"{purpose}:{e164}" if user_id is None else f"{purpose}:{e164}:{user_id}"
    return db.collection(COLLECTION).document(hashlib.sha256(key.encode()).hexdigest())


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

def check_destination(deps, number: PhoneNumber, now: dt.datetime) -> None:
    """Refuse countries we do not serve, then count the send per number, country and block."""
    s = otp_settings(deps)
    if (number.region or "").upper() not in {c.upper() for c in s.allowed_countries}:
        raise InvalidRequest("Codes cannot be sent to numbers in this country.",
                             code="phone_country_not_allowed", param="phone")
    db = deps.db
    enforce(db, Limit("auth.otp.send.phone.hour", s.sends_per_hour, 3600), number.e164, now)
    enforce(db, Limit("auth.otp.send.phone.day", s.sends_per_day, 86400), number.e164, now)
    enforce(db, Limit("auth.otp.send.prefix.hour", s.sends_per_prefix_per_hour, 3600),
            number.e164[:-s.prefix_hidden_digits], now)
    enforce(db, Limit("auth.otp.send.country.hour", s.sends_per_country_per_hour, 3600),
            str(number.region), now)


def otp_text(deps, code: str) -> str:
    s = otp_settings(deps)
    return (f"{sms_settings(deps).brand} code: {code}\n"
            f"It expires in {s.ttl_seconds // 60 if s.ttl_seconds % 60 == 0 else s.ttl_seconds}"
            f"{' min' if s.ttl_seconds % 60 == 0 else ' s'}. Never share it.")


def issue_code(uow, number: PhoneNumber, purpose: str, *, user_id: str | None = None) -> dt.datetime:
    """Store a fresh code for (purpose, number) and queue its SMS, in ``uow``; returns its
    expiry. One live code per number, per user when bound (``code_ref``): a resend sooner than
    the interval is a 429. ``user_id`` binds the code to a signed-in user (adding a phone, the
    SMS second factor, a relay SIM); the number's send limits are shared by every user."""
    deps, now = uow.deps, uow.now
    s = otp_settings(deps)
    ref = code_ref(uow.db, purpose, number.e164, user_id)
    resend = dt.timedelta(seconds=s.resend_interval_seconds)
    current = uow.get(ref)
    if current.exists and current.get("sent_at") and now < current.get("sent_at") + resend:
        raise _retry_after((current.get("sent_at") + resend - now).total_seconds())
    check_destination(deps, number, now)
    code, salt = new_code(), secrets.token_bytes(16)
    expires_at = now + dt.timedelta(seconds=s.ttl_seconds)
    uow.set(ref, {"purpose": purpose, "phone": number.e164, "salt": salt.hex(),
                  "code_hash": hash_code(code, salt=salt, phone=number.e164, purpose=purpose,
                                         pepper=s.pepper),
                  "status": "pending", "attempts": 0, "max_attempts": s.max_attempts,
                  "created_at": now, "sent_at": now, "expires_at": expires_at,
                  "consumed_at": None, "purge_at": now + dt.timedelta(days=1),
                  "user_id": user_id})
    queue_sms(uow, number, otp_text(deps, code), user_id=user_id)
    _log.info("otp queued for %s (%s)", mask(number.e164),
              number.carrier.name if number.carrier else "-")
    return expires_at


def code_sent(deps, number: PhoneNumber, purpose: str, expires_at: dt.datetime) -> PhoneVerification:
    """The answer to a texted code (phone sign-in and ``/v1/me/phone`` alike)."""
    s = otp_settings(deps)
    return PhoneVerification(
        purpose=purpose, phone=number.e164, country_code=number.country_code,
        region=number.region, carrier=number.carrier.name if number.carrier else None,
        expires_in=s.ttl_seconds, expires_at=rfc3339(expires_at),
        resend_after=s.resend_interval_seconds)


def queue_sms(uow, number: PhoneNumber, body: str, *, user_id: str | None = None) -> None:
    """The SMS leaves after commit through ``shared.notify`` (never inside the request); a
    provider outage delays it, retried with back-off, and never fails the request."""
    from shared.notify import queue_sms as notify_queue_sms
    notify_queue_sms(uow, to=number.e164, text=body, kind="otp", user_id=user_id)


# --- checking ---------------------------------------------------------------------------------

_FAILURES = {
    "missing": ("This code is not valid. Request a new one.", "otp_invalid"),
    # A used code answers exactly like a missing one: "already used" would say the number
    # signed in recently (account enumeration, issue 7 defect 9).
    "consumed": ("This code is not valid. Request a new one.", "otp_invalid"),
    "expired": ("This code has expired. Request a new one.", "otp_expired"),
    "dead": ("Too many wrong codes. Request a new one.", "otp_attempts_exceeded"),
    "wrong": ("The code is incorrect.", "otp_incorrect"),
}


def judge_code(uow, ref, snap, *, code: str, number: PhoneNumber, purpose: str) -> str:
    """Judge ``code`` against the stored one (``snap`` of ``ref``, read in ``uow``) and record
    the outcome: consumption, or one more wrong attempt. Returns "ok"; otherwise raises the
    failure with ``keep_writes_on_error`` so the wrong attempt is committed."""
    now = uow.now
    if not snap.exists:
        _raise_failure("missing", 0)
    doc = snap.to_dict()
    if doc["status"] == "consumed":
        _raise_failure("consumed", 0)
    if doc["status"] == "dead" or doc["attempts"] >= doc["max_attempts"]:
        _raise_failure("dead", 0)
    if doc["status"] != "pending":
        _raise_failure("missing", 0)
    if now >= doc["expires_at"]:
        uow.update(ref, {"status": "expired"})
        uow.keep_writes_on_error = True
        _raise_failure("expired", 0)
    given = hash_code(code, salt=bytes.fromhex(doc["salt"]), phone=number.e164, purpose=purpose,
                      pepper=otp_settings(uow.deps).pepper)
    if hmac.compare_digest(doc["code_hash"].encode(), given.encode()):
        uow.update(ref, {"status": "consumed", "consumed_at": now})
        return "ok"
    attempts = doc["attempts"] + 1
    update: dict[str, Any] = {"attempts": attempts}
    if attempts >= doc["max_attempts"]:
        update["status"] = "dead"
    uow.update(ref, update)
    uow.keep_writes_on_error = True
    _raise_failure("dead" if attempts >= doc["max_attempts"] else "wrong",
                   doc["max_attempts"] - attempts)
    return "unreachable"


def _raise_failure(outcome: str, remaining: int) -> None:
    message, code = _FAILURES[outcome]
    if outcome == "wrong":
        message += f" {remaining} attempt{'s' if remaining != 1 else ''} left."
    raise InvalidRequest(message, code=code, param="code")


def verification_limit(deps, ip: str) -> None:
    s = otp_settings(deps)
    enforce(deps.db, Limit("auth.otp.verify.ip", s.ip_verifications_per_window,
                           s.ip_verification_window_seconds), ip, deps.clock.now())


def checked_input(phone: str, code: str) -> PhoneNumber:
    number = parse_phone(phone)
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidRequest("The code is 6 digits.", code="parameter_invalid", param="code")
    return number


def verify_code(uow, *, phone: str, code: str, purpose: str, ip: str | None,
                user_id: str | None = None) -> PhoneNumber:
    """Check and consume a code in ``uow`` (for flows that do their own thing after: adding a
    phone to an account, the SMS second factor). A code bound to another user is "missing"."""
    if ip:
        verification_limit(uow.deps, ip)
    number = checked_input(phone, code)
    ref = code_ref(uow.db, purpose, number.e164, user_id)
    snap = uow.get(ref)
    if snap.exists and snap.get("user_id") != user_id:
        _raise_failure("missing", 0)
    judge_code(uow, ref, snap, code=code, number=number, purpose=purpose)
    return number
