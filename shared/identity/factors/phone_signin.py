"""Phone sign-in and sign-up with an SMS one-time code (``/v1/auth/phone/start`` and
``/verify``).

Start texts a code (purpose ``signin``) through ``factors.otp``, with its limits and pumping
protection; the answer never says whether an account exists. Verify consumes the code and, in
the same commit, finds the phone's user (``phone:`` handle) or creates one, then ends like every
sign-in (``sessions.signin``): tokens, or an MFA challenge when a second factor is on.
"""
from __future__ import annotations

from shared.identity.factors import otp
from shared.identity.factors.phone import parse_phone
from shared.identity.responses import MfaChallenge, PhoneSignIn, PhoneVerification
from shared.identity.sessions.signin import finish_sign_in
from shared.identity.users import directory
from shared.identity.resources import USER_CREATED
from shared.platform.errors import InvalidRequest
from shared.platform.ratelimit import Limit, enforce

PURPOSES = ("signin",)


def start_verification(uow, *, phone: str, purpose: str, ip: str) -> PhoneVerification:
    """Send a fresh code to ``phone``. The answer never says whether an account exists."""
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}.", param="purpose")
    deps = uow.deps
    s = otp.otp_settings(deps)
    enforce(uow.db, Limit("auth.otp.start.ip", s.ip_starts_per_hour, 3600), ip, uow.now)
    number = parse_phone(phone)
    return otp.code_sent(deps, number, purpose, otp.issue_code(uow, number, purpose))


def sign_in_with_code(uow, *, phone: str, code: str, ip: str,
                      user_agent: str | None) -> PhoneSignIn | MfaChallenge:
    """Consume the code and, in the same commit, find or create the phone's user; then tokens,
    or an MFA challenge when the account has a second factor on.

    Returns the token pair plus ``user_id`` and ``new_user`` (or the ``mfa_challenge``).
    """
    otp.verification_limit(uow.deps, ip)
    number = otp.checked_input(phone, code)
    db, now = uow.db, uow.now
    purpose = "signin"
    ref = otp.code_ref(db, purpose, number.e164)
    handle = directory.handle_ref(db, "phone", number.e164)
    snaps = uow.get_all([handle, ref])
    held = snaps[handle.path]
    otp.judge_code(uow, ref, snaps[ref.path], code=code, number=number, purpose=purpose)
    created = False
    if held.exists:
        usnap = uow.get(directory.user_ref(db, held.get("user_id")))
        user = usnap.to_dict() if usnap.exists else None
        if user is None:
            raise InvalidRequest("This code is not valid. Request a new one.", code="otp_invalid",
                                 param="code")
        if not user.get("phone_verified"):
            uow.update(directory.user_ref(db, user["id"]), {"phone_verified": True})
    else:
        user = directory.new_user_doc(now=now, phone=number.e164, phone_verified=True)
        directory.insert_user(db, uow, user, now=now)
        uow.emit(USER_CREATED.name, tenant=user["id"],
                 data={"object": {"id": user["id"], "object": "user"}, "method": "phone",
                       "carrier": number.carrier.key if number.carrier else None})
        created = True
    answer = finish_sign_in(uow, user, amr=["sms"], ip=ip, user_agent=user_agent)
    if isinstance(answer, MfaChallenge):  # a second factor is on: no tokens yet
        return answer
    return PhoneSignIn(**dict(answer), user_id=user["id"], new_user=created)
