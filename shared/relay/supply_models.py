"""Request and response shapes of the supply side (providers, devices, SIMs, heartbeats,
earnings, blacklist), and its event types. Small on purpose: phones on poor connections read
them. Times are unix seconds like every resource's ``created``."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import DisplayText, DocId, RequestModel, ResourceModel

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")

ProviderStatus = Literal["active", "blacklisted"]
DeviceStatus = Literal["online", "offline", "busy", "blacklisted"]
SimStatus = Literal["online", "offline", "busy", "disabled", "blacklisted", "removed",
                    "inactive_hours", "quota_reached", "low_reputation", "unreachable"]


# --- requests ---------------------------------------------------------------------------------

class RegisterProvider(RequestModel):
    display_name: str | None = Field(None, min_length=1, max_length=60,
                                     description="Shown to support staff; defaults to none.")


def _printable(value: str) -> str:
    if not _PRINTABLE.match(value):
        raise ValueError("use printable ASCII without spaces")
    return value


Token = Annotated[str, AfterValidator(_printable)]


class RegisterDevice(RequestModel):
    fingerprint: Token = Field(..., min_length=8, max_length=128,
                               description="A stable per-install device id from the app (e.g. a hash "
                                           "of the Android ID); never shown back.")
    push_token: Token = Field(..., min_length=1, max_length=4096, description="The FCM registration token.")
    platform: Literal["android"] = "android"
    model: str | None = Field(None, max_length=64)
    app_version: str | None = Field(None, max_length=32)


class RotatePushToken(RequestModel):
    push_token: Token = Field(..., min_length=1, max_length=4096)


class UpdateDevice(RequestModel):
    status: Literal["online", "busy"] = Field(..., description="busy pauses every SIM of the device.")


class Location(RequestModel):
    lat: float = Field(..., ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(..., ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)


class Heartbeat(RequestModel):
    battery: int | None = Field(None, ge=0, le=100, description="Battery percentage.")
    charging: bool | None = None
    signal: int | None = Field(None, ge=0, le=4, description="Signal bars, 0 to 4.")
    network: str | None = Field(None, max_length=16, description="e.g. 4g, 3g, wifi.")
    location: Location | None = Field(None, description="Optional; stored rounded to about 1 km.")


class ActiveHours(RequestModel):
    start: str = Field(..., description="HH:MM, Asia/Phnom_Penh.", examples=["08:00"])
    end: str = Field(..., description="HH:MM, Asia/Phnom_Penh; before start wraps past midnight.",
                     examples=["21:00"])

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("use HH:MM (24 h)")
        return value

    @model_validator(mode="after")
    def _not_empty(self):
        if self.start == self.end:
            raise ValueError("start and end must differ (omit active_hours for all day)")
        return self

    def minutes(self) -> dict[str, int]:
        def m(v: str) -> int:
            h, mm = v.split(":")
            return int(h) * 60 + int(mm)
        return {"start": m(self.start), "end": m(self.end)}


class SimCaps(RequestModel):
    per_minute: int | None = Field(None, ge=1, le=1000)
    per_hour: int | None = Field(None, ge=1, le=10_000)
    per_day: int | None = Field(None, ge=1, le=10_000)


class StartSim(RequestModel):
    phone: str = Field(..., min_length=1, max_length=32,
                       description="The SIM's number, E.164 or Cambodian national format.")
    device: DocId = Field(..., max_length=64, description="The device the SIM is in (dev_…).")


class VerifySim(SimCaps):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    phone: str = Field(..., min_length=1, max_length=32)
    code: str = Field(..., min_length=1, max_length=16)
    device: DocId = Field(..., max_length=64)
    label: str | None = Field(None, min_length=1, max_length=40)
    active_hours: ActiveHours | None = None


class UpdateSim(SimCaps):
    enabled: bool | None = None
    label: str | None = Field(None, min_length=1, max_length=40)
    device: DocId | None = Field(None, max_length=64)
    active_hours: ActiveHours | None = Field(None, description="null clears (all day).")


class BlacklistRequest(RequestModel):
    kind: Literal["provider", "device", "sim", "recipient"]
    value: str = Field(..., min_length=1, max_length=64,
                       description="A prv_/dev_/sim_ id, or the recipient's phone number.")
    reason: DisplayText = Field(..., min_length=1, max_length=200)


class BlacklistQuery(RequestModel):
    kind: Literal["provider", "device", "sim", "recipient"] | None = None
    limit: int = Field(50, ge=1, le=100)


class SuspiciousQuery(RequestModel):
    provider: DocId | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=100)


# --- responses ---------------------------------------------------------------------------------

class Provider(ResourceModel):
    id: str
    object: Literal["relay_provider"] = "relay_provider"
    status: ProviderStatus
    display_name: str | None = None
    reputation: float = Field(description="0..1; below the threshold the provider's SIMs rest.")
    success_rate: float | None = Field(None, description="Delivered over finished jobs, last 7 days.")
    delivered_7_days: int = 0
    devices: list[str] = []
    sims: list[str] = []
    created: int
    message_km: str | None = None


class Device(ResourceModel):
    id: str
    object: Literal["relay_device"] = "relay_device"
    status: DeviceStatus
    push_token_status: Literal["active", "dropped"]
    platform: str
    model: str | None = None
    app_version: str | None = None
    last_heartbeat: int | None = None
    online_until: int | None = None
    battery: int | None = None
    charging: bool | None = None
    signal: int | None = None
    sims: list[str] = []
    created: int


class HeartbeatAck(ResourceModel):
    object: Literal["relay_heartbeat"] = "relay_heartbeat"
    device: str
    status: DeviceStatus
    online_until: int
    next_heartbeat_in: int = Field(description="Seconds until the next heartbeat is due.")
    message_km: str | None = None


class SimCapsOut(BaseModel):
    per_minute: int
    per_hour: int
    per_day: int


class SimUsage(BaseModel):
    minute: int
    hour: int
    day: int


class ActiveHoursOut(BaseModel):
    start: str
    end: str
    time_zone: str


class Sim(ResourceModel):
    id: str
    object: Literal["relay_sim"] = "relay_sim"
    phone: str = Field(description="Masked: +855*****678.")
    carrier: str
    carrier_name: str
    livemode: bool
    device: str
    label: str | None = None
    enabled: bool
    status: SimStatus
    caps: SimCapsOut
    usage: SimUsage
    active_hours: ActiveHoursOut | None = None
    reputation: float
    success_rate: float | None = None
    created: int


class Earning(ResourceModel):
    id: str
    object: Literal["relay_earning"] = "relay_earning"
    amount: int = Field(description="PPT in ledger units (scale 6).")
    amount_decimal: str
    asset: str
    sim: str
    job: str
    status: Literal["unpaid", "paid"]
    livemode: bool
    created: int


class EarningsSummary(ResourceModel):
    object: Literal["relay_earnings_summary"] = "relay_earnings_summary"
    asset: str
    today: int
    today_decimal: str
    last_7_days: int
    last_7_days_decimal: str
    total: int
    total_decimal: str
    delivered_today: int
    delivered_7_days: int
    delivered_total: int


class BlacklistEntry(ResourceModel):
    id: str
    object: Literal["relay_blacklist_entry"] = "relay_blacklist_entry"
    kind: str
    value: str = Field(description="The id, or a recipient's masked number.")
    reason: str
    created: int
    created_by: str | None = Field(None, description="The operator's user id, or `service`.")


class BlacklistList(ResourceModel):
    object: Literal["list"] = "list"
    data: list[BlacklistEntry]


class SuspiciousActivity(ResourceModel):
    id: str
    object: Literal["relay_suspicious_activity"] = "relay_suspicious_activity"
    kind: str = Field(description="invalid_report, delivery_too_fast, send_too_fast, "
                                  "delivered_unsent, uniform_delivery, many_accounts_per_device.")
    provider: str | None = None
    sim: str | None = None
    device: str | None = None
    job: str | None = None
    detail: str
    penalty: float
    created: int


class SuspiciousList(ResourceModel):
    object: Literal["list"] = "list"
    data: list[SuspiciousActivity]


class SupplySweep(ResourceModel):
    object: Literal["relay_sweep"] = "relay_sweep"
    rechecked: int
    went_offline: int
    hooks: dict[str, int] = {}


SUSPICIOUS_ACTIVITY = declare(
    "relay.suspicious_activity", ObjectPayload[SuspiciousActivity], public=False,
    description="Operators: a relay provider, device or SIM did something that looks like fraud "
                "(fake or forged reports, machine-made delivery times, many accounts on one phone).")
DEVICE_OFFLINE = declare(
    "relay.device.offline", ObjectPayload[Device], public=False,
    description="A provider's phone missed its heartbeat window; its SIMs are no longer matched.")
