"""What sweeping books in the ledger: only its gas.

A sweep moves Payloom-held money between Payloom's own addresses (deposit → hot → cold), so no
ledger balance changes: the money was ``external`` (on chain, held by Payloom) before and is
after. The gas is real money leaving to the network: each finished record (succeeded or failed:
a mined transaction pays even when it reverts) books ONE transfer ``network_fees`` → ``external``
in the network's native asset for the fees of all its transactions (its top-ups paid by the hot
wallet and the transfer itself), with an id derived from the record id, so a replayed task books
nothing twice (the ledger answers ``exists``).

The ledger holds ether in gwei (ADR 0020) and fees are wei: the booked amount is rounded DOWN
to gwei and the remainder (< 1 gwei per record) is kept on the record as ``fee_unbooked_wei``,
exactly as payments keep sub-gwei dust: recorded, never invented.
"""
from __future__ import annotations

from typing import Any

from shared.ledger import assets
from shared.ledger.accounts import system_template
from shared.ledger.model import TransferSpec
from shared.platform.ids import derived_id

CODE = "network_fee"


def fee_transfer_id(sweep_id: str) -> str:
    return derived_id("txf", "custody", "network_fee", sweep_id)


def templates(asset: str, livemode: bool):
    key = "" if livemode else "test"
    return [system_template("network_fees", asset, key), system_template("external", asset, key)]


def fee_booking(doc: dict[str, Any], asset: str, fee_wei: int) -> tuple[TransferSpec | None, int]:
    """(the transfer to book or None when below one ledger unit, the wei left unbooked)."""
    units, rest = divmod(int(fee_wei), assets.get_asset(asset).dust_factor)
    if units <= 0:
        return None, rest
    fees, external = templates(asset, doc["livemode"])
    return TransferSpec(id=fee_transfer_id(doc["id"]), debit_account_id=fees.id,
                        credit_account_id=external.id, amount=units, asset=asset, code=CODE,
                        description=f"gas of {doc['kind']} {doc['id']}",
                        metadata={"custody_sweep": doc["id"], "network": doc["network"],
                                  "fee_wei": str(int(fee_wei))}), rest
