"""SMS as a second factor: a code texted to the account's verified phone.

Enrolment needs a verified phone (``/v1/me/phone``) and a code texted to it now, so the owner
proves the number still reaches them (``POST /v1/me/mfa/sms`` texts it, ``.../confirm`` checks
it). ``user_mfa/{usr_…}.sms_enabled`` then turns the factor on and ``users.mfa_enabled`` with
it. At sign-in the challenge lists ``sms``; ``POST /v1/auth/mfa/sms`` texts a code bound to the
challenge's user (purpose ``mfa``), and ``POST /v1/auth/mfa/verify`` with ``method: "sms"``
consumes it. Codes, limits and pumping protection are those of ``shared.identity.factors.otp``; the SMS
leaves after commit through notify. NIST SP 800-63B calls SMS a "restricted" authenticator;
TOTP stays the recommended factor and both can be on.
"""
from __future__ import annotations

from typing import Any

from shared.identity.factors import otp
from shared.identity.users import directory
from shared.identity.factors.phone import mask, parse_phone
from shared.platform.errors import AuthenticationError, Unprocessable

PURPOSE = "mfa"
MFA = "user_mfa"
CHALLENGES = "mfa_challenges"


def _verified_phone(uow, user_id: str) -> str:
    usnap = uow.get(directory.user_ref(uow.db, user_id))
    user = usnap.to_dict() if usnap.exists else {}
    if not (user.get("phone") and user.get("phone_verified")):
        raise Unprocessable("Add and verify a phone number first (POST /v1/me/phone).",
                            code="phone_not_verified")
    return user["phone"]


def begin(uow, user_id: str) -> dict[str, Any]:
    """Text a code to the verified phone to prove it before turning the factor on."""
    phone = _verified_phone(uow, user_id)
    otp.issue_code(uow, parse_phone(phone), PURPOSE, user_id=user_id)
    return {"object": "mfa_sms_enrollment", "phone": mask(phone),
            "expires_in": otp.otp_settings(uow.deps).ttl_seconds}


def confirm(uow, user_id: str, code: str) -> dict[str, Any]:
    phone = _verified_phone(uow, user_id)
    otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    uow.set(uow.db.collection(MFA).document(user_id),
            {"user_id": user_id, "sms_enabled": True, "sms_enabled_at": uow.now}, merge=True)
    uow.update(directory.user_ref(uow.db, user_id), {"mfa_enabled": True})
    return {"object": "mfa_status", "sms_enabled": True, "phone": mask(phone)}


def disable(uow, user_id: str, code: str) -> dict[str, Any]:
    """Turn SMS off with a code texted now (``begin`` first); TOTP, if on, stays on."""
    phone = _verified_phone(uow, user_id)
    mref = uow.db.collection(MFA).document(user_id)
    doc = uow.get(mref).to_dict() or {}
    if not doc.get("sms_enabled"):
        raise Unprocessable("SMS two-factor authentication is not enabled.", code="mfa_not_enabled")
    otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    uow.set(mref, {"sms_enabled": False}, merge=True)
    uow.update(directory.user_ref(uow.db, user_id), {"mfa_enabled": bool(doc.get("totp_secret"))})
    return {"object": "mfa_status", "sms_enabled": False}


def send_challenge_code(uow, challenge_id: str) -> dict[str, Any]:
    """Text a code for a pending sign-in challenge whose user has SMS on."""
    csnap = uow.get(uow.db.collection(CHALLENGES).document(challenge_id))
    challenge = csnap.to_dict() if csnap.exists else {}
    if challenge.get("status") != "pending" or challenge["expires_at"] <= uow.now:
        raise AuthenticationError("This sign-in challenge is no longer valid; sign in again.",
                                  code="mfa_challenge_invalid")
    user_id = challenge["user_id"]
    msnap = uow.get(uow.db.collection(MFA).document(user_id))
    if not (msnap.exists and msnap.get("sms_enabled")):
        raise Unprocessable("SMS is not a second factor of this account.", code="mfa_method_unavailable")
    phone = _verified_phone(uow, user_id)
    otp.issue_code(uow, parse_phone(phone), PURPOSE, user_id=user_id)
    return {"object": "mfa_sms_sent", "challenge_id": challenge_id, "phone": mask(phone),
            "expires_in": otp.otp_settings(uow.deps).ttl_seconds}


def consume(uow, user_id: str, code: str) -> bool:
    """Whether ``code`` is the live SMS code of ``user_id`` (consumed if so). A wrong code
    counts against the SMS code's own attempts as well as the challenge's."""
    from shared.platform.errors import InvalidRequest
    usnap = uow.get(directory.user_ref(uow.db, user_id))
    phone = (usnap.to_dict() or {}).get("phone") if usnap.exists else None
    if not phone:
        return False
    try:
        otp.verify_code(uow, phone=phone, code=code, purpose=PURPOSE, ip=None, user_id=user_id)
    except InvalidRequest:
        return False
    return True
