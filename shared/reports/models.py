"""API models of reports and the reconciliation event.

Amounts are integers in the asset's ledger minor units (``shared/ledger/assets.py``) in JSON;
the CSV carries the same numbers as exact decimal strings. On-chain amounts in the
reconciliation are base units as decimal strings (wei overflow int64).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel
from shared.reports.days import DAY_PATTERN


# --- settlement report ---------------------------------------------------------------------------
class SettlementQuery(RequestModel):
    date: str = Field(..., max_length=10, pattern=DAY_PATTERN,
                      description="The UTC day, YYYY-MM-DD.")


class BalancePair(BaseModel):
    posted: int = Field(description="credits_posted − debits_posted (what the merchant is owed)")
    pending: int = Field(description="credits_pending − debits_pending (holds in flight)")


class ReportLine(BaseModel):
    entry_id: str
    committed_at: str
    transfer_id: str
    batch_id: str | None = None
    category: Literal["payment", "reversal", "refund", "dispute", "payout", "hold", "other"]
    code: str | None = None
    kind: str | None = None
    payment_intent: str | None = None
    reference: str | None = None
    gross: int | None = Field(None, description="Payments and reversals: net + fee")
    fee: int | None = None
    net: int | None = None
    posted: int = Field(description="Effect on the posted balance (signed)")
    pending: int = Field(description="Effect on the pending balance (signed)")
    balance_after: BalancePair


class Totals(BaseModel):
    payments: int = 0
    gross: int = 0
    fees: int = 0
    net: int = 0
    reversals: int = 0
    reversed_net: int = 0
    refunds: int = 0
    disputes_posted: int = 0
    disputes_pending: int = 0
    payouts: int = 0
    pending_change: int = Field(0, description="Σ pending effects of the day's lines: holds "
                                "placed minus holds captured or released")
    other: int = 0


class AssetReport(BaseModel):
    asset: str
    account_id: str
    opening: BalancePair
    closing: BalancePair
    totals: Totals
    lines: list[ReportLine]


class SettlementReport(BaseModel):
    object: Literal["settlement_report"] = "settlement_report"
    merchant: str
    livemode: bool
    date: str
    period_start: str
    period_end: str = Field(description="Exclusive; 'now' for today's report (partial day)")
    complete: bool = Field(description="False for today's report: the day is not over")
    assets: list[AssetReport]


# --- analytics -----------------------------------------------------------------------------------
class AnalyticsQuery(RequestModel):
    from_: str = Field(..., alias="from", max_length=10, pattern=DAY_PATTERN)
    to: str = Field(..., max_length=10, pattern=DAY_PATTERN)


class AnalyticsRow(BaseModel):
    date: str
    asset: str
    method: str = Field(description="'all', or a payment method: counts intents that OFFERED it")
    created: int = Field(description="Intents created that day (offering the method)")
    succeeded: int = Field(description="Of those, paid (succeeded, overpaid, paid_late) through "
                                       "the method")
    volume: int = Field(description="Σ amount_received of the succeeded ones, minor units")
    conversion_rate: float | None = Field(description="succeeded / created (None: none created)")


class Analytics(BaseModel):
    object: Literal["payment_analytics"] = "payment_analytics"
    merchant: str
    livemode: bool
    from_: str = Field(alias="from")
    to: str
    data: list[AnalyticsRow]
    computed_at: dict[str, int] = Field(description="Per day: when its rollup was computed "
                                                    "(unix seconds)")
    model_config = {"populate_by_name": True}


# --- reconciliation --------------------------------------------------------------------------------
class Discrepancy(BaseModel):
    """One (network, deposit address, asset) whose on-chain balance the books do not explain."""
    id: str
    object: Literal["reconciliation_discrepancy"] = "reconciliation_discrepancy"
    run_id: str
    network: str
    block_number: int
    address: str
    asset: str
    tenant: str | None = None
    intent_id: str | None = None
    tree: str | None = None
    kind: str = Field(description="unobserved (chain ≠ what the watcher recorded), ledger_mismatch "
                                  "(ledger ≠ settled receipts), stuck (a recorded transfer the "
                                  "payments consumer has not applied for too long), "
                                  "custody_spent (a custodial address sent a transaction)")
    onchain: str = Field(description="Balance at block_number, base units")
    expected: str = Field(description="What the books explain, base units")
    difference: str = Field(description="onchain − expected, base units (signed)")
    breakdown: dict[str, str] = Field(default_factory=dict)


class NetworkRun(BaseModel):
    network: str
    status: str
    block_number: int | None = None
    addresses: int = 0
    balances_checked: int = 0
    discrepancies: int = 0
    rpc_http_calls: int = 0


class ReconciliationRun(BaseModel):
    object: Literal["reconciliation_run"] = "reconciliation_run"
    id: str
    networks: list[NetworkRun]


class ReconcileRequest(RequestModel):
    network: str | None = Field(None, min_length=2, max_length=32, pattern=r"^[a-z][a-z0-9_-]{1,31}$")


DISCREPANCY = declare(
    "reconciliation.discrepancy", ObjectPayload[Discrepancy], public=False,
    description="Operators: a deposit address's on-chain balance differs from what the ledger, "
                "the watcher and the payments records explain (ADR 0037).")
