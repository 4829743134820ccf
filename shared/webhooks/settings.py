"""Webhook settings (``PAYLOOM_WEBHOOKS_``). Tests compress the retry schedule through these."""
from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

# Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
STANDARD_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_WEBHOOKS_", extra="ignore")

    queue: str = "webhooks"
    # Wait before attempt n+1 (index n-1 is the wait before attempt n; the first is 0). The
    # number of entries is the number of attempts; after the last one a delivery is dead-lettered.
    retry_schedule_seconds: list[float] = list(STANDARD_SCHEDULE)
    jitter: float = 0.1               # each wait is multiplied by a factor in [1-j, 1+j]
    request_timeout_seconds: float = 15.0
    lease_seconds: float = 45.0       # an attempt owns its delivery this long (> the timeout)
    response_body_limit: int = 2048   # bytes of a receiver's answer kept with the attempt
    disable_after_seconds: int = 5 * 86400   # failing continuously this long disables
    rotation_grace_seconds: int = 86400      # default life of the old secret after a rotation
    max_rotation_grace_seconds: int = 7 * 86400
    max_endpoints_per_owner: int = 16
    endpoint_concurrency: int = 10    # attempts in flight per endpoint (lease slots)
    defer_seconds: float = 2.0        # an attempt finding every slot taken comes back this much later
    retry_after_cap_seconds: int = 86400
    max_payload_bytes: int = 20_000
    attempt_ttl_seconds: int = 30 * 86400
    # Loopback (and plain http to it) is allowed outside production only: locally and in tests
    # the receiver simulator listens on 127.0.0.1. None means "decide from the environment".
    allow_loopback: bool | None = None


def webhook_settings(deps) -> WebhookSettings:
    """The settings with ``allow_loopback`` resolved from the deployment environment."""
    def build() -> WebhookSettings:
        s = WebhookSettings()
        if s.allow_loopback is None:
            s.allow_loopback = not deps.settings.is_production
        return s
    return deps.get("webhooks.settings", build)
