"""Merchant roles and who may do what (the role matrix of ADR 0030).

Roles are ordered ``owner > admin > developer > support > viewer``; an action needs at least
its minimum role. A user acts for a merchant only inside a merchant context (the
``Payloom-Merchant`` header, or a route whose path names the merchant), where
``Principal.role`` is their membership role. API keys carry no role: the merchant's key passes
``require`` and its scopes (checked by the router) are what gate it; which routes accept a key
at all is decided per route (keys can never manage members, keys or settings).
"""
from __future__ import annotations

from shared.platform.auth import Principal
from shared.platform.errors import PermissionDenied

ROLES: tuple[str, ...] = ("owner", "admin", "developer", "support", "viewer")  # highest first
RANK: dict[str, int] = {role: len(ROLES) - i for i, role in enumerate(ROLES)}  # owner 5 … viewer 1

# The role matrix: each action and the least role that may perform it.
MATRIX: dict[str, str] = {
    "read": "viewer",               # the merchant, projects, members, payments, events
    "refund_payments": "support",   # support answers customers: refunds, disputes evidence
    "create_payments": "developer", # intents, invoices, links from the dashboard
    "send_messages": "developer",   # SMS relay messages, opt-outs, callback secret (quota spent)
    "manage_keys": "developer",     # create, roll, revoke API keys; read key metadata
    "manage_webhooks": "developer", # webhook endpoints, replays
    "manage_projects": "admin",
    "manage_settings": "admin",     # methods, assets, fees, xpub, settlement asset
    "manage_members": "admin",      # invite, change roles up to their own, remove
    "manage_owners": "owner",       # grant, demote or remove an owner
}
MERCHANT_HEADER = "Payloom-Merchant"
MODE_HEADER = "Payloom-Mode"


def is_role(value: str | None) -> bool:
    return value in RANK


def at_least(role: str | None, minimum: str) -> bool:
    """Whether ``role`` ranks at or above ``minimum`` (None ranks below every role)."""
    return RANK.get(role or "", 0) >= RANK[minimum]


def minimum_role(role_or_action: str) -> str:
    if role_or_action in RANK:
        return role_or_action
    if role_or_action in MATRIX:
        return MATRIX[role_or_action]
    raise ValueError(f"unknown role or action {role_or_action!r}")


def is_merchant_id(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith("mch_")


def require(principal: Principal, role: str) -> Principal:
    """Let ``principal`` act in its merchant context with at least ``role`` (a role name or a
    MATRIX action), or raise 403.

    * a user in a merchant context: their membership role must rank high enough
      (``insufficient_role``);
    * a user outside any merchant context: ``merchant_required`` (names the header);
    * a merchant's API key, the platform's services: pass (scopes gate keys); a key owned by a
      user (not a merchant) is outside any merchant context too.
    """
    needed = minimum_role(role)
    if principal.kind == "service":
        return principal
    if principal.kind == "api_key":
        if is_merchant_id(principal.tenant_id):
            return principal
        raise _merchant_required()
    if principal.kind == "user" and is_merchant_id(principal.tenant_id) and principal.role:
        if at_least(principal.role, needed):
            return principal
        raise PermissionDenied(f"This needs the {needed!r} role or higher in this merchant; "
                               f"yours is {principal.role!r}.", code="insufficient_role")
    raise _merchant_required()


def _merchant_required() -> PermissionDenied:
    return PermissionDenied(f"This endpoint acts for a merchant: send the {MERCHANT_HEADER} "
                            f"header with the merchant's id (mch_…) you are a member of, or use "
                            f"one of the merchant's API keys.", code="merchant_required")


def may_assign(actor_role: str | None, target_role: str) -> bool:
    """An actor may grant (or take away) only roles up to their own, and only an owner touches
    owners: so an admin can never make anyone an owner, nor demote or remove an owner."""
    if target_role == "owner":
        return actor_role == "owner"
    return at_least(actor_role, "admin") and at_least(actor_role, target_role)


def require_if_member(principal: Principal, role: str) -> Principal:
    """For capabilities that serve both users (their own tenant) and merchants (webhooks): a
    user acting for a merchant must hold ``role``; anyone else passes to the route's own checks
    (scopes for keys, the tenant for users)."""
    if principal.kind == "user" and is_merchant_id(principal.tenant_id):
        return require(principal, role)
    return principal
