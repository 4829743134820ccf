"""Opaque bearer secrets (refresh tokens, email tokens, API keys) and how they are stored.

They carry 256 random bits, so a single SHA-256 is enough to store them: nobody can brute-force
the preimage, and lookups by hash stay one Firestore read. Passwords are different (argon2id).
"""
from __future__ import annotations

import base64
import hashlib
import secrets


def new_token(prefix: str, nbytes: int = 32) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
