"""Password credentials: ``user_credentials/{usr_…}`` = ``{user_id, password_hash (argon2id),
password_changed_at, rehashed_at?}``.

Kept out of the user document so nothing that reads profiles ever touches a hash. Written by
password sign-up, login (re-hash), reset and change (``users.accounts``); read by "ways in"
(``users.ways_in``) to know whether an account can sign in with a password.
"""
from __future__ import annotations

CREDENTIALS = "user_credentials"


def credentials_ref(db, user_id: str):
    return db.collection(CREDENTIALS).document(user_id)


def has_password(snap) -> bool:
    """Whether a read ``credentials_ref`` snapshot holds a usable password hash."""
    return bool(snap.exists and (snap.to_dict() or {}).get("password_hash"))
