"""Inbox settings (``PAYLOOM_INBOX_``): the providers' webhook secrets and the processing policy.

A secret setting may hold several secrets separated by commas or spaces: during a rotation at
the provider both are live and either signature is accepted. Stripe's keeps its deployed name
(``PAYLOOM_STRIPE_WEBHOOK_SECRET``, mounted from Secret Manager), so moving the webhook onto the
inbox changes no configuration. Tests override with ``deps.extras["inbox.settings"]``.
"""
from __future__ import annotations

import re

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "inbox.settings"


class InboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_INBOX_", extra="ignore",
                                      populate_by_name=True)

    # --- per-provider secrets --------------------------------------------------------------
    stripe_webhook_secret: str = Field("", repr=False, validation_alias=AliasChoices(
        "PAYLOOM_INBOX_STRIPE_WEBHOOK_SECRET", "PAYLOOM_STRIPE_WEBHOOK_SECRET"))
    kyc_webhook_secret: str = Field("", repr=False)        # Standard Webhooks whsec_…
    payouts_webhook_secret: str = Field("", repr=False)    # Standard Webhooks whsec_…

    # --- processing --------------------------------------------------------------------------
    queue: str = "inbound"
    max_attempts: int = 8
    # Attempt n+1 waits base * factor**(n-1), capped, times a jitter in [0.75, 1.25]:
    # 5 s, 15 s, 45 s, ... up to an hour; 8 attempts span about 2.5 hours.
    backoff_base_seconds: float = 5.0
    backoff_factor: float = 3.0
    backoff_cap_seconds: float = 3600.0
    # An event still waiting this long after its attempt was due lost its task (the function
    # kept crashing until the queue gave up): the sweep schedules that attempt again.
    stale_after_seconds: float = 900.0
    # The raw body is stored as sent; bigger ones are refused (a Firestore document holds
    # 1 MiB, and no provider event we handle comes close).
    raw_body_limit: int = 256 * 1024
    # Inbox documents are deleted by a TTL policy on ``expires_at``. This must outlast every
    # provider's retry window (Stripe: 3 days) so a late retry is still seen as a duplicate.
    event_ttl_seconds: int = 30 * 86400


def secret_list(value: str) -> tuple[str, ...]:
    """The live secrets in one setting (comma or whitespace separated)."""
    return tuple(s for s in re.split(r"[\s,]+", value or "") if s)


def inbox_settings(deps) -> InboxSettings:
    return deps.get(SETTINGS_KEY, InboxSettings)
