"""Supply-side settings (ADR 0043): caps, heartbeat windows, scoring, fraud thresholds, rewards.

``PAYLOOM_RELAY_*`` in the environment; tests inject ``deps.extras["relay.supply_settings"]``.
Defaults follow httpSMS (15-minute heartbeat, offline after 16) and what carriers tolerate
(about 100 SMS a day per SIM).
"""
from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "relay.supply_settings"
TIME_ZONE = "Asia/Phnom_Penh"


class SupplySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_RELAY_", extra="ignore")

    # --- per-SIM caps (defaults, and the bounds a provider may choose within) ---------------
    default_per_minute: int = Field(6, ge=1)
    default_per_hour: int = Field(60, ge=1)
    default_per_day: int = Field(100, ge=1)
    max_per_minute: int = Field(30, ge=1)
    max_per_hour: int = Field(600, ge=1)
    max_per_day: int = Field(500, ge=1)
    in_flight_per_sim: int = Field(2, ge=1, le=20)   # jobs assigned and not yet sent/failed
    max_sims_per_provider: int = Field(10, ge=1)
    max_sims_per_device: int = Field(4, ge=1)
    max_devices_per_provider: int = Field(5, ge=1)

    # --- liveness -----------------------------------------------------------------------------
    heartbeat_interval_seconds: int = Field(15 * 60, ge=30)
    offline_after_seconds: int = Field(16 * 60, ge=60)
    stale_in_flight_seconds: int = Field(30 * 60, ge=60)   # a reservation R2 never released
    sent_report_window_seconds: int = Field(24 * 3600, ge=60)  # wait for a delivery report

    # --- matching -----------------------------------------------------------------------------
    # > 0: each instance reads a pool's best 64 SIMs at most once per this many seconds and
    # matches from memory (reserve re-reads the chosen SIM, so only the choice can be stale;
    # matching asks the index when every cached candidate fails). 0: every match queries.
    candidates_cache_seconds: float = Field(1.0, ge=0, le=10)

    # --- reputation ---------------------------------------------------------------------------
    reputation_threshold: float = Field(0.35, ge=0, le=1)  # below: never matched
    prior_success: float = Field(0.9, ge=0, le=1)          # a new SIM's assumed success rate
    prior_weight: float = Field(5.0, gt=0)                 # how many jobs that prior is worth
    stats_window_days: int = Field(7, ge=1, le=30)
    penalty_half_life_hours: float = Field(7 * 24, gt=0)

    # --- fraud detectors ----------------------------------------------------------------------
    min_delivery_seconds: float = Field(1.5, ge=0)   # sent -> delivered faster: not a carrier DLR
    min_send_seconds: float = Field(0.25, ge=0)      # assigned -> sent faster: never fetched
    uniform_min_samples: int = Field(10, ge=3)
    uniform_max_cv: float = Field(0.03, ge=0)        # latency std/mean below: machine-made
    accounts_per_device_alert: int = Field(2, ge=2)  # distinct accounts seen on one device
    suspicious_event_interval_seconds: int = Field(3600, ge=0)  # per SIM and kind

    # --- rewards --------------------------------------------------------------------------------
    reward_per_message: str = "0.5"   # PPT per delivered message (decimal, PPT ledger scale)

    @model_validator(mode="after")
    def _coherent(self):
        if not (self.default_per_minute <= self.default_per_hour <= self.default_per_day):
            raise ValueError("default caps must satisfy minute <= hour <= day")
        if self.offline_after_seconds <= self.heartbeat_interval_seconds - 1:
            raise ValueError("offline_after_seconds must exceed the heartbeat interval")
        return self

    @property
    def reward_units(self) -> int:
        from shared.ledger.assets import parse_decimal
        return parse_decimal(self.reward_per_message, "PPT")


def supply_settings(deps) -> SupplySettings:
    return deps.get(SETTINGS_KEY, SupplySettings)
