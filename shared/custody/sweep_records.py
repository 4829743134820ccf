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

from shared.chain.outgoing import latest  # noqa: F401  (re-exported: the latest signing)
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
# A record's transactions (``tx``, each of ``top_ups``) are ``shared.chain.outgoing`` records:
# ``{nonce, sender, to, data, gas, attempts, bumps, mined}``, plus ``broadcast_at`` (None while a
# token sweep waits for its top-up).
def all_outgoing(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every transaction of a record: its top-ups, then the transfer."""
    return [*(doc.get("top_ups") or []), doc["tx"]]


def fee_total(doc: dict[str, Any]) -> int:
    """Wei the record's mined transactions cost (top-ups paid by the hot wallet, the transfer
    by its sender)."""
    return sum(int(o["mined"]["fee"]) for o in all_outgoing(doc) if o.get("mined"))
