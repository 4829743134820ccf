"""Demand-side and dispatch settings (ADR 0044): client limits, content caps, step deadlines.

``PAYLOOM_RELAY_DISPATCH_*`` in the environment; tests inject
``deps.extras["relay.dispatch_settings"]`` (e.g. second-long deadlines). A client may have its
own limits in ``relay_clients/{tenant}`` (``daily_quota``, ``per_minute``), written by operations.
"""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "relay.dispatch_settings"
PRIORITIES = ("high", "normal", "bulk")


class DispatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_RELAY_DISPATCH_", extra="ignore")

    queue: str = "relay"
    tasks_function: str = "relay_tasks"

    # --- clients ------------------------------------------------------------------------------
    per_minute: int = Field(600, ge=1)          # POST /v1/messages per client and minute
    daily_quota: int = Field(10_000, ge=1)      # messages per client and UTC day
    max_parts: int = Field(10, ge=1, le=20)
    allowed_country_codes: list[str] = ["855"]  # recipients: Cambodian numbers only
    per_recipient_hour: int = Field(5, ge=1)    # messages of one client to one number
    per_recipient_day: int = Field(20, ge=1)
    default_expiry_seconds: int = Field(24 * 3600, ge=60)
    min_expiry_seconds: int = Field(60, ge=1)             # expires_at at least this after send
    max_expiry_seconds: int = Field(7 * 86400, ge=60)
    max_schedule_seconds: int = Field(29 * 86400, ge=60)   # Cloud Tasks: 30 days ahead at most
    retention_days: int = Field(90, ge=1)                  # purge_at (TTL) after creation

    # --- dispatch -----------------------------------------------------------------------------
    ack_deadline_seconds: float = Field(60, gt=0)      # pushed, not fetched by the phone
    send_deadline_seconds: float = Field(120, gt=0)    # fetched, not reported sent
    send_lease_seconds: float = Field(90, gt=0)        # the phone must not send after this
    report_deadline_seconds: float = Field(600, gt=0)  # sent, no delivery report
    max_attempts: dict[str, int] = {"high": 4, "normal": 3, "bulk": 2}
    backoff_base_seconds: float = Field(5, ge=0)       # reassignment n waits base * 4**(n-1)
    backoff_cap_seconds: float = Field(300, ge=0)
    no_sim_retry_seconds: float = Field(15, ge=0)      # no SIM free: look again after this
    no_sim_retry_cap_seconds: float = Field(120, ge=0)
    push_retry_seconds: list[float] = [2, 6, 15]       # FCM unavailable: retry the push
    push_ttl_seconds: int = Field(60, ge=0)
    max_fetches: int = Field(5, ge=1)                  # tokens a phone may get for one job
    top_k: int = Field(3, ge=1)                        # pick among this many best SIMs
    bulk_min_remaining_day: int = Field(20, ge=0)      # bulk skips SIMs with less left today
    # --- the client's callback URL -------------------------------------------------------------
    callback_retry_seconds: list[float] = [5, 30, 120, 600, 3600]
    callback_timeout_seconds: float = Field(10, gt=0)
    # --- the sweeper ----------------------------------------------------------------------------
    sweep_grace_seconds: float = Field(30, ge=0)       # overdue this long: the timer was lost
    sweep_batch: int = Field(200, ge=1)
    callback_secret_grace_seconds: int = Field(86400, ge=0)


def dispatch_settings(deps) -> DispatchSettings:
    return deps.get(SETTINGS_KEY, DispatchSettings)
