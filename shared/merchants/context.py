"""``merchant_context``: a user acting for a merchant becomes a principal of that merchant.

A function that serves merchant routes boots with ``resolvers=[merchant_context]``. For a
``user`` principal sending ``Payloom-Merchant: mch_…`` the membership
``merchant_members/{mch}:{usr}`` is read (one get) and the principal becomes
``tenant_id = mch``, ``role`` = the membership role, ``actor_id`` = the user, ``livemode`` =
(``Payloom-Mode`` == "live"). Not a member, or no such merchant: the same 403 ``not_a_member``
(no probing). A malformed merchant id is a 400 (it reveals nothing).

Memberships are cached in process memory for ``membership_cache_seconds`` (5 s), at most
``membership_cache_entries`` entries (the oldest half is dropped when full): a removed member or
a changed role may keep its old access on another instance for up to 5 s. This instance forgets
an entry as soon as it changes that membership. Decisions that matter for the team itself
(roles, owners) re-read the membership inside their unit of work, uncached.

API keys of a merchant already have the merchant as tenant; they keep ``role=None``, and a
``Payloom-Merchant`` naming another merchant is a 403 (a key cannot reach another merchant).
``Payloom-Mode`` other than "live"/"test" is a 400 for every caller, and a key's mode is its own:
a header contradicting it is a 400.
"""
from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Mapping

from shared.merchants import store
from shared.merchants.config import merchants_config
from shared.merchants.roles import MERCHANT_HEADER, MODE_HEADER, is_role, require
from shared.platform.auth import Principal
from shared.platform.deps import get_deps
from shared.platform.errors import InvalidRequest, PermissionDenied

_MERCHANT_ID_RE = re.compile(r"^mch_[A-Za-z0-9]{8,64}$")


class MembershipCache:
    """(project, merchant, user) -> role or None, for a few seconds; bounded."""

    def __init__(self):
        self._entries: dict[tuple[str, str, str], tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, key) -> tuple[bool, str | None]:
        with self._lock:
            hit = self._entries.get(key)
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]

    def put(self, key, role: str | None, ttl: float, max_entries: int) -> None:
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= max_entries:
                for k in list(self._entries)[: max(1, len(self._entries) // 2)]:  # oldest first
                    del self._entries[k]
            self._entries[key] = (role, time.monotonic() + ttl)

    def forget(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = MembershipCache()


def _key(deps, merchant_id: str, user_id: str):
    return (deps.settings.project_id, merchant_id, user_id)


def membership_role(deps, merchant_id: str, user_id: str) -> str | None:
    """The user's role in the merchant, or None; cached (see the module docstring)."""
    key = _key(deps, merchant_id, user_id)
    hit, role = CACHE.get(key)
    if hit:
        return role
    snap = store.member_ref(deps.db, merchant_id, user_id).get()
    role = snap.get("role") if snap.exists else None
    role = role if is_role(role) else None
    cfg = merchants_config(deps)
    CACHE.put(key, role, cfg.membership_cache_seconds, cfg.membership_cache_entries)
    return role


def forget(deps, merchant_id: str, user_id: str) -> None:
    """This instance changed the membership: stop serving the cached role."""
    CACHE.forget(_key(deps, merchant_id, user_id))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.strip()


def parse_mode(headers: Mapping[str, str]) -> bool | None:
    """``Payloom-Mode``: True for live, False for test, None when absent; anything else 400."""
    value = _header(headers, MODE_HEADER)
    if value is None:
        return None
    if value not in ("live", "test"):
        raise InvalidRequest(f"{MODE_HEADER} must be 'live' or 'test'.", param=MODE_HEADER,
                             code="invalid_mode")
    return value == "live"


def _merchant_header(headers: Mapping[str, str]) -> str | None:
    value = _header(headers, MERCHANT_HEADER)
    if value is None:
        return None
    if not _MERCHANT_ID_RE.match(value):
        raise InvalidRequest(f"{MERCHANT_HEADER} must be a merchant id (mch_…).",
                             param=MERCHANT_HEADER, code="invalid_merchant")
    return value


def enter(deps, principal: Principal, merchant_id: str, livemode: bool | None) -> Principal:
    """The user ``principal`` acting for ``merchant_id`` (403 ``not_a_member`` otherwise)."""
    if not _MERCHANT_ID_RE.match(merchant_id or ""):
        raise store.not_a_member()
    role = membership_role(deps, merchant_id, principal.id)
    if role is None:
        raise store.not_a_member()
    return dataclasses.replace(principal, tenant_id=merchant_id, role=role,
                               actor_id=principal.id, livemode=bool(livemode))


def merchant_context(principal: Principal, headers: Mapping[str, str], settings) -> Principal:
    """The resolver (``boot(..., resolvers=[merchant_context])``)."""
    livemode = parse_mode(headers)
    merchant_id = _merchant_header(headers)
    if principal.kind == "user":
        if merchant_id is None:
            return principal
        return enter(get_deps(), principal, merchant_id, livemode)
    if principal.kind == "api_key":
        if merchant_id is not None and merchant_id != principal.tenant_id:
            raise PermissionDenied("An API key acts only for the merchant that owns it.",
                                   code="merchant_mismatch")
        if livemode is not None and livemode != principal.livemode:
            raise InvalidRequest(f"{MODE_HEADER} contradicts this API key's mode: a key's mode "
                                 f"is its own.", param=MODE_HEADER, code="mode_mismatch")
        return dataclasses.replace(principal, role=None)
    return principal


def acting_for(ctx, merchant_id: str, need: str) -> Principal:
    """The caller acting for the merchant a route's path names, with at least ``need`` (a role
    or a roles.MATRIX action). A user without the header enters the merchant from the path
    (its ``Payloom-Mode`` applies); with the header, it must name the same merchant. A key
    acts for its own merchant only. Every refusal is a 403 that says nothing about whether
    the merchant exists."""
    principal = ctx.principal
    if principal.kind == "user":
        if principal.role is None:
            principal = enter(ctx.deps, principal, merchant_id, parse_mode(ctx.request.headers))
        elif principal.tenant_id != merchant_id:
            raise PermissionDenied(f"The {MERCHANT_HEADER} header names another merchant than "
                                   f"the path.", code="merchant_mismatch")
    elif principal.kind == "api_key" and principal.tenant_id != merchant_id:
        raise store.not_a_member()
    return require(principal, need)
