"""Limits of the merchants capability (tests inject ``deps.extras["merchants.config"]``)."""
from __future__ import annotations

import dataclasses

CONFIG_KEY = "merchants.config"


@dataclasses.dataclass(frozen=True)
class MerchantsConfig:
    invitation_ttl_seconds: int = 7 * 86400
    invitation_purge_after_seconds: int = 30 * 86400  # TTL (purge_at) after expiry or answer
    membership_cache_seconds: float = 5.0             # staleness of merchant_context's cache
    membership_cache_entries: int = 10_000
    max_members: int = 200                            # members per merchant
    max_pending_invitations: int = 100                # per merchant
    max_projects: int = 100                           # per merchant and mode
    max_merchants_per_user: int = 50                  # memberships a user may hold
    project_key_revoke_batch: int = 400               # keys revoked with a deleted project


def merchants_config(deps) -> MerchantsConfig:
    return deps.get(CONFIG_KEY, MerchantsConfig)
