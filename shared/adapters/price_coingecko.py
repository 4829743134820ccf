"""CoinGecko-protocol price feed client (the rates capability's feed in production).

``CoinGeckoPriceFeed.fetch(ids, vs)`` makes ONE call, ``GET {base}/simple/price?ids=…&
vs_currencies=…&include_last_updated_at=true&precision=full`` with the key in
``x-cg-demo-api-key`` (Demo plan, api.coingecko.com) or ``x-cg-pro-api-key`` (paid plans,
pro-api.coingecko.com), and returns every price as an exact ``Decimal`` parsed from the JSON
text (never through a float), with the provider's ``last_updated_at`` per coin.

What it refuses to pass on: prices that are not finite positive numbers, coins without a
``last_updated_at`` (staleness could not be judged), bodies that are not the expected JSON
object or are larger than ``MAX_BODY``. Failures are typed so the cache can react:
``FeedRateLimited`` (429, with the ``Retry-After`` seconds to stay away) and ``FeedUnavailable``
(timeouts, 5xx, key errors, garbage). The key is sent in a header only and never logged.
Locally and in tests it talks to ``infra/local/price_sim.py``, which speaks the same protocol,
so this adapter is the code under test. It reads no settings (``shared.rates.config.price_feed``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import requests

log = logging.getLogger(__name__)

BASE_URLS = {"demo": "https://api.coingecko.com/api/v3",
             "pro": "https://pro-api.coingecko.com/api/v3"}
MAX_BODY = 1_000_000
DEFAULT_RETRY_AFTER = 60.0   # CoinGecko's limits are per minute


@dataclasses.dataclass(frozen=True)
class FeedPrices:
    """One answer of the feed: ``prices[coin][vs]`` exact decimals, ``updated_at[coin]`` the
    provider's unix time of that coin's price. Coins the feed did not price are absent."""
    source: str
    prices: dict[str, dict[str, Decimal]]
    updated_at: dict[str, int]


class FeedError(Exception):
    """The feed gave no usable answer."""


class FeedUnavailable(FeedError):
    pass


class FeedRateLimited(FeedError):
    def __init__(self, retry_after: float):
        super().__init__(f"rate limited by the price feed; retry after {retry_after:g}s")
        self.retry_after = retry_after


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER   # an HTTP date: stay away for the default
    return min(max(seconds, 1.0), 3600.0)


class CoinGeckoPriceFeed:
    name = "coingecko"

    def __init__(self, api_key: str = "", *, key_kind: str = "demo", base_url: str | None = None,
                 timeout: float = 5.0, session: requests.Session | None = None):
        if key_kind not in BASE_URLS:
            raise ValueError("key_kind is 'demo' or 'pro'")
        self.api_key = api_key
        self.key_kind = key_kind
        self.base_url = (base_url or BASE_URLS[key_kind]).rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # never show the key
        return f"CoinGeckoPriceFeed(base_url={self.base_url!r}, key_kind={self.key_kind!r})"

    def fetch(self, ids: Iterable[str], vs: Iterable[str]) -> FeedPrices:
        ids, vs = sorted(set(ids)), sorted({v.lower() for v in vs})
        if not ids or not vs:
            raise ValueError("ask for at least one coin and one vs currency")
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers[f"x-cg-{self.key_kind}-api-key"] = self.api_key
        params = {"ids": ",".join(ids), "vs_currencies": ",".join(vs),
                  "include_last_updated_at": "true", "precision": "full"}
        try:
            resp = self.session.get(f"{self.base_url}/simple/price", params=params,
                                    headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise FeedUnavailable(f"price feed unreachable: {type(exc).__name__}") from None
        if resp.status_code == 429:
            raise FeedRateLimited(_retry_after(resp.headers.get("Retry-After")))
        if resp.status_code != 200:
            if resp.status_code in (401, 403):  # a configuration problem, not an outage
                log.error("price feed refused our credentials (HTTP %s)", resp.status_code)
            raise FeedUnavailable(f"price feed answered HTTP {resp.status_code}")
        if len(resp.content) > MAX_BODY:
            raise FeedUnavailable("price feed answer too large")
        try:
            body = json.loads(resp.content, parse_float=Decimal, parse_int=Decimal,
                              parse_constant=_reject_constant)
        except ValueError:
            raise FeedUnavailable("price feed answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise FeedUnavailable("price feed answer is not a JSON object")
        return self._parse(body, ids, vs)

    def _parse(self, body: dict[str, Any], ids: list[str], vs: list[str]) -> FeedPrices:
        prices: dict[str, dict[str, Decimal]] = {}
        updated: dict[str, int] = {}
        for coin in ids:
            entry = body.get(coin)
            if not isinstance(entry, dict):
                continue
            stamp = entry.get("last_updated_at")
            if not isinstance(stamp, Decimal) or stamp != stamp.to_integral() or stamp <= 0:
                continue   # without a time the price's age is unknown: not usable for money
            quoted = {cur: entry[cur] for cur in vs
                      if isinstance(entry.get(cur), Decimal) and entry[cur].is_finite()
                      and entry[cur] > 0}
            if quoted:
                prices[coin] = quoted
                updated[coin] = int(stamp)
        return FeedPrices(self.name, prices, updated)
