"""Email + password accounts: register, login, logout, email verification, password reset.

Records:
* ``users/{usr_…}`` in the directory shape (``shared.identity.directory``) plus ``mfa_enabled``;
  username and email handles are claimed in the same transaction as the user.
* ``user_credentials/{usr_…}``: ``password_hash`` (argon2id), ``password_changed_at``. Kept out
  of the user document so nothing that reads profiles ever touches a hash.
* ``email_tokens/{sha256}``: single-use, expiring tokens for email verification (``vfy_…``) and
  password reset (``pwr_…``); only the SHA-256 is stored.

Login never says whether the user exists: an unknown identifier, a user without a password
(phone or social sign-up) and a wrong password give the same 401 body, and the unknown-user path
verifies against a dummy argon2 hash so it costs the same time.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from google.cloud import firestore

from shared.identity import directory, passwords
from shared.identity.opaque import new_token, token_hash
from shared.identity.config import identity_settings
from shared.identity.email import email_sender, reset_message, verification_message
from shared.identity.profile import to_resource as user_resource
from shared.identity.sessions import (MAX_TXN_REVOCATIONS, forget_session, revoke_all_sessions,
                                      revoke_sessions_in_txn, start_session)
from shared.platform.errors import (AuthenticationError, Conflict, InvalidRequest, PermissionDenied,
                                    Unprocessable)
from shared.platform.ids import derived_id, new_id
from shared.platform.logs import get_logger, log
from shared.platform.outbox import publish_events, record_event
from shared.platform.ratelimit import Limit, enforce

CREDENTIALS = "user_credentials"
EMAIL_TOKENS = "email_tokens"
VERIFY, RESET = "verify_email", "reset_password"
_TOKEN_PREFIX = {VERIFY: "vfy_", RESET: "pwr_"}
# Per-identifier limits (the per-IP ones are on the routes); see ADR 0010.
LOGIN_PER_ACCOUNT = Limit("auth.login.account", 10, 60)
FORGOT_PER_EMAIL = Limit("auth.forgot.email", 5, 3600)
VERIFY_SEND_PER_USER = Limit("auth.verify_send.user", 5, 3600)
_log = get_logger(__name__)


def credentials_ref(db, user_id: str):
    return db.collection(CREDENTIALS).document(user_id)


def invalid_login() -> AuthenticationError:
    # One body for every failure so responses do not reveal which accounts exist.
    return AuthenticationError("Invalid login credentials.", code="invalid_credentials")


# --- register ------------------------------------------------------------------------------

def register_user(deps, *, email: str, password: str, username: str,
                  display_name: str | None = None, locale: str = "en",
                  idempotency_key: str | None = None) -> dict[str, Any]:
    """Create a user with a password; sends the verification email. Returns the user resource."""
    db, now = deps.db, deps.clock.now()
    passwords.check_policy(deps, password, identifiers=(username, email))
    pw_hash = passwords.hash_password(deps, password)  # outside the (retried) transaction
    # With an Idempotency-Key the id is derived from it: a retry after a crash re-finds the user.
    user_id = derived_id("usr", "register", idempotency_key) if idempotency_key else new_id("usr")
    uref, cref = directory.user_ref(db, user_id), credentials_ref(db, user_id)

    @firestore.transactional
    def run(txn):
        existing = uref.get(transaction=txn)
        if existing.exists:
            user = existing.to_dict()
            if user.get("email") != email:
                raise Conflict("This Idempotency-Key created a different user.",
                               code="idempotency_key_reused")
            return user, [], False
        uh = directory.handle_ref(db, "username", username)
        eh = directory.handle_ref(db, "email", email)
        taken = {snap.reference.path for snap in txn.get_all([uh, eh]) if snap.exists}
        if uh.path in taken:
            raise Conflict("This username is taken.", param="username", code="username_taken")
        if eh.path in taken:
            raise Conflict("An account with this email already exists.", param="email",
                           code="email_taken")
        user = {"id": user_id, "username": username, "username_lower": username.lower(),
                "email": email, "email_verified": False, "phone": None, "phone_verified": False,
                "display_name": display_name or username, "locale": locale,
                "kyc_status": "none", "kyc_tier": 0, "status": "active", "mfa_enabled": False,
                "created_at": now}
        directory.claim_handle(db, txn, "username", username, user_id, now)
        directory.claim_handle(db, txn, "email", email, user_id, now)
        txn.create(uref, user)
        txn.create(cref, {"user_id": user_id, "password_hash": pw_hash,
                          "password_changed_at": now, "created_at": now})
        event = record_event(db, txn, type="user.created", tenant=user_id, now=now,
                             data={"object": user_resource(user)})
        return user, [event], True

    user, events, created = run(db.transaction())
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic)
    if created:
        _send_token_email(deps, user, VERIFY)
    return user_resource(user)


# --- login / logout ------------------------------------------------------------------------

def login(deps, *, password: str, email: str | None = None, username: str | None = None,
          ip: str | None = None, user_agent: str | None = None) -> dict[str, Any]:
    """Password login. Returns a token pair, or an ``mfa_challenge`` if MFA is on."""
    db, now = deps.db, deps.clock.now()
    kind, ident = ("email", email) if email else ("username", username or "")
    enforce(db, LOGIN_PER_ACCOUNT, f"{kind}:{ident.lower()}", now)
    user_id = directory.find_user_id(db, **{kind: ident}) if ident else None
    user = cred = None
    if user_id:
        refs = [directory.user_ref(db, user_id), credentials_ref(db, user_id)]
        snaps = {snap.reference.path: snap for snap in db.get_all(refs)}  # one round trip
        usnap, csnap = snaps.get(refs[0].path), snaps.get(refs[1].path)
        user = usnap.to_dict() if usnap is not None and usnap.exists else None
        cred = csnap.to_dict() if csnap is not None and csnap.exists else None
    stored = (cred or {}).get("password_hash") if user else None
    if not stored:
        passwords.verify_password(deps, passwords.dummy_hash(deps), password)  # same cost
        raise invalid_login()
    if not passwords.verify_password(deps, stored, password):
        raise invalid_login()
    if user.get("status", "active") != "active":
        raise PermissionDenied("This account is disabled.", code="account_disabled")
    if passwords.needs_rehash(deps, stored):
        credentials_ref(db, user_id).update({"password_hash": passwords.hash_password(deps, password),
                                             "rehashed_at": now})
    if user.get("mfa_enabled"):
        from shared.identity.mfa import create_challenge
        return create_challenge(deps, user_id=user_id, amr=["pwd"], ip=ip, user_agent=user_agent)
    return start_session(deps, user_id=user_id, amr=["pwd"], ip=ip, user_agent=user_agent)


# --- email tokens ----------------------------------------------------------------------------

def _new_token(purpose: str) -> str:
    return new_token(_TOKEN_PREFIX[purpose])


def _send_token_email(deps, user: dict[str, Any], purpose: str) -> bool:
    """Store a fresh single-use token and email it. Delivery failures are logged, not raised."""
    settings = identity_settings(deps)
    db, now = deps.db, deps.clock.now()
    ttl = (settings.email_verification_ttl_seconds if purpose == VERIFY
           else settings.password_reset_ttl_seconds)
    token = _new_token(purpose)
    db.collection(EMAIL_TOKENS).document(token_hash(token)).create({
        "purpose": purpose, "user_id": user["id"], "email": user["email"], "created_at": now,
        "expires_at": now + dt.timedelta(seconds=ttl), "used_at": None})
    build = verification_message if purpose == VERIFY else reset_message
    message = build(settings, user["email"], token, ttl)
    try:
        email_sender(deps).send(message)
        return True
    except Exception as exc:  # noqa: BLE001 — the user can ask again
        log(_log, logging.WARNING, "email delivery failed", purpose=purpose, user_id=user["id"],
            error=type(exc).__name__)
        return False


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


def resend_verification(deps, user_id: str) -> dict[str, Any]:
    db = deps.db
    user = directory.get_user(db, user_id)
    if not user or not user.get("email"):
        raise Unprocessable("This account has no email address.", code="no_email")
    if user.get("email_verified"):
        raise Unprocessable("This email address is already verified.", code="email_already_verified")
    enforce(db, VERIFY_SEND_PER_USER, user_id, deps.clock.now())
    _send_token_email(deps, user, VERIFY)
    return {"object": "email_verification", "email": user["email"], "sent": True}


def verify_email(deps, token: str) -> dict[str, Any]:
    db, now = deps.db, deps.clock.now()
    tref = _token_snap_ref(db, token, VERIFY)

    @firestore.transactional
    def run(txn):
        doc = _check_token(tref.get(transaction=txn), VERIFY, now)
        uref = directory.user_ref(db, doc["user_id"])
        usnap = uref.get(transaction=txn)
        if not usnap.exists or usnap.get("email") != doc["email"]:
            raise InvalidRequest("This link or code is no longer valid.", param="token",
                                 code="invalid_token")
        user = usnap.to_dict()
        txn.update(tref, {"used_at": now})
        if user.get("email_verified"):
            return user, []
        user = {**user, "email_verified": True, "email_verified_at": now}
        txn.update(uref, {"email_verified": True, "email_verified_at": now})
        return user, [record_event(db, txn, type="user.email_verified", tenant=user["id"], now=now,
                                   data={"object": user_resource(user), "email": user["email"]})]

    user, events = run(db.transaction())
    publish_events(db, deps.publisher, events, topic=deps.settings.events_topic)
    return user_resource(user)


# --- password reset and change ---------------------------------------------------------------

def forgot_password(deps, email: str) -> dict[str, Any]:
    """Always the same answer; an email goes out only if the account exists."""
    db = deps.db
    enforce(db, FORGOT_PER_EMAIL, email.lower(), deps.clock.now())
    user_id = directory.find_user_id(db, email=email)
    user = directory.get_user(db, user_id) if user_id else None
    if user and user.get("email") and user.get("status", "active") == "active":
        _send_token_email(deps, user, RESET)
    return {"object": "password_reset_request", "email": email,
            "message": "If an account exists for this email, a reset link is on its way."}


def reset_password(deps, token: str, new_password: str) -> dict[str, Any]:
    """Set a new password with a reset token; every session of the user is revoked."""
    db, now = deps.db, deps.clock.now()
    tref = _token_snap_ref(db, token, RESET)
    first = _check_token(tref.get(), RESET, now)  # fail fast before the argon2 work
    user = directory.get_user(db, first["user_id"]) or {}
    passwords.check_policy(deps, new_password, identifiers=(user.get("username"), user.get("email")))
    pw_hash = passwords.hash_password(deps, new_password)

    @firestore.transactional
    def run(txn):
        doc = _check_token(tref.get(transaction=txn), RESET, now)
        cref = credentials_ref(db, doc["user_id"])
        csnap = cref.get(transaction=txn)
        changed = csnap.get("password_changed_at") if csnap.exists else None
        if changed is not None and changed > doc["created_at"]:
            raise InvalidRequest("This link was superseded by a later password change.",
                                 param="token", code="invalid_token")
        revoked = revoke_sessions_in_txn(db, txn, doc["user_id"], now, "password_reset")
        txn.update(tref, {"used_at": now})
        txn.set(cref, {"user_id": doc["user_id"], "password_hash": pw_hash,
                       "password_changed_at": now}, merge=True)
        return doc["user_id"], revoked

    user_id, revoked = run(db.transaction())
    publish_events(db, deps.publisher, revoked.events, topic=deps.settings.events_topic)
    _forget(deps, revoked.ids)
    if revoked.seen >= MAX_TXN_REVOCATIONS:  # more than one transaction's worth: finish outside it
        revoke_all_sessions(deps, user_id, reason="password_reset")
    return {"object": "password_reset", "user_id": user_id, "sessions_revoked": len(revoked.ids)}


def change_password(deps, *, user_id: str, session_id: str | None, current_password: str,
                    new_password: str) -> dict[str, Any]:
    """Change the password knowing the current one; other sessions are revoked."""
    db, now = deps.db, deps.clock.now()
    cref = credentials_ref(db, user_id)
    csnap = cref.get()
    stored = csnap.get("password_hash") if csnap.exists else None
    if not stored or not passwords.verify_password(deps, stored, current_password):
        raise InvalidRequest("The current password is not correct.", param="current_password",
                             code="incorrect_password")
    user = directory.get_user(db, user_id) or {}
    passwords.check_policy(deps, new_password, param="new_password",
                           identifiers=(user.get("username"), user.get("email")))
    cref.update({"password_hash": passwords.hash_password(deps, new_password),
                 "password_changed_at": now})
    count = revoke_all_sessions(deps, user_id, reason="password_changed",
                                except_session_id=session_id)
    return {"object": "password_change", "user_id": user_id, "sessions_revoked": count}


def _forget(deps, session_ids) -> None:
    for sid in session_ids:
        forget_session(deps, sid)


def set_password_for(deps, user_id: str, password: str) -> None:
    """Give an existing user (e.g. phone or social sign-up) a password; for other flows."""
    passwords.check_policy(deps, password)
    now = deps.clock.now()
    credentials_ref(deps.db, user_id).set({"user_id": user_id,
                                           "password_hash": passwords.hash_password(deps, password),
                                           "password_changed_at": now}, merge=True)
