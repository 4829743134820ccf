"""API models of sweeps, cold transfers and the hot wallet, and the events they emit.

Events are INTERNAL (``public=False``, tenant ``platform``): they are about Payloom's own
custody, never a merchant's business. A sweep's signed bytes are never shown.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.custody import sweep_records as R
from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel
from shared.platform.pagination import ListQuery

Status = Literal["funding", "sending", "confirming", "succeeded", "failed"]
Kind = Literal["sweep", "cold_transfer"]
NAME = r"^[a-z][a-z0-9_-]{1,31}$"


class SweepTransaction(BaseModel):
    hash: str = Field(description="The latest signing (a replacement has a new hash).")
    nonce: int
    sender: str
    value: str = Field(description="Wei sent with it (ether sweeps).")
    block_number: int | None = None
    mined_hash: str | None = Field(None, description="The signing that was mined.")
    status: int | None = Field(None, description="1 succeeded, 0 reverted (once mined).")
    gas_used: int | None = None
    fee: str | None = Field(None, description="Wei paid for it (once mined).")
    bumps: int = Field(0, description="Fee replacements (same nonce, +12.5% each).")
    explorer_url: str | None = None


class SweepTopUp(BaseModel):
    amount: str = Field(description="Wei sent by the hot wallet to pay the sweep's gas.")
    hash: str
    nonce: int
    block_number: int | None = None
    fee: str | None = None


class Sweep(ResourceModel):
    """A sweep from a custodial deposit address to the hot wallet, or a transfer of the hot
    wallet's excess to the cold address."""
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    object: Literal["custody_sweep"] = "custody_sweep"
    kind: Kind
    network: str
    chain_id: int
    livemode: bool
    batch: str
    asset: str
    token: str | None = None
    from_: str = Field(alias="from")
    to: str
    amount: str = Field(description="Base units moved (for ether: the value of the mined "
                                    "signing once mined).")
    status: Status
    transaction: SweepTransaction
    top_ups: list[SweepTopUp] = Field(default_factory=list)
    fee: str | None = Field(None, description="Wei all its transactions cost, once final.")
    ledger_transfer: str | None = Field(None, description="The network_fees booking of that fee.")
    failure_reason: str | None = None
    created: int
    updated: int


class SweepListQuery(ListQuery):
    network: str | None = Field(None, min_length=2, max_length=32, pattern=NAME)
    status: Status | None = None


class SweepRunRequest(RequestModel):
    network: str | None = Field(None, min_length=2, max_length=32, pattern=NAME)


class NetworkSweepRun(BaseModel):
    network: str
    status: str
    final_block: int | None = None
    discovered: int = 0
    planned: int = 0
    cold_transfers: int = 0
    deferred: dict[str, int] = Field(default_factory=dict)
    batches: list[str] = Field(default_factory=list)
    rpc_http_calls: int = 0


class SweepRun(BaseModel):
    object: Literal["custody_sweep_run"] = "custody_sweep_run"
    networks: list[NetworkSweepRun]


class PollTask(RequestModel):
    batch_id: str = Field(..., min_length=5, max_length=64, pattern=r"^swb_[A-Za-z0-9]+$")


class PollOutcome(BaseModel):
    batch_id: str
    outcome: str


class HotAsset(BaseModel):
    asset: str
    balance: str = Field(description="Base units held by the hot wallet (latest block).")
    cap: str | None = Field(None, description="Base units above which the excess goes cold.")
    target: str | None = None
    over_cap: bool = False
    cold_in_flight: str | None = Field(None, description="The cold transfer in progress.")


class HotNetwork(BaseModel):
    network: str
    chain_id: int
    address: str
    cold_address: str | None = None
    status: Literal["ok", "rpc_unavailable"] = "ok"
    assets: list[HotAsset] = Field(default_factory=list)


class HotWallet(BaseModel):
    object: Literal["custody_hot_wallet"] = "custody_hot_wallet"
    livemode: bool
    networks: list[HotNetwork]


class SweepAlert(BaseModel):
    """An address whose sweeps keep failing (its money stays where it is)."""
    object: Literal["custody_sweep_alert"] = "custody_sweep_alert"
    network: str
    address: str
    failures: int
    last_sweep: str
    failure_reason: str | None = None


# --- resource -----------------------------------------------------------------------------------
def _ts(value: Any) -> int:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else int(value or 0)


def _explorer(network: Any, tx_hash: str) -> str | None:
    return network.explorer_tx_url(tx_hash) if network is not None else None


def resource(doc: dict[str, Any], network: Any = None) -> Sweep:
    out = doc["tx"]
    last = R.latest(out)
    mined = out.get("mined") or {}
    tx = SweepTransaction(hash=last["hash"], nonce=out["nonce"], sender=out["sender"],
                          value=last["value"], block_number=mined.get("block_number"),
                          mined_hash=mined.get("hash"), status=mined.get("status"),
                          gas_used=mined.get("gas_used"), fee=mined.get("fee"),
                          bumps=int(out.get("bumps") or 0),
                          explorer_url=_explorer(network, mined.get("hash") or last["hash"]))
    ups = [SweepTopUp(amount=R.latest(t)["value"], hash=R.latest(t)["hash"], nonce=t["nonce"],
                      block_number=(t.get("mined") or {}).get("block_number"),
                      fee=(t.get("mined") or {}).get("fee")) for t in doc.get("top_ups") or []]
    return Sweep.model_validate({
        "id": doc["id"], "kind": doc["kind"], "network": doc["network"],
        "chain_id": doc["chain_id"], "livemode": doc["livemode"], "batch": doc["batch_id"],
        "asset": doc["asset"], "token": doc.get("token"), "from": doc["from"], "to": doc["to"],
        "amount": doc["amount"], "status": doc["status"], "transaction": tx, "top_ups": ups,
        "fee": doc.get("fee"), "ledger_transfer": doc.get("ledger_transfer"),
        "failure_reason": doc.get("failure_reason"), "created": _ts(doc["created_at"]),
        "updated": _ts(doc["updated_at"])})


def payload(doc: dict[str, Any]) -> dict[str, Any]:
    return {"object": resource(doc).model_dump(mode="json", by_alias=True)}


SWEEP_SUCCEEDED = declare(
    "custody.sweep.succeeded", ObjectPayload[Sweep], public=False,
    description="Operators: funds of a custodial deposit address reached the hot wallet "
                "(final on chain; its gas is booked to network_fees).")
SWEEP_FAILED = declare(
    "custody.sweep.failed", ObjectPayload[Sweep], public=False,
    description="Operators: a sweep's transaction reverted or lost its nonce; the funds stay on "
                "the deposit address and the address is retried later.")
SWEEP_ALERT = declare(
    "custody.sweep.repeatedly_failed", ObjectPayload[SweepAlert], public=False,
    description="Operators: the sweeps of one deposit address failed several times in a row; "
                "its funds are untouched and it keeps being retried with back-off.")
COLD_SUCCEEDED = declare(
    "custody.cold_transfer.succeeded", ObjectPayload[Sweep], public=False,
    description="Operators: the hot wallet's excess over its cap reached the cold address.")
COLD_FAILED = declare(
    "custody.cold_transfer.failed", ObjectPayload[Sweep], public=False,
    description="Operators: a transfer to the cold address reverted or lost its nonce; the "
                "funds stay in the hot wallet and the next run decides again.")
