"""Outgoing limits per user: daily and monthly totals per asset, and a velocity check.

The tier comes from ``directory.kyc_tier`` (0 = no KYC). Counting happens INSIDE the debit
transaction on one usage document per user (``wallet_usage/{user_id}``) that is read with the
sender's wallet account; two concurrent transfers of the same user therefore serialise and can
never both squeeze under a limit. Only a newly created transfer counts: a retry answered
``exists`` is neither counted nor refused.

Days and months are UTC calendar periods. Amounts are ledger units of the asset. An asset a
tier does not list has a limit of zero (fail closed).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping

from shared.ledger import assets
from shared.platform.errors import RateLimited, Unprocessable

USAGE = "wallet_usage"


def _units(table: Mapping[str, str]) -> dict[str, int]:
    """Human amounts per asset ("250.00") to ledger units, exactly."""
    return {a: assets.parse_decimal(v, a) for a, v in table.items()}


@dataclasses.dataclass(frozen=True)
class TierLimits:
    daily: Mapping[str, int]
    monthly: Mapping[str, int]
    velocity_count: int = 10               # at most this many outgoing transfers …
    velocity_window_seconds: int = 600     # … per this many seconds


@dataclasses.dataclass(frozen=True)
class WalletPolicy:
    tiers: Mapping[int, TierLimits]
    p2p_fee_bps: int = 0                   # fee in basis points of the amount, rounded down
    p2p_fee_min: Mapping[str, int] = dataclasses.field(default_factory=dict)
    max_topup: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def limits_for(self, tier: int) -> TierLimits:
        eligible = [t for t in self.tiers if t <= max(0, int(tier))]
        return self.tiers[max(eligible)] if eligible else self.tiers[min(self.tiers)]

    def p2p_fee(self, asset: str, amount: int) -> int:
        if not self.p2p_fee_bps and not self.p2p_fee_min.get(asset):
            return 0
        return max(amount * self.p2p_fee_bps // 10_000, self.p2p_fee_min.get(asset, 0))


def _scaled(table: Mapping[str, str], factor: int) -> dict[str, int]:
    return {a: v * factor for a, v in _units(table).items()}


_TIER0_DAILY = {"USD": "250", "KHR": "1000000", "USDC": "250", "MUSD": "250", "ETH": "0.1",
                "PPT": "1000"}
DEFAULT_POLICY = WalletPolicy(
    tiers={
        0: TierLimits(daily=_scaled(_TIER0_DAILY, 1), monthly=_scaled(_TIER0_DAILY, 10),
                      velocity_count=10, velocity_window_seconds=600),
        1: TierLimits(daily=_scaled(_TIER0_DAILY, 10), monthly=_scaled(_TIER0_DAILY, 100),
                      velocity_count=30, velocity_window_seconds=600),
        2: TierLimits(daily=_scaled(_TIER0_DAILY, 100), monthly=_scaled(_TIER0_DAILY, 1000),
                      velocity_count=120, velocity_window_seconds=600),
    },
    max_topup=_units({"USD": "10000", "KHR": "40000000"}),
)


def usage_ref(db, user_id: str):
    return db.collection(USAGE).document(user_id)


def count_outgoing(doc: dict[str, Any] | None, limits: TierLimits, *, user_id: str, asset: str,
                   amount: int, now: dt.datetime) -> dict[str, Any]:
    """The usage document after one more outgoing transfer, or raise if it breaks a limit."""
    doc = dict(doc or {})
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    daily = dict(doc.get("daily") or {}) if doc.get("day") == day else {}
    monthly = dict(doc.get("monthly") or {}) if doc.get("month") == month else {}
    ts = now.timestamp()
    window = limits.velocity_window_seconds
    recent = [float(t) for t in (doc.get("recent") or []) if float(t) > ts - window]
    if len(recent) >= limits.velocity_count:
        retry = max(1, int(min(recent) + window - ts) + 1)
        raise RateLimited(f"At most {limits.velocity_count} outgoing transfers per "
                          f"{window // 60} minutes.", code="velocity_limit_exceeded",
                          headers={"Retry-After": str(retry)})
    new_day = int(daily.get(asset, 0)) + amount
    if new_day > int(limits.daily.get(asset, 0)):
        raise Unprocessable(f"This transfer would exceed your daily {asset} limit of "
                            f"{assets.format_decimal(int(limits.daily.get(asset, 0)), asset)}.",
                            code="daily_limit_exceeded", param="amount")
    new_month = int(monthly.get(asset, 0)) + amount
    if new_month > int(limits.monthly.get(asset, 0)):
        raise Unprocessable(f"This transfer would exceed your monthly {asset} limit of "
                            f"{assets.format_decimal(int(limits.monthly.get(asset, 0)), asset)}.",
                            code="monthly_limit_exceeded", param="amount")
    daily[asset], monthly[asset] = new_day, new_month
    recent = (recent + [ts])[-limits.velocity_count:]
    return {"user_id": user_id, "day": day, "daily": daily, "month": month, "monthly": monthly,
            "recent": recent, "updated_at": now}
