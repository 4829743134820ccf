"""Password hashing with argon2id (argon2-cffi), explicit parameters (ADR 0010).

Production: OWASP's argon2id configuration, memory_cost=19 MiB (19456 KiB), time_cost=2,
parallelism=1, 16-byte salt, 32-byte hash.
Tests inject cheaper parameters through ``IdentitySettings`` only. A stored hash made with other
parameters is re-hashed on the next successful login (``needs_rehash``).

Unknown users are verified against a dummy hash made with the same parameters, so "no such
user" costs the same argon2 work as "wrong password" (no timing oracle).
"""
from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.identity.config import IdentitySettings, identity_settings
from shared.platform.errors import InvalidRequest

# A tiny deny-list of the passwords every credential-stuffing list starts with.
COMMON_PASSWORDS = frozenset({
    "password", "password1", "password123", "1234567890", "12345678910", "qwertyuiop",
    "1q2w3e4r5t", "iloveyou12", "letmein123", "welcome123", "qwerty1234", "passw0rd12",
    "abc1234567", "0123456789", "1111111111", "administrator", "changeme123", "payloom123",
})


@functools.lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism,
                          hash_len=32, salt_len=16, type=Type.ID)


def hasher_for(settings: IdentitySettings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_cost_kib,
                   settings.argon2_parallelism)


def hash_password(deps, password: str) -> str:
    return hasher_for(identity_settings(deps)).hash(password)


def verify_password(deps, stored_hash: str, password: str) -> bool:
    """Constant-work check of ``password`` against an argon2 hash; never raises on mismatch."""
    try:
        return hasher_for(identity_settings(deps)).verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(deps, stored_hash: str) -> bool:
    try:
        return hasher_for(identity_settings(deps)).check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.lru_cache(maxsize=8)
def _dummy(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_cost, parallelism).hash(secrets.token_urlsafe(24))


def dummy_hash(deps) -> str:
    s = identity_settings(deps)
    return _dummy(s.argon2_time_cost, s.argon2_memory_cost_kib, s.argon2_parallelism)


def check_policy(deps, password: str, *, param: str = "password",
                 identifiers: tuple[str | None, ...] = ()) -> None:
    """NIST 800-63B style: length bounds, no well-known passwords, not your own identifier."""
    s = identity_settings(deps)
    if len(password) < s.password_min_length:
        raise InvalidRequest(f"The password must be at least {s.password_min_length} characters.",
                             param=param, code="password_too_short")
    if len(password) > s.password_max_length:
        raise InvalidRequest(f"The password must be at most {s.password_max_length} characters.",
                             param=param, code="password_too_long")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        raise InvalidRequest("This password is too common; choose another.", param=param,
                             code="password_too_weak")
    for ident in identifiers:
        if ident and ident.lower() in lowered:
            raise InvalidRequest("The password must not contain your username or email.",
                                 param=param, code="password_too_weak")
