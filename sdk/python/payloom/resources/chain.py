"""The chains Payloom watches (``/v1/chain/networks``): which ``network`` names and assets
``PaymentIntent.choose_crypto`` accepts, and how far behind the head the watcher is."""
from __future__ import annotations

from typing import List, Optional

from payloom.objects import register
from payloom.resources._base import Listable


@register
class ChainNetwork(Listable):
    OBJECT_NAME = "chain_network"
    PATH = "/v1/chain/networks"

    name: str
    chain_id: int
    livemode: bool
    native_asset: str
    assets: List[str]
    head: Optional[int]
    lag_blocks: Optional[int]
