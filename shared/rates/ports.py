"""The rates capability's port: a price feed.

``PriceFeed.fetch(ids, vs)`` returns the USD (and other vs-currency) prices of the feed's coin
ids in ONE call, exact decimals with the provider's time per coin, or raises ``FeedRateLimited``
/ ``FeedUnavailable``. The production adapter speaking CoinGecko's protocol is
``shared.adapters.price_coingecko.CoinGeckoPriceFeed`` (tests point it at the local simulator).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shared.adapters.price_coingecko import (  # noqa: F401  (port types)
    FeedError,
    FeedPrices,
    FeedRateLimited,
    FeedUnavailable,
)


class PriceFeed(Protocol):
    name: str

    def fetch(self, ids: Iterable[str], vs: Iterable[str]) -> FeedPrices: ...
