"""What sweeping books in the ledger: only its gas.

A sweep moves Payloom-held money between Payloom's own addresses (deposit → hot → cold), so no
ledger balance changes: the money was ``external`` (on chain, held by Payloom) before and is
after. The gas is real money leaving to the network: each finished record (succeeded or failed:
a mined transaction pays even when it reverts) books ONE transfer ``network_fees`` → ``external``
in the network's native asset for the fees of all its transactions (its top-ups paid by the hot
wallet and the transfer itself), with an id derived from the record id, so a replayed task books
nothing twice (the ledger answers ``exists``).

The booking rule is ``shared.chain.outgoing.gas_booking`` (refunds and withdrawals book their
gas the same way): the ledger holds ether in gwei (ADR 0020) and fees are wei, so the booked
amount is rounded DOWN and the remainder (< 1 gwei per record) is kept on the record as
``fee_unbooked_wei``, exactly as payments keep sub-gwei dust: recorded, never invented.
"""
from __future__ import annotations

from typing import Any

from shared.chain import outgoing
from shared.ledger.model import TransferSpec

CODE = outgoing.FEE_CODE
SCOPE = "custody"


def fee_transfer_id(sweep_id: str) -> str:
    return outgoing.fee_transfer_id(SCOPE, sweep_id)


def templates(asset: str, livemode: bool):
    return outgoing.fee_templates(asset, livemode)


def fee_booking(doc: dict[str, Any], asset: str, fee_wei: int) -> tuple[TransferSpec | None, int]:
    """(the transfer to book or None when below one ledger unit, the wei left unbooked)."""
    booking = outgoing.gas_booking(scope=SCOPE, record_id=doc["id"], asset=asset,
                                   livemode=doc["livemode"], fee_wei=fee_wei,
                                   description=f"gas of {doc['kind']} {doc['id']}",
                                   metadata={"custody_sweep": doc["id"], "network": doc["network"]})
    return booking.spec, booking.rest
