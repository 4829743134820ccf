"""Who may move the treasury: the custodians of each mode, and how recently they proved MFA.

Configuration (``PAYLOOM_CUSTODIANS``, JSON; read here because the platform ``Settings`` has no
field for it; tests inject ``deps.extras["custody.custodians"]``)::

    {"test": {"approvers": ["usr_…", …], "threshold": 2,
              "limits": {"USDC": "10000.00", "ETH": "2"},
              "mfa_max_age_seconds": 900, "approval_ttl_seconds": 86400, "confirmations": 1},
     "live": {…}}

- ``approvers``: Payloom staff user ids (identity users), at most 20, no duplicates;
- ``threshold``: M of the N approvers needed above the limit (1..N; at least 2 in live mode
  in production: one stolen session must never move the treasury above the limit alone);
- ``limits``: per asset, the largest amount one custodian may send alone (decimal strings in
  the asset's own precision). An asset without a limit always needs M approvals;
- ``mfa_max_age_seconds``: how old the MFA sign-in behind the caller's session may be for a
  create or an approval (step-up, see ``require_custodian``);
- ``approval_ttl_seconds``: how long a proposal collects approvals before it is canceled;
- ``confirmations``: blocks a withdrawal needs to count as succeeded.

A mode that is not configured has no custodians: every custody route answers 403. API keys
never reach custody routes (the routes take users only).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.identity import step_up
from shared.ledger import assets
from shared.platform.auth import Principal
from shared.platform.errors import InvalidRequest, PermissionDenied

ENV_VAR = "PAYLOOM_CUSTODIANS"
MODE_HEADER = "Payloom-Mode"
MAX_APPROVERS = 20
# What ``require_custodian`` asks of the caller's sign-in:
NO_MFA, MFA_SESSION, RECENT_MFA = "none", "session", "recent"
_ZERO = re.compile(r"^0(\.0+)?$")


class ModePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: tuple[str, ...] = Field(min_length=1, max_length=MAX_APPROVERS)
    threshold: int = Field(ge=1)
    limits: dict[str, int] = Field(default_factory=dict)
    mfa_max_age_seconds: int = Field(900, ge=30, le=24 * 3600)
    approval_ttl_seconds: int = Field(24 * 3600, ge=60, le=30 * 24 * 3600)
    confirmations: int = Field(1, ge=1, le=64)

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for uid in value:
            if not isinstance(uid, str) or not uid.startswith("usr_") or len(uid) > 80:
                raise ValueError(f"approvers are user ids (usr_…), not {str(uid)[:20]!r}")
        if len(set(value)) != len(value):
            raise ValueError("an approver is listed twice")
        return value

    @field_validator("limits", mode="before")
    @classmethod
    def _limits(cls, value: Any) -> dict[str, int]:
        if not isinstance(value, dict):
            raise ValueError("limits is an object of asset -> decimal string")  # noqa: TRY004
        out = {}
        for code, amount in value.items():
            asset = assets.ASSETS.get(code)
            if asset is None or asset.onchain_decimals is None:
                raise ValueError(f"limit for {code!r}: not an on-chain asset of the ledger")
            if isinstance(amount, bool) or not isinstance(amount, str):
                raise ValueError(  # noqa: TRY004  (pydantic reports ValueError only)
                    f"limit for {code}: a decimal string such as \"10000.00\"")
            try:
                out[code] = 0 if _ZERO.match(amount.strip()) else \
                    assets.parse_decimal(amount, asset, param=f"limits.{code}")
            except InvalidRequest as exc:
                raise ValueError(f"limit for {code}: {exc.message}") from None
        return out

    @model_validator(mode="after")
    def _m_of_n(self) -> ModePolicy:
        if self.threshold > len(self.approvers):
            raise ValueError(f"threshold {self.threshold} exceeds the "
                             f"{len(self.approvers)} approvers")
        return self

    def limit(self, asset: str) -> int:
        """Ledger units one custodian may withdraw alone (0: every withdrawal needs M)."""
        return int(self.limits.get(asset, 0))

    def required_approvals(self, asset: str, amount: int) -> int:
        """1 at or below the asset's limit, M above it."""
        return 1 if amount <= self.limit(asset) else self.threshold

    def is_approver(self, user_id: str) -> bool:
        return user_id in self.approvers


class CustodyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    test: ModePolicy | None = None
    live: ModePolicy | None = None

    def policy(self, livemode: bool) -> ModePolicy | None:
        return self.live if livemode else self.test


def load_custodians(*, production: bool = False,
                    env: Mapping[str, str] | None = None) -> CustodyConfig:
    """Parse ``PAYLOOM_CUSTODIANS``; unset means no custodian in any mode. A malformed value
    raises at the first use (a misconfigured treasury must fail loudly, never open)."""
    raw = (env if env is not None else os.environ).get(ENV_VAR)
    if raw is None or not raw.strip():
        return CustodyConfig()
    config = CustodyConfig.model_validate(json.loads(raw))
    if production and config.live is not None and config.live.threshold < 2:
        raise ValueError("live custody needs a threshold of at least 2 in production")
    return config


def custody_config(deps: Any) -> CustodyConfig:
    return deps.get("custody.custodians",
                    lambda: load_custodians(production=deps.settings.is_production))


def mode_from(headers: Mapping[str, str]) -> bool:
    """``Payloom-Mode: live|test`` (default test); anything else is a 400."""
    value = (headers.get(MODE_HEADER) or "test").strip()
    if value not in ("live", "test"):
        raise InvalidRequest(f"{MODE_HEADER} must be 'live' or 'test'.", param=MODE_HEADER,
                             code="invalid_mode")
    return value == "live"


@dataclasses.dataclass(frozen=True)
class Custodian:
    user_id: str
    livemode: bool
    policy: ModePolicy
    session_id: str | None = None
    ip: str | None = None
    mfa_at: dt.datetime | None = None   # when the session's MFA sign-in happened

    def audit_actor(self) -> dict[str, Any]:
        return {"user": self.user_id, "session": self.session_id, "ip": self.ip}


def require_custodian(principal: Principal, deps: Any, *, livemode: bool = False,
                      mfa: str = NO_MFA) -> Custodian:
    """The caller as a custodian of ``livemode``, or 403.

    - ``custodian_required``: not a user, or not an approver of this mode;
    - ``mfa_required`` (``mfa`` is ``session`` or ``recent``): the session was not opened by a
      sign-in that passed a second factor (its ``amr`` has no ``mfa``);
    - ``recent_mfa_required`` (``mfa="recent"``): that sign-in is older than
      ``mfa_max_age_seconds`` (``shared.identity.step_up``: one read of the session). The
      custodian signs in again (password + TOTP) to step up.
    """
    policy = custody_config(deps).policy(livemode)
    if principal.kind != "user" or policy is None or not policy.is_approver(principal.id):
        raise PermissionDenied("Only the treasury's custodians may do this.",
                               code="custodian_required")
    custodian = Custodian(principal.id, livemode, policy, principal.session_id, principal.ip)
    if mfa == NO_MFA:
        return custodian
    signed_in = step_up.require_mfa(
        deps, principal, what="Custody actions",
        max_age_seconds=policy.mfa_max_age_seconds if mfa == RECENT_MFA else None)
    return dataclasses.replace(custodian, mfa_at=signed_in)
