"""Rates settings (pydantic-settings, ``PAYLOOM_`` prefix) and the price-feed port factory.

The CoinGecko key (``PAYLOOM_COINGECKO_API_KEY``) comes from Secret Manager in production and
from the local stack's value in development. Timing defaults (ADR 0034):

* ``rates_refresh_seconds`` (60): a snapshot younger than this is used without asking anyone;
  CoinGecko itself updates simple/price every 60 s (30 s on paid plans).
* ``rates_max_age_seconds`` (300): the staleness limit. A price whose provider time is older
  is refused (503 ``rates_unavailable``): money never moves at a stale rate.
* ``rates_lock_seconds`` (900): how long a conversion's rate is offered (``expires_at``); the
  default payment intent lives 15 minutes.
"""
from __future__ import annotations

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.deps import Deps

FEED_KEY = "rates.price_feed"
SETTINGS_KEY = "rates.settings"

# Our assets -> the feed's coin ids. MUSD's id is made up (no listing yet) and PPT exists only
# on the simulator: production sets PAYLOOM_RATES_COIN_IDS to the ids the feed really has.
DEFAULT_COIN_IDS = {"ETH": "ethereum", "USDC": "usd-coin", "MUSD": "mezo-usd", "PPT": "peerpower"}


class RatesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_", extra="ignore")

    coingecko_api_key: str = Field(default="", repr=False)
    coingecko_key_kind: str = "demo"
    coingecko_api_base: str = ""            # "" = CoinGecko's own URL for the key kind
    coingecko_timeout_seconds: float = 5.0
    rates_coin_ids: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_COIN_IDS))
    # The coin whose KHR/USD price ratio gives the KHR per USD rate (the feed's own forex rate).
    rates_fx_reference: str = "ETH"
    rates_refresh_seconds: int = Field(60, ge=1)
    rates_max_age_seconds: int = Field(300, ge=1)
    rates_lock_seconds: int = Field(900, ge=1)
    rates_lease_seconds: int = Field(15, ge=1)    # one instance refreshes; others keep serving
    rates_failure_backoff_seconds: int = Field(10, ge=1)


@functools.lru_cache(maxsize=1)
def _env_settings() -> RatesSettings:
    return RatesSettings()


def rates_settings(deps: Deps) -> RatesSettings:
    """The settings (tests put their own in ``deps.extras[SETTINGS_KEY]``)."""
    return deps.get(SETTINGS_KEY, _env_settings)


def price_feed(deps: Deps):
    """The configured PriceFeed (tests put their own in ``deps.extras[FEED_KEY]``)."""
    def build():
        from shared.adapters.price_coingecko import CoinGeckoPriceFeed
        s = rates_settings(deps)
        return CoinGeckoPriceFeed(s.coingecko_api_key, key_kind=s.coingecko_key_kind,
                                  base_url=s.coingecko_api_base or None,
                                  timeout=s.coingecko_timeout_seconds)
    return deps.get(FEED_KEY, build)
