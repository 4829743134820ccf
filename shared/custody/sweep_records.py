"""The documents sweeping keeps, their ids and states (ADR 0038).

- ``chain_sweeps/{id}``: one per (network, from address, asset, batch) — a sweep from a deposit
  address to the hot wallet (``kind = "sweep"``) or a transfer of the hot wallet's excess to the
  cold address (``kind = "cold_transfer"``). It holds the SIGNED bytes of every transaction it
  needs (the gas top-ups from the hot wallet, then the transfer itself), committed before any is
  broadcast, and what the chain did with them (``mined``: block, status, gas, fee, value), so a
  crash loses nothing and reconciliation can explain every outflow.
- ``chain_sweep_batches/{id}``: what one planning unit signed; one poll task per batch follows
  all of its records with one batched JSON-RPC request.
- ``chain_sweep_queue/{network}:{address}``: a custodial deposit address that received final
  money and may need sweeping (``due_at``); ``in_flight`` names the batch sweeping it, so one
  address never has two sweeps (and two nonces) at once. Deleted when nothing is left to sweep.
- ``chain_sweep_cursors/{network}``: the last final block whose transfers were queued, and the
  cold transfer in flight per asset (one at a time: the hot balance does not show an unmined
  transfer, so a second one would send the excess twice).

Amounts and fees are on-chain base units (wei, token units) as decimal strings: they overflow
Firestore's 64-bit integers.
"""
from __future__ import annotations

from typing import Any

from shared.platform.ids import derived_id

SWEEPS = "chain_sweeps"
BATCHES = "chain_sweep_batches"
QUEUE = "chain_sweep_queue"
CURSORS = "chain_sweep_cursors"

SWEEP, COLD = "sweep", "cold_transfer"
FUNDING, SENDING, CONFIRMING, SUCCEEDED, FAILED = (
    "funding", "sending", "confirming", "succeeded", "failed")
ACTIVE = (FUNDING, SENDING, CONFIRMING)
TERMINAL = (SUCCEEDED, FAILED)

TASK_QUEUE, TASK_FUNCTION, POLL_PATH = "custody", "custody_tasks", "/sweeps/poll"


def sweep_id(network: str, address: str, asset: str, batch: str) -> str:
    return derived_id("swp", network, address.lower(), asset, batch)


def batch_id(network: str, run_key: str, seq: int) -> str:
    return derived_id("swb", network, run_key, str(seq))


def queue_id(network: str, address: str) -> str:
    return f"{network}:{address.lower()}"


def sweep_ref(db, sid: str):
    return db.collection(SWEEPS).document(sid)


def batch_ref(db, bid: str):
    return db.collection(BATCHES).document(bid)


def queue_ref(db, network: str, address: str):
    return db.collection(QUEUE).document(queue_id(network, address))


def cursor_ref(db, network: str):
    return db.collection(CURSORS).document(network)


# --- signed transactions ------------------------------------------------------------------------
def signed(tx: dict[str, Any], raw: str, tx_hash: str, now) -> dict[str, Any]:
    """One signing of a transaction (the first, or a replacement with higher fees)."""
    return {"hash": tx_hash, "raw": raw, "value": str(int(tx["value"])),
            "max_fee_per_gas": str(tx["maxFeePerGas"]),
            "max_priority_fee_per_gas": str(tx["maxPriorityFeePerGas"]), "signed_at": now}


def outgoing(tx: dict[str, Any], raw: str, tx_hash: str, sender: str, now) -> dict[str, Any]:
    """A transaction the record will send: its fixed fields and its signings (``attempts``)."""
    return {"nonce": int(tx["nonce"]), "sender": sender, "to": tx["to"], "data": tx["data"],
            "gas": int(tx["gas"]), "attempts": [signed(tx, raw, tx_hash, now)], "bumps": 0,
            "mined": None}


def latest(out: dict[str, Any]) -> dict[str, Any]:
    return out["attempts"][-1]


def unsigned(out: dict[str, Any], chain_id: int, attempt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The transaction fields of ``out`` at ``attempt`` (default: the latest), to re-sign."""
    a = attempt or latest(out)
    return {"chainId": chain_id, "nonce": out["nonce"], "to": out["to"], "data": out["data"],
            "gas": out["gas"], "value": int(a["value"]), "maxFeePerGas": int(a["max_fee_per_gas"]),
            "maxPriorityFeePerGas": int(a["max_priority_fee_per_gas"])}


def hashes(out: dict[str, Any]) -> list[str]:
    return [a["hash"] for a in out["attempts"]]


def attempt_of(out: dict[str, Any], tx_hash: str) -> dict[str, Any] | None:
    return next((a for a in out["attempts"] if a["hash"] == tx_hash), None)


def all_outgoing(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every transaction of a record: its top-ups, then the transfer."""
    return [*(doc.get("top_ups") or []), doc["tx"]]


def fee_total(doc: dict[str, Any]) -> int:
    """Wei the record's mined transactions cost (top-ups paid by the hot wallet, the transfer
    by its sender)."""
    return sum(int(o["mined"]["fee"]) for o in all_outgoing(doc) if o.get("mined"))
