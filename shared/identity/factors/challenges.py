"""The sign-in challenge: what every sign-in method answers when the account has a second
factor on (``sessions.signin``), and how it is completed.

``mfa_challenges/{mfc_…}``: ``user_id``, ``amr`` (how the first factor was proven), ``ip``,
``user_agent``, ``expires_at`` (5 min), ``attempts`` (capped), ``status`` (``pending`` |
``completed`` | ``failed`` | ``expired``). Completing it with a TOTP, backup or SMS code opens
the session in the same commit.
"""
from __future__ import annotations

import datetime as dt
from shared.identity.config import identity_settings
from shared.identity.factors import mfa, sms
from shared.identity.factors.phone import mask
from shared.identity.responses import MfaChallenge, MfaSmsSent, TokenPair
from shared.identity.sessions.sessions import open_session
from shared.platform.errors import AuthenticationError, Unprocessable
from shared.platform.ids import new_id

CHALLENGES = "mfa_challenges"


def challenge_ref(db, challenge_id: str):
    return db.collection(CHALLENGES).document(challenge_id)


def create_challenge(uow, *, user_id: str, amr: list[str], ip: str | None,
                     user_agent: str | None) -> MfaChallenge:
    """A pending second-factor challenge (a blind create in ``uow``); no tokens yet."""
    settings = identity_settings(uow.deps)
    now = uow.now
    msnap = uow.get(mfa.mfa_ref(uow.db, user_id))  # which factors to offer
    methods = mfa.methods(msnap.to_dict() if msnap.exists else {}) or ["totp", "backup_code"]
    challenge_id = new_id("mfc", 32)
    expires = now + dt.timedelta(seconds=settings.mfa_challenge_ttl_seconds)
    uow.create(challenge_ref(uow.db, challenge_id), {
        "id": challenge_id, "user_id": user_id, "amr": amr, "ip": ip,
        "user_agent": (user_agent or "")[:512] or None, "status": "pending", "attempts": 0,
        "created_at": now, "expires_at": expires})
    return MfaChallenge(challenge_id=challenge_id, methods=methods,
                        expires_in=settings.mfa_challenge_ttl_seconds)


def _challenge_failed() -> AuthenticationError:
    return AuthenticationError("The verification code is not valid.", code="invalid_mfa_code")


def _challenge_invalid() -> AuthenticationError:
    return AuthenticationError("This sign-in challenge is no longer valid; sign in again.",
                               code="mfa_challenge_invalid")


def verify_challenge(uow, *, challenge_id: str, code: str, method: str | None = None,
                     ip: str | None = None, user_agent: str | None = None) -> TokenPair:
    """Complete an MFA challenge with a TOTP or backup code; returns the token pair.

    A wrong code still commits (the attempt counts): ``keep_writes_on_error``.
    """
    settings = identity_settings(uow.deps)
    db, now = uow.db, uow.now
    cref = challenge_ref(db, challenge_id)
    csnap = uow.get(cref)
    if not csnap.exists:
        raise _challenge_invalid()
    challenge = csnap.to_dict()
    if challenge["status"] != "pending":
        raise _challenge_invalid()
    uow.keep_writes_on_error = True
    if challenge["expires_at"] <= now:
        uow.update(cref, {"status": "expired"})
        raise AuthenticationError("This sign-in challenge has expired; sign in again.",
                                  code="mfa_challenge_expired")
    mref = mfa.mfa_ref(db, challenge["user_id"])
    msnap = uow.get(mref)
    doc = msnap.to_dict() if msnap.exists else {}
    update = (mfa.consume_code(mfa.opened(uow.deps, challenge["user_id"], doc), method, code, now)
              if doc.get("totp_secret") and method != "sms" else None)
    if update is None and doc.get("sms_enabled") and method in (None, "sms"):
        if sms.consume(uow, challenge["user_id"], code):
            update = {"_method": "sms"}
    if update is None:
        attempts = challenge.get("attempts", 0) + 1
        uow.update(cref, {"attempts": attempts, **({"status": "failed"}
                          if attempts >= settings.mfa_challenge_max_attempts else {})})
        raise _challenge_failed()
    uow.keep_writes_on_error = False
    used = update.pop("_method")
    if update:
        uow.update(mref, update)
    uow.update(cref, {"status": "completed", "completed_at": now, "method": used})
    amr = list(challenge.get("amr") or ["pwd"]) + (["otp", "mfa"] if used == "totp"
                                                   else ["sms", "mfa"] if used == "sms" else ["mfa"])
    amr = list(dict.fromkeys(amr))
    return open_session(uow, user_id=challenge["user_id"], amr=amr,
                        ip=ip or challenge.get("ip"),
                        user_agent=user_agent or challenge.get("user_agent"))


def send_sms_code(uow, challenge_id: str) -> MfaSmsSent:
    """Text a code for a pending sign-in challenge whose user has SMS on."""
    csnap = uow.get(challenge_ref(uow.db, challenge_id))
    challenge = csnap.to_dict() if csnap.exists else {}
    if challenge.get("status") != "pending" or challenge["expires_at"] <= uow.now:
        raise _challenge_invalid()
    user_id = challenge["user_id"]
    if not mfa.factors_doc(uow, user_id).get("sms_enabled"):
        raise Unprocessable("SMS is not a second factor of this account.",
                            code="mfa_method_unavailable")
    phone = sms.send_code(uow, user_id)
    return MfaSmsSent(challenge_id=challenge_id, phone=mask(phone),
                      expires_in=sms.code_ttl_seconds(uow.deps))
