"""The user directory: user documents and their unique handles.

Shape (collection ``users``, id ``usr_…``):
    id, username (display case), username_lower, email (normalised) | None, email_verified,
    phone (E.164) | None, phone_verified, display_name, locale ("en" | "km"), kyc_status,
    kyc_tier (int, 0 = none), status ("active" | "disabled"), created_at

Uniqueness (username case-insensitively, email, phone, wallet address, social identity) is held
by ``user_handles/{kind}:{value}`` documents created with ``create()`` inside the same
transaction that writes the user, so two sign-ups can never both win a handle.
Other capabilities (wallet P2P, payments) resolve people only through ``find_user_id``.
"""
from __future__ import annotations

import hashlib
from typing import Any

from google.cloud import firestore

USERS = "users"
HANDLES = "user_handles"
HANDLE_KINDS = ("username", "email", "phone", "wallet", "social", "did")


def _handle_value(kind: str, value: str) -> str:
    value = value.strip()
    return value.lower() if kind in ("username", "email", "wallet") else value


def handle_key(kind: str, value: str) -> str:
    """The handle's document id. Values Firestore cannot use in an id (a ``/`` is legal in an
    email's local part and in a provider's subject; ids are capped at 1,500 bytes) are hashed
    under ``kind#``, which no plain ``kind:`` key can equal."""
    if kind not in HANDLE_KINDS:
        raise ValueError(f"unknown handle kind {kind!r}")
    value = _handle_value(kind, value)
    if "/" in value or len(value.encode()) > 1000:
        return f"{kind}#" + hashlib.sha256(value.encode()).hexdigest()
    return f"{kind}:{value}"


def handle_ref(db, kind: str, value: str):
    return db.collection(HANDLES).document(handle_key(kind, value))


def claim_handle(db, txn, kind: str, value: str, user_id: str, now) -> None:
    """Reserve a handle for ``user_id`` in ``txn``; the commit fails if someone holds it.

    Callers read ``handle_ref`` in the same transaction first to give a clean 409.
    """
    txn.create(handle_ref(db, kind, value), {"kind": kind, "value": _handle_value(kind, value),
                                            "user_id": user_id, "created_at": now})


def release_handle(db, txn, kind: str, value: str) -> None:
    txn.delete(handle_ref(db, kind, value))


def find_user_id(db, *, username: str | None = None, email: str | None = None,
                 phone: str | None = None, wallet: str | None = None, transaction=None) -> str | None:
    for kind, value in (("username", username), ("email", email), ("phone", phone), ("wallet", wallet)):
        if value:
            snap = handle_ref(db, kind, value).get(transaction=transaction)
            return snap.get("user_id") if snap.exists else None
    return None


def get_user(db, user_id: str, transaction=None) -> dict[str, Any] | None:
    snap = db.collection(USERS).document(user_id).get(transaction=transaction)
    return snap.to_dict() if snap.exists else None


def kyc_tier(db, user_id: str) -> int:
    user = get_user(db, user_id)
    return int((user or {}).get("kyc_tier", 0))


def user_ref(db, user_id: str) -> firestore.DocumentReference:
    return db.collection(USERS).document(user_id)


# --- appended for phone / social sign-up (issue 3, part 2) ------------------------------------

def new_user_doc(*, now, user_id: str | None = None, username: str | None = None,
                 email: str | None = None, email_verified: bool = False, phone: str | None = None,
                 phone_verified: bool = False, display_name: str | None = None,
                 locale: str = "en") -> dict[str, Any]:
    """A user document in the directory's shape, for sign-ups that have no username yet."""
    from shared.platform.ids import new_id
    return {"id": user_id or new_id("usr"), "username": username,
            "username_lower": username.lower() if username else None,
            "email": email, "email_verified": bool(email and email_verified),
            "phone": phone, "phone_verified": bool(phone and phone_verified),
            "display_name": display_name, "locale": locale, "kyc_status": "none", "kyc_tier": 0,
            "status": "active", "created_at": now}


def insert_user(db, txn, user: dict[str, Any], *, now, extra_handles=()) -> None:
    """Create ``user`` in ``txn`` and claim its username/email/phone plus ``extra_handles``
    ((kind, value) pairs). The caller has read the handles in ``txn`` first."""
    for kind in ("username", "email", "phone"):
        if user.get(kind):
            claim_handle(db, txn, kind, user[kind], user["id"], now)
    for kind, value in extra_handles:
        claim_handle(db, txn, kind, value, user["id"], now)
    txn.create(user_ref(db, user["id"]), user)
