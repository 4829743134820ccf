"""Internal events of the chain watcher (not delivered to merchants' webhooks).

The payments capability turns them into ``payment_intent.*`` events; the payload is the
``chain_transfers`` document as it is after the change. Amounts are on-chain base units as a
decimal string (wei or token units overflow Firestore's int64).
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import ResourceModel

TransferStatus = Literal["seen", "confirmed", "reorged"]


class ChainTransfer(ResourceModel):
    """One transfer to a watched deposit address (``chain_transfers/{network}:{tx}:{log}``)."""
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(description="{network}:{tx_hash}:{log_index}")
    object: Literal["chain_transfer"] = "chain_transfer"
    network: str
    chain_id: int
    tx_hash: str
    log_index: int = Field(description="-1 for a native transfer (found in the block's transactions)")
    block_number: int
    block_hash: str
    from_: str = Field(alias="from")
    to: str
    asset: str | None = Field(description="Asset of the token sent (None: a token the network "
                                          "configuration does not name)")
    token: str | None = Field(description="Token contract (lower-case), None for native ETH")
    amount: str = Field(description="On-chain base units, decimal string")
    status: TransferStatus
    confirmations: int
    required_confirmations: int
    first_seen_at: dt.datetime
    confirmed_at: dt.datetime | None = None
    reorged_at: dt.datetime | None = None
    intent_id: str | None = None
    deposit_asset: str | None = Field(None, description="The asset the deposit address expects")
    tenant: str
    livemode: bool


TRANSFER_SEEN = "chain.transfer_seen"
TRANSFER_CONFIRMED = "chain.transfer_confirmed"
TRANSFER_REORGED = "chain.transfer_reorged"

declare(TRANSFER_SEEN, ObjectPayload[ChainTransfer], public=False,
        description="A transfer to a deposit address was seen in a block.")
declare(TRANSFER_CONFIRMED, ObjectPayload[ChainTransfer], public=False,
        description="A transfer to a deposit address reached its required confirmations.")
declare(TRANSFER_REORGED, ObjectPayload[ChainTransfer], public=False,
        description="The block that carried a transfer is no longer canonical.")


def payload(doc: dict) -> dict:
    """The event ``data`` for a transfer document."""
    return {"object": ChainTransfer.model_validate(doc).model_dump(mode="json", by_alias=True)}
