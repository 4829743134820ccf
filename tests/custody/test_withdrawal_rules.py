"""The pure rules of withdrawals: the custodians' configuration, M-of-N counting, the audit
hash. No emulator."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from shared.custody import approvals, audit, custodians
from shared.platform.errors import InvalidRequest

A, B, C, D = ("usr_" + c * 24 for c in "abcd")
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _env(value) -> dict[str, str]:
    return {custodians.ENV_VAR: json.dumps(value)}


def test_configuration_parses_limits_exactly_and_decides_one_or_m():
    config = custodians.load_custodians(env=_env({"test": {
        "approvers": [A, B, C], "threshold": 2,
        "limits": {"USDC": "10000.00", "ETH": "0.5", "MUSD": "0"}}}))
    policy = config.policy(False)
    assert config.policy(True) is None                       # live not configured: nobody
    assert policy.limits == {"USDC": 10_000_000_000, "ETH": 500_000_000, "MUSD": 0}
    assert policy.required_approvals("USDC", 10_000_000_000) == 1      # at the limit: alone
    assert policy.required_approvals("USDC", 10_000_000_001) == 2      # above it: M
    assert policy.required_approvals("PPT", 1) == 2                    # no limit: always M
    assert policy.required_approvals("MUSD", 1) == 2
    assert (policy.mfa_max_age_seconds, policy.approval_ttl_seconds) == (900, 86400)
    assert custodians.load_custodians(env={}).policy(False) is None


@pytest.mark.parametrize("bad", [
    {"approvers": [A, B], "threshold": 3},                            # M > N
    {"approvers": [A, A], "threshold": 1},                            # the same person twice
    {"approvers": ["alice"], "threshold": 1},                         # not a user id
    {"approvers": [], "threshold": 1},
    {"approvers": [A], "threshold": 0},
    {"approvers": [A], "threshold": 1, "limits": {"USD": "10.00"}},    # not an on-chain asset
    {"approvers": [A], "threshold": 1, "limits": {"USDC": "1.0000001"}},  # finer than the asset
    {"approvers": [A], "threshold": 1, "limits": {"USDC": 5}},         # a number, not a string
    {"approvers": [A], "threshold": 1, "mfa_max_age": 60},            # unknown field
])
def test_a_malformed_configuration_fails_loudly(bad):
    with pytest.raises(ValidationError):
        custodians.load_custodians(env=_env({"test": bad}))


def test_live_needs_two_approvals_in_production():
    one = {"live": {"approvers": [A, B], "threshold": 1}}
    assert custodians.load_custodians(env=_env(one)).policy(True).threshold == 1   # local
    with pytest.raises(ValueError, match="at least 2"):
        custodians.load_custodians(production=True, env=_env(one))


def test_mode_header():
    assert custodians.mode_from({}) is False
    assert custodians.mode_from({"Payloom-Mode": "live"}) is True
    with pytest.raises(InvalidRequest) as exc:
        custodians.mode_from({"Payloom-Mode": "prod"})
    assert exc.value.code == "invalid_mode"


def _votes(*who):
    return [{"custodian": c, "at": NOW} for c in who]


def test_each_current_custodian_counts_once():
    doc = {"approvals": _votes(A, A, B, D)}
    assert approvals.voters(doc["approvals"]) == [A, B, D]
    assert approvals.counted(doc["approvals"], [A, B, C]) == 2          # D is no longer one
    assert approvals.threshold_met(doc, [A, B, C], 2)
    assert not approvals.threshold_met(doc, [A, B, C], 3)
    assert approvals.has_voted(doc, A) == "approved" and approvals.has_voted(doc, C) is None
    assert approvals.has_voted({"rejections": _votes(C)}, C) == "rejected"


def test_rejections_cancel_only_when_m_is_out_of_reach():
    approvers = [A, B, C, D]
    assert not approvals.unreachable({"rejections": _votes(C)}, approvers, 3)       # 3 left
    assert approvals.unreachable({"rejections": _votes(C, D)}, approvers, 3)        # 2 left
    assert not approvals.unreachable({"rejections": _votes(C, C)}, approvers, 3)    # once
    assert not approvals.unreachable({"rejections": _votes("usr_gone")}, approvers, 4)


def test_the_record_hash_covers_every_field_and_nothing_else():
    rec = {"seq": 3, "prev": "ab" * 32, "at": NOW.isoformat(), "action": "withdrawal.approval",
           "actor": {"user": A, "session": "ses_x", "ip": None}, "subject": "wdr_x",
           "data": {"amount": 5, "asset": "ETH", "ok": True, "list": [1, "x"]}}
    h = audit.record_hash(rec)
    assert h == audit.record_hash({**rec, "hash": "ignored", "livemode": True})
    for key, value in [("seq", 4), ("prev", "cd" * 32), ("at", "2026-12-01T00:00:01+00:00"),
                       ("action", "withdrawal.rejection"), ("subject", "wdr_y"),
                       ("actor", {**rec["actor"], "user": B}),
                       ("data", {**rec["data"], "amount": 6})]:
        assert audit.record_hash({**rec, key: value}) != h, key
    with pytest.raises(TypeError):
        audit.record_hash({**rec, "data": {"x": 1.5}})                  # floats are refused
