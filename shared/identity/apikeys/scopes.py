"""The scopes an API key may carry. A scope is ``family:action``; ``family:*`` grants every
action of the family (``Principal.has_scope``). User access tokens carry ``*``; API keys never
do: they get an explicit, validated list.

Add a family here when a capability starts checking a new scope.
"""
from __future__ import annotations

FAMILIES: dict[str, tuple[str, ...]] = {
    "account": ("read", "write"),       # /v1/me profile
    "api_keys": ("read",),              # list/inspect keys (creating keys needs a user session)
    "wallet": ("read", "write"),
    "payments": ("read", "write"),
    "events": ("read",),
    "platform": ("read", "write"),
    "kyc": ("read", "write"),
    "webhooks": ("read", "write"),
    "sms": ("read", "write"),           # /v1/messages: the SMS relay network (ADR 0044)
}

KNOWN_SCOPES: frozenset[str] = frozenset(
    [f"{fam}:{act}" for fam, acts in FAMILIES.items() for act in acts]
    + [f"{fam}:*" for fam in FAMILIES])


def invalid_scopes(scopes) -> list[str]:
    return [s for s in scopes if s not in KNOWN_SCOPES]
