"""Fixtures for rates tests: the CoinGecko-protocol simulator on real loopback HTTP, a clock the
test moves (shared by our code and the simulator's ``last_updated_at``), and the production
adapter pointed at the simulator."""
from __future__ import annotations

import datetime as dt

import pytest
import requests

from infra.local import price_sim
from shared.adapters.price_coingecko import CoinGeckoPriceFeed
from shared.platform.clock import FrozenClock
from shared.rates.config import FEED_KEY, SETTINGS_KEY, RatesSettings

API_KEY = "CG-test-demo-key"


class Sim:
    """The simulator and its controls, spoken over HTTP like a developer would."""

    def __init__(self, server, url: str):
        self.server, self.url = server, url
        self.api = url + "/api/v3"

    def set_prices(self, prices=None, fx=None, **extra):
        r = requests.put(self.url + "/_prices", json={"prices": prices or {}, "fx": fx or {}, **extra},
                         timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def configure(self, **config):
        r = requests.put(self.url + "/_config", json=config, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def calls(self, path: str = "/api/v3/simple/price") -> list[dict]:
        return requests.get(self.url + "/_inbox", params={"path": path}, timeout=5).json()

    def clear(self) -> None:
        requests.delete(self.url + "/_inbox", timeout=5)


@pytest.fixture
def clock():
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def sim(clock):
    server, url = price_sim.start(api_key=API_KEY, clock=lambda: clock.now().timestamp())
    yield Sim(server, url)
    server.stop()


def make_settings(**overrides) -> RatesSettings:
    values = {"coingecko_api_key": API_KEY, "rates_refresh_seconds": 60,
              "rates_max_age_seconds": 300, "rates_lock_seconds": 900, "rates_lease_seconds": 15,
              "rates_failure_backoff_seconds": 10}
    values.update(overrides)
    return RatesSettings(**values)


@pytest.fixture
def feed(sim):
    return CoinGeckoPriceFeed(API_KEY, base_url=sim.api, timeout=2.0)


@pytest.fixture
def rates(deps, sim, clock, feed):
    """``deps`` wired to the simulator with a frozen clock; returns a settings installer."""
    deps.clock = clock
    deps.extras[FEED_KEY] = feed

    def install(**overrides) -> RatesSettings:
        s = make_settings(**overrides)
        deps.extras[SETTINGS_KEY] = s
        return s
    install()
    return install
