"""Per-merchant payment settings: ``merchant_settings/{mch}``, read by payments.

One document per merchant, shared by test and live mode (configuration, like a Stripe
account's settings; the objects it governs are mode-scoped). Unset fields take the defaults
below, so ``get_settings`` always returns a complete ``MerchantSettings``. The settlement asset
lives on the merchant document (it is part of the merchant's identity, emitted with
``merchant.updated``); settings expose and change it.

Speed policy (BTCPay's): confirmations required before an on-chain payment counts:
high 0, medium 1, lowmedium 2, low 6.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.ledger.assets import ASSETS, INT64_MAX
from shared.merchants import store
from shared.merchants.events import emit_both_modes
from shared.merchants.models import MERCHANT_UPDATED
from shared.merchants.xpub import validate_xpub
from shared.platform.clock import rfc3339
from shared.platform.errors import InvalidRequest
from shared.platform.models import RequestModel

COLLECTION = "merchant_settings"
Method = Literal["wallet", "card", "crypto"]
SpeedPolicy = Literal["high", "medium", "lowmedium", "low"]
CONFIRMATIONS: dict[str, int] = {"high": 0, "medium": 1, "lowmedium": 2, "low": 6}
METHODS: tuple[str, ...] = ("wallet", "card", "crypto")
DEFAULT_EXPIRY_SECONDS = 900
MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS = 60, 7 * 86400
DEFAULT_LATE_WINDOW_SECONDS = 86400
MAX_LATE_WINDOW_SECONDS = 30 * 86400
MAX_TOLERANCE_BPS = 1000      # 10 %
MAX_FEE_BPS = 10_000          # 100 %


def _check_asset(code: str, param: str) -> str:
    if code not in ASSETS:
        raise ValueError(f"{param}: unknown asset {code[:20]!r}; use one of {sorted(ASSETS)}")
    return code


class FeeRule(BaseModel):
    """The fee on one method: ``percent_bps`` of the amount plus ``fixed`` minor units of the
    payment's asset (at the ledger scale of that asset)."""
    model_config = ConfigDict(extra="forbid")
    percent_bps: int = Field(0, ge=0, le=MAX_FEE_BPS)
    fixed: dict[str, int] = Field(default_factory=dict, max_length=len(ASSETS))

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, v: dict[str, int]) -> dict[str, int]:
        for code, units in v.items():
            _check_asset(code, "fixed")
            if not 0 <= units <= INT64_MAX:
                raise ValueError("fixed fees are non-negative integers in minor units")
        return v


class MerchantSettings(BaseModel):
    """What payments need to know about a merchant (complete: defaults fill what is unset)."""
    object: Literal["merchant_settings"] = "merchant_settings"
    merchant: str
    accepted_methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    accepted_assets: list[str] = Field(default_factory=lambda: sorted(ASSETS))
    speed_policy: SpeedPolicy = "medium"
    payment_tolerance_bps: int = Field(0, ge=0, le=MAX_TOLERANCE_BPS)
    intent_expiry_seconds: int = Field(DEFAULT_EXPIRY_SECONDS, ge=MIN_EXPIRY_SECONDS,
                                       le=MAX_EXPIRY_SECONDS)
    late_payment_window_seconds: int = Field(DEFAULT_LATE_WINDOW_SECONDS, ge=0,
                                             le=MAX_LATE_WINDOW_SECONDS)
    fee_schedule: dict[Method, FeeRule] = Field(default_factory=dict)
    xpub: str | None = None
    settlement_asset: str
    updated: str | None = None

    @property
    def required_confirmations(self) -> int:
        return CONFIRMATIONS[self.speed_policy]

    def fee_for(self, method: str) -> FeeRule:
        return self.fee_schedule.get(method) or FeeRule()


class UpdateSettings(RequestModel):
    """Fields given replace the stored ones; omitted fields are unchanged; ``null`` resets a
    field to its default (``xpub: null`` removes the xpub)."""
    accepted_methods: list[Method] | None = Field(None, min_length=1, max_length=len(METHODS))
    accepted_assets: list[str] | None = Field(None, min_length=1, max_length=len(ASSETS))
    speed_policy: SpeedPolicy | None = None
    payment_tolerance_bps: int | None = Field(None, ge=0, le=MAX_TOLERANCE_BPS)
    intent_expiry_seconds: int | None = Field(None, ge=MIN_EXPIRY_SECONDS, le=MAX_EXPIRY_SECONDS)
    late_payment_window_seconds: int | None = Field(None, ge=0, le=MAX_LATE_WINDOW_SECONDS)
    fee_schedule: dict[Method, FeeRule] | None = None
    xpub: str | None = Field(None, max_length=200)
    settlement_asset: str | None = Field(None, max_length=12)

    @field_validator("accepted_methods", "accepted_assets")
    @classmethod
    def _unique(cls, v):
        if v is not None and len(set(v)) != len(v):
            raise ValueError("list items must be unique")
        return v

    @field_validator("accepted_assets")
    @classmethod
    def _assets(cls, v):
        return v if v is None else [_check_asset(c, "accepted_assets") for c in v]

    @field_validator("settlement_asset")
    @classmethod
    def _settlement(cls, v):
        return v if v is None else _check_asset(v, "settlement_asset")

    @model_validator(mode="after")
    def _not_empty(self):
        if not self.model_fields_set:
            raise ValueError("give at least one setting to change")
        return self


STORED_FIELDS = ("accepted_methods", "accepted_assets", "speed_policy", "payment_tolerance_bps",
                 "intent_expiry_seconds", "late_payment_window_seconds", "fee_schedule", "xpub")


def settings_ref(db, merchant_id: str):
    return db.collection(COLLECTION).document(merchant_id)


def build(merchant: dict[str, Any], stored: dict[str, Any] | None) -> MerchantSettings:
    """The complete settings from the merchant document and the stored overrides (pure)."""
    stored = stored or {}
    fields = {k: stored[k] for k in STORED_FIELDS if stored.get(k) is not None}
    updated = stored.get("updated_at")
    return MerchantSettings(merchant=merchant["id"], settlement_asset=merchant["settlement_asset"],
                            updated=rfc3339(updated) if updated else None, **fields)


def get_settings(db_or_uow, merchant_id: str) -> MerchantSettings:
    """A merchant's settings with defaults, in ONE batch read (a ``UnitOfWork`` reads through
    itself, so payments' decisions are guarded by its commit; a Firestore client reads plainly).
    Raises ``LookupError`` for a merchant that does not exist (callers choose their 4xx)."""
    db = getattr(db_or_uow, "db", db_or_uow)
    mref, sref = store.merchant_ref(db, merchant_id), settings_ref(db, merchant_id)
    if hasattr(db_or_uow, "get_all") and hasattr(db_or_uow, "emit"):
        snaps = db_or_uow.get_all([mref, sref])
        msnap, ssnap = snaps[mref.path], snaps[sref.path]
    else:
        by_path = {s.reference.path: s for s in db.get_all([mref, sref])}
        msnap, ssnap = by_path[mref.path], by_path[sref.path]
    if not msnap.exists:
        raise LookupError(merchant_id)
    return build(msnap.to_dict(), ssnap.to_dict() if ssnap.exists else None)


def update_settings(uow, merchant_id: str, body: UpdateSettings) -> MerchantSettings:
    """Apply ``body``; a new settlement asset changes the merchant and emits
    ``merchant.updated``. Checks that hold across fields: the settlement
    asset and the fee schedule's fixed amounts name accepted assets."""
    mref, sref = store.merchant_ref(uow.db, merchant_id), settings_ref(uow.db, merchant_id)
    snaps = uow.get_all([mref, sref])
    if not snaps[mref.path].exists:
        raise store.not_a_member()
    merchant = snaps[mref.path].to_dict()
    stored = snaps[sref.path].to_dict() if snaps[sref.path].exists else {}
    given = body.model_fields_set
    change: dict[str, Any] = {}
    for name in STORED_FIELDS:
        if name in given:
            value = getattr(body, name)
            if name == "xpub" and value is not None:
                value = validate_xpub(value)
            if name == "fee_schedule" and value is not None:
                value = {m: rule.model_dump() for m, rule in value.items()}
            change[name] = value
    merged = {**stored, **change}
    new_asset = body.settlement_asset if "settlement_asset" in given else None
    merchant_after = {**merchant, **({"settlement_asset": new_asset} if new_asset else {})}
    result = build(merchant_after, {**merged, "updated_at": uow.now})
    _check_coherent(result)
    uow.set(sref, {**merged, "merchant_id": merchant_id, "updated_at": uow.now})
    if new_asset and new_asset != merchant["settlement_asset"]:
        uow.update(mref, {"settlement_asset": new_asset, "updated_at": uow.now})
        emit_both_modes(uow, MERCHANT_UPDATED.name, merchant_id, store.merchant_resource(
            {**merchant_after, "updated_at": uow.now}))
    return result


def _check_coherent(s: MerchantSettings) -> None:
    for method, rule in s.fee_schedule.items():
        if method not in s.accepted_methods:
            raise InvalidRequest(f"fee_schedule names {method!r}, which is not accepted.",
                                 param="fee_schedule", code="parameter_invalid")
        for code in rule.fixed:
            if code not in s.accepted_assets:
                raise InvalidRequest(f"fee_schedule.{method}.fixed names {code!r}, which is "
                                     f"not an accepted asset.", param="fee_schedule",
                                     code="parameter_invalid")
