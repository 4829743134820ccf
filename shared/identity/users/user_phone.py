"""Adding and verifying a phone number on an existing account (``/v1/me/phone``).

Start texts a code bound to the signed-in user (purpose ``add_phone``) through the same path as
phone sign-in, so the same pumping protection applies: allowed countries, per-number,
per-block and per-country send limits, the resend interval (``otp.issue_code``). The answer
never says whether the number belongs to another account; only someone who receives the code
can learn that, at verify time (409 ``phone_in_use``).

Verify consumes the code and, in the same commit, claims the ``phone:`` handle, releases the
account's previous number, and marks the phone verified (``user.phone_verified`` event).
"""
from __future__ import annotations

from shared.identity.factors import otp
from shared.identity.users import directory
from shared.identity.factors.phone import parse_phone
from shared.identity.users.profile import to_resource as user_resource
from shared.identity.resources import USER_PHONE_VERIFIED, User
from shared.identity.responses import PhoneVerification
from shared.platform.errors import Conflict, NotFound

PURPOSE = "add_phone"


def start(uow, *, user_id: str, phone: str) -> PhoneVerification:
    number = parse_phone(phone)
    expires_at = otp.issue_code(uow, number, PURPOSE, user_id=user_id)
    return otp.code_sent(uow.deps, number, PURPOSE, expires_at)


def verify(uow, *, user_id: str, phone: str, code: str, ip: str | None) -> User:
    db, now = uow.db, uow.now
    number = parse_phone(phone)
    uref = directory.user_ref(db, user_id)
    handle = directory.handle_ref(db, "phone", number.e164)
    snaps = uow.get_all([uref, handle])  # read with the code in one batch below
    otp.verify_code(uow, phone=number.e164, code=code, purpose=PURPOSE, ip=ip, user_id=user_id)
    usnap, held = snaps[uref.path], snaps[handle.path]
    if not usnap.exists:
        raise NotFound("No such user.")
    user = usnap.to_dict()
    if held.exists and held.get("user_id") != user_id:
        uow.keep_writes_on_error = True  # the code is spent either way
        raise Conflict("This phone number belongs to another account.", code="phone_in_use",
                       param="phone")
    if not held.exists:
        if user.get("phone") and user["phone"] != number.e164:
            directory.release_handle(db, uow, "phone", user["phone"])
        directory.claim_handle(db, uow, "phone", number.e164, user_id, now)
    user = {**user, "phone": number.e164, "phone_verified": True, "phone_verified_at": now}
    uow.update(uref, {"phone": number.e164, "phone_verified": True, "phone_verified_at": now})
    uow.emit(USER_PHONE_VERIFIED.name, tenant=user_id,
             data={"object": user_resource(user).model_dump(mode="json"), "phone": number.e164})
    return user_resource(user)
