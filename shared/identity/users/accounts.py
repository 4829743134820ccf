"""Email + password accounts: register, login, logout, email verification, password reset.

Records:
* ``users/{usr_…}`` in the directory shape (``shared.identity.users.directory``) plus ``mfa_enabled``;
  username and email handles are claimed in the same commit as the user.
* ``user_credentials/{usr_…}``: ``password_hash`` (argon2id), ``password_changed_at``. Kept out
  of the user document so nothing that reads profiles ever touches a hash.
* ``email_tokens/{sha256}``: single-use, expiring tokens for email verification (``vfy_…``) and
  password reset (``pwr_…``); only the SHA-256 is stored. Their emails are queued through
  notify in the same commit and leave after it (never inside the request).
* ``login_guards/…`` and ``password_reset_requests/…``: the per-account and per-IP guessing
  limits and the per-email reset limit, counted in the request's own commit.

Every service here takes a unit of work (``shared.platform.uow``): the router's ``ctx.uow`` over
HTTP, ``run_unit(deps, ...)`` elsewhere.

Login never says whether the user exists: an unknown identifier, a user without a password
(phone or social sign-up) and a wrong password give the same 401 body, and the unknown-user path
verifies against a dummy argon2 hash so it costs the same time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from shared.identity.users import directory, login_guard, passwords
from shared.identity.users.credentials import credentials_ref
from shared.identity.opaque import new_token, token_hash
from shared.identity.config import identity_settings
from shared.identity.users.email import (lockout_message, queue_email, reset_message,
                                   verification_message)
from shared.identity.users.profile import to_resource as user_resource
from shared.identity.sessions.sessions import forget_session, revoke_sessions_in_unit
from shared.identity.sessions.signin import finish_sign_in
from shared.identity.resources import (PASSWORD_RESET_REQUESTED, USER_CREATED,
                                       USER_EMAIL_VERIFIED, User)
from shared.identity.responses import (EmailVerificationSent, MfaChallenge, PasswordChange,
                                       PasswordReset, PasswordResetRequested, TokenPair)
from shared.platform.errors import (AuthenticationError, Conflict, InvalidRequest, PermissionDenied,
                                    RateLimited, Unprocessable)
from shared.platform.ids import derived_id, new_id
from shared.platform.ratelimit import Limit, enforce

EMAIL_TOKENS = "email_tokens"
VERIFY, RESET = "verify_email", "reset_password"
_TOKEN_PREFIX = {VERIFY: "vfy_", RESET: "pwr_"}
# Per-identifier limits (the per-IP ones are on the routes); see ADR 0010.
VERIFY_SEND_PER_USER = Limit("auth.verify_send.user", 5, 3600)


def invalid_login() -> AuthenticationError:
    # One body for every failure so responses do not reveal which accounts exist.
    return AuthenticationError("Invalid login credentials.", code="invalid_credentials")


# --- register ------------------------------------------------------------------------------

def register_user(uow, *, email: str, password: str, username: str,
                  display_name: str | None = None, locale: str = "en",
                  idempotency_key: str | None = None) -> User:
    """Create a user with a password; queues the verification email. Returns the user resource.

    One batch read (user, both handles), one commit holding the user, its handles, credentials,
    the ``user.created`` event and the queued email.
    """
    deps, db, now = uow.deps, uow.db, uow.now
    passwords.check_policy(deps, password, identifiers=(username, email))
    # With an Idempotency-Key the id is derived from it: a retry after a crash re-finds the user.
    user_id = derived_id("usr", "register", idempotency_key) if idempotency_key else new_id("usr")
    uref, cref = directory.user_ref(db, user_id), credentials_ref(db, user_id)
    uh = directory.handle_ref(db, "username", username)
    eh = directory.handle_ref(db, "email", email)
    snaps = uow.get_all([uref, uh, eh])
    if snaps[uref.path].exists:
        user = snaps[uref.path].to_dict()
        if user.get("email") != email:
            raise Conflict("This Idempotency-Key created a different user.",
                           code="idempotency_key_reused")
        return user_resource(user)
    if snaps[uh.path].exists:
        raise Conflict("This username is taken.", param="username", code="username_taken")
    if snaps[eh.path].exists:
        raise Conflict("An account with this email already exists.", param="email",
                       code="email_taken")
    pw_hash = passwords.hash_password(deps, password)
    user = {"id": user_id, "username": username, "username_lower": username.lower(),
            "email": email, "email_verified": False, "phone": None, "phone_verified": False,
            "display_name": display_name or username, "locale": locale,
            "kyc_status": "none", "kyc_tier": 0, "status": "active", "mfa_enabled": False,
            "created_at": now}
    directory.claim_handle(db, uow, "username", username, user_id, now)
    directory.claim_handle(db, uow, "email", email, user_id, now)
    uow.create(uref, user)
    uow.create(cref, {"user_id": user_id, "password_hash": pw_hash,
                      "password_changed_at": now, "created_at": now})
    resource = user_resource(user)
    uow.emit(USER_CREATED.name, tenant=user_id, data={"object": resource.model_dump(mode="json")})
    _queue_token_email(uow, user, VERIFY)
    return resource


# --- login / logout ------------------------------------------------------------------------

def login(uow, *, password: str, email: str | None = None, username: str | None = None,
          ip: str | None = None, user_agent: str | None = None) -> TokenPair | MfaChallenge:
    """Password login. Returns a token pair, or an ``mfa_challenge`` if MFA is on.

    Three round trips: the handle, one batch of (account guard, IP guard, user, credentials),
    one commit (the session, or the counted failure: ``keep_writes_on_error``). The guards
    (``login_guard``) refuse before any argon2 work when the account is locked or out of
    budget, or the client IP has failed too often.
    """
    deps, db, now = uow.deps, uow.db, uow.now
    settings = identity_settings(deps)
    kind, ident = ("email", email) if email else ("username", username or "")
    hsnap = uow.get(directory.handle_ref(db, kind, ident)) if ident else None
    user_id = hsnap.get("user_id") if hsnap is not None and hsnap.exists else None
    gref = login_guard.guard_ref(db, user_id=user_id, kind=kind, identifier=ident)
    uref, cref = (directory.user_ref(db, user_id), credentials_ref(db, user_id)) if user_id \
        else (None, None)
    iref = login_guard.ip_ref(db, ip) if ip else None
    snaps = uow.get_all([gref] + ([iref] if iref else []) + ([uref, cref] if user_id else []))
    ip_doc = (snaps[iref.path].to_dict() or {}) if iref and snaps[iref.path].exists else {}
    if iref:
        login_guard.check_ip(ip_doc, now, settings)
    gsnap = snaps[gref.path]
    guard = gsnap.to_dict() if gsnap.exists else {}
    login_guard.check(guard, now, settings)
    usnap, csnap = (snaps[uref.path], snaps[cref.path]) if user_id else (None, None)
    user = usnap.to_dict() if usnap is not None and usnap.exists else None
    cred = csnap.to_dict() if csnap is not None and csnap.exists else None
    stored = (cred or {}).get("password_hash") if user else None
    ok = passwords.verify_password(deps, stored or passwords.dummy_hash(deps), password) \
        and bool(stored)  # an unknown user costs the same argon2 work
    verdict = login_guard.after_attempt(guard, now, settings, ok=ok)
    uow.set(gref, verdict.doc)
    if not ok:
        uow.keep_writes_on_error = True  # the failure must count
        if iref:
            uow.set(iref, login_guard.ip_after_failure(ip_doc, now))
        if verdict.notify and user:
            _queue_lock_notice(uow, user, verdict.notify)
        raise invalid_login()
    if user.get("status", "active") != "active":
        raise PermissionDenied("This account is disabled.", code="account_disabled")
    if passwords.needs_rehash(deps, stored):
        uow.update(cref, {"password_hash": passwords.hash_password(deps, password),
                          "rehashed_at": now})
    return finish_sign_in(uow, user, amr=["pwd"], ip=ip, user_agent=user_agent)


def _queue_lock_notice(uow, user: dict[str, Any], what: str) -> None:
    """Tell the owner their password sign-in was locked: by email, else by SMS to a verified
    phone (both leave through notify after commit)."""
    settings = identity_settings(uow.deps)
    message = lockout_message(settings, user.get("email") or "", hard=what == "hard_locked")
    if user.get("email"):
        queue_email(uow, message, user_id=user["id"])
    elif user.get("phone") and user.get("phone_verified"):
        from shared.notify import queue_sms
        queue_sms(uow, to=user["phone"], text=message.text.split("\n\n")[0], kind="login_locked",
                  user_id=user["id"])


# --- email tokens ----------------------------------------------------------------------------

def _new_token(purpose: str) -> str:
    return new_token(_TOKEN_PREFIX[purpose])


def _queue_token_email(uow, user: dict[str, Any], purpose: str) -> None:
    """Store a fresh single-use token and queue its email, both in ``uow``'s commit."""
    settings = identity_settings(uow.deps)
    now = uow.now
    ttl = (settings.email_verification_ttl_seconds if purpose == VERIFY
           else settings.password_reset_ttl_seconds)
    token = _new_token(purpose)
    uow.create(uow.db.collection(EMAIL_TOKENS).document(token_hash(token)), {
        "purpose": purpose, "user_id": user["id"], "email": user["email"], "created_at": now,
        "expires_at": now + dt.timedelta(seconds=ttl), "used_at": None})
    build = verification_message if purpose == VERIFY else reset_message
    queue_email(uow, build(settings, user["email"], token, ttl), user_id=user["id"])


def _check_token(snap, purpose: str, now: dt.datetime) -> dict[str, Any]:
    if not snap.exists or snap.get("purpose") != purpose:
        raise InvalidRequest("This link or code is invalid.", param="token", code="invalid_token")
    doc = snap.to_dict()
    if doc.get("used_at") is not None:
        raise InvalidRequest("This link or code was already used.", param="token",
                             code="token_already_used")
    if doc["expires_at"] <= now:
        raise InvalidRequest("This link or code has expired; ask for a new one.", param="token",
                             code="token_expired")
    return doc


def _token_snap_ref(db, token: str, purpose: str):
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX[purpose]):
        raise InvalidRequest("This link or code is invalid.", param="token", code="invalid_token")
    return db.collection(EMAIL_TOKENS).document(token_hash(token))


def resend_verification(uow, user_id: str) -> EmailVerificationSent:
    db = uow.db
    user = directory.get_user(db, user_id)
    if not user or not user.get("email"):
        raise Unprocessable("This account has no email address.", code="no_email")
    if user.get("email_verified"):
        raise Unprocessable("This email address is already verified.", code="email_already_verified")
    enforce(db, VERIFY_SEND_PER_USER, user_id, uow.now)
    _queue_token_email(uow, user, VERIFY)
    return EmailVerificationSent(email=user["email"], sent=True)


def verify_email(uow, token: str) -> User:
    db, now = uow.db, uow.now
    tref = _token_snap_ref(db, token, VERIFY)
    doc = _check_token(uow.get(tref), VERIFY, now)
    uref = directory.user_ref(db, doc["user_id"])
    usnap = uow.get(uref)
    if not usnap.exists or usnap.get("email") != doc["email"]:
        raise InvalidRequest("This link or code is no longer valid.", param="token",
                             code="invalid_token")
    user = usnap.to_dict()
    uow.update(tref, {"used_at": now})
    if user.get("email_verified"):
        return user_resource(user)
    user = {**user, "email_verified": True, "email_verified_at": now}
    uow.update(uref, {"email_verified": True, "email_verified_at": now})
    resource = user_resource(user)
    uow.emit(USER_EMAIL_VERIFIED.name, tenant=user["id"],
             data={"object": resource.model_dump(mode="json"), "email": user["email"]})
    return resource


# --- password reset and change ---------------------------------------------------------------

RESET_REQUESTS = "password_reset_requests"


def forgot_password(uow, email: str) -> PasswordResetRequested:
    """Always the same answer, and the same work: no send in the request (defect 9).

    Both paths read the email handle, then one batch (the per-email request counter, plus the
    user if there is one), then commit the counter and one audit event; an existing account
    adds the reset token and its queued email to that same commit. The email leaves after
    commit through the notify queue, so the response time does not depend on the account.
    """
    settings = identity_settings(uow.deps)
    db, now = uow.db, uow.now
    hsnap = uow.get(directory.handle_ref(db, "email", email))
    user_id = hsnap.get("user_id") if hsnap.exists else None
    rref = db.collection(RESET_REQUESTS).document(hashlib.sha256(email.lower().encode()).hexdigest())
    refs = [rref] + ([directory.user_ref(db, user_id)] if user_id else [])
    snaps = uow.get_all(refs)
    counter = snaps[rref.path].to_dict() if snaps[rref.path].exists else {}
    hour = int(now.timestamp()) // 3600
    count = int(counter.get("count") or 0) if counter.get("hour") == hour else 0
    if count >= settings.forgot_per_email_per_hour:
        raise RateLimited(f"Too many requests; limit is {settings.forgot_per_email_per_hour} "
                          "per hour.",
                          headers={"Retry-After": str(max(1, (hour + 1) * 3600 - int(now.timestamp())))})
    uow.set(rref, {"hour": hour, "count": count + 1, "updated_at": now,
                   "expires_at": now + dt.timedelta(hours=2)})
    usnap = snaps.get(refs[-1].path) if user_id else None
    user = usnap.to_dict() if usnap is not None and usnap.exists else None
    send = bool(user and user.get("email") and user.get("status", "active") == "active")
    if send:
        _queue_token_email(uow, user, RESET)
    # One event on both paths, so the after-commit publish costs the same (it names no account).
    uow.emit(PASSWORD_RESET_REQUESTED.name, tenant=user["id"] if send else "platform",
             data={"object": {"object": "password_reset_request"}})
    return PasswordResetRequested(
        email=email, message="If an account exists for this email, a reset link is on its way.")


def reset_password(uow, token: str, new_password: str) -> PasswordReset:
    """Set a new password with a reset token; every session of the user is revoked and the
    login guard's locks are cleared, all in one commit."""
    deps, db, now = uow.deps, uow.db, uow.now
    tref = _token_snap_ref(db, token, RESET)
    doc = _check_token(uow.get(tref), RESET, now)  # fail fast before the argon2 work
    user_id = doc["user_id"]
    cref = credentials_ref(db, user_id)
    gref = login_guard.guard_ref(db, user_id=user_id, kind="", identifier="")
    snaps = uow.get_all([directory.user_ref(db, user_id), cref, gref])
    user = snaps[directory.user_ref(db, user_id).path].to_dict() or {}
    passwords.check_policy(deps, new_password, identifiers=(user.get("username"), user.get("email")))
    csnap = snaps[cref.path]
    changed = csnap.get("password_changed_at") if csnap.exists else None
    if changed is not None and changed > doc["created_at"]:
        raise InvalidRequest("This link was superseded by a later password change.",
                             param="token", code="invalid_token")
    pw_hash = passwords.hash_password(deps, new_password)
    revoked = revoke_sessions_in_unit(uow, user_id, "password_reset")
    uow.update(tref, {"used_at": now})
    uow.set(cref, {"user_id": user_id, "password_hash": pw_hash, "password_changed_at": now},
            merge=True)
    uow.set(gref, login_guard.reset_doc(now), merge=True)
    _forget(deps, revoked)
    return PasswordReset(user_id=user_id, sessions_revoked=len(revoked))


def change_password(uow, *, user_id: str, session_id: str | None, current_password: str,
                    new_password: str) -> PasswordChange:
    """Change the password knowing the current one; other sessions are revoked (one commit)."""
    deps, db, now = uow.deps, uow.db, uow.now
    cref, uref = credentials_ref(db, user_id), directory.user_ref(db, user_id)
    snaps = uow.get_all([cref, uref])
    csnap = snaps[cref.path]
    stored = csnap.get("password_hash") if csnap.exists else None
    if not stored or not passwords.verify_password(deps, stored, current_password):
        raise InvalidRequest("The current password is not correct.", param="current_password",
                             code="incorrect_password")
    user = snaps[uref.path].to_dict() or {}
    passwords.check_policy(deps, new_password, param="new_password",
                           identifiers=(user.get("username"), user.get("email")))
    uow.update(cref, {"password_hash": passwords.hash_password(deps, new_password),
                      "password_changed_at": now})
    revoked = revoke_sessions_in_unit(uow, user_id, "password_changed",
                                      except_session_id=session_id)
    _forget(deps, revoked)
    return PasswordChange(user_id=user_id, sessions_revoked=len(revoked))


def _forget(deps, session_ids) -> None:
    for sid in session_ids:
        forget_session(deps, sid)


def set_password_for(uow, user_id: str, password: str) -> None:
    """Give an existing user (e.g. phone or social sign-up) a password; for other flows."""
    passwords.check_policy(uow.deps, password)
    uow.set(credentials_ref(uow.db, user_id),
            {"user_id": user_id, "password_hash": passwords.hash_password(uow.deps, password),
             "password_changed_at": uow.now}, merge=True)
