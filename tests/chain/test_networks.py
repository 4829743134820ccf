"""Networks are configuration: parsed and validated from PAYLOOM_CHAIN_NETWORKS."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from infra.local.chain_setup import local_networks_env
from shared.chain.networks import (
    ANVIL_TOKEN_ADDRESSES,
    chain_networks,
    get_network,
    load_networks,
    network_for_chain,
)
from shared.platform.errors import InvalidRequest

MEZO_TESTNET = {
    "name": "mezo-testnet", "chain_id": 31611, "livemode": False,
    "rpc_urls": ["https://rpc.test.mezo.org", "https://mezo-testnet.example-rpc.net"],
    "native_asset": "ETH", "tokens": {"MUSD": "0x118917a40FAF1CD7a13dB0Ef56C86De7973Ac503".lower()},
    "block_time_seconds": 3, "reorg_depth": 20, "explorer_url": "https://explorer.test.mezo.org",
}


def _deps(production: bool = False):
    """Just what ``chain_networks`` reads of a ``Deps``: settings and ``get``."""
    d = SimpleNamespace(settings=SimpleNamespace(is_production=production), extras={}, _cache={})
    d.get = lambda key, factory: d._cache.setdefault(key, factory())
    return d


def test_the_local_env_round_trips_with_failover_urls():
    env = local_networks_env(["http://127.0.0.1:8545", "http://127.0.0.1:8546"], ANVIL_TOKEN_ADDRESSES)
    nets = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": env})
    anvil = nets.get("anvil")
    assert anvil.chain_id == 31337 and anvil.livemode is False
    assert anvil.rpc_urls == ("http://127.0.0.1:8545", "http://127.0.0.1:8546")
    assert anvil.assets == ("ETH", "MUSD", "PPT", "USDC")
    assert anvil.token_address("ETH") is None
    assert anvil.token_address("USDC") == ANVIL_TOKEN_ADDRESSES["USDC"]
    assert anvil.asset_for_token(ANVIL_TOKEN_ADDRESSES["PPT"].lower()) == "PPT"
    assert anvil.asset_for_token("0x" + "11" * 20) is None
    assert nets.for_chain(31337) is anvil


def test_several_networks_by_name_chain_id_and_mode():
    env = json.dumps([json.loads(local_networks_env("http://127.0.0.1:8545", ANVIL_TOKEN_ADDRESSES))[0],
                      MEZO_TESTNET,
                      {**MEZO_TESTNET, "name": "mezo", "chain_id": 31612, "livemode": True,
                       "rpc_urls": ["https://rpc-http.mezo.boar.network"]}])
    nets = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": env})
    mezo = nets.get("mezo-testnet")
    assert mezo.tokens["MUSD"] == "0x118917a40FAF1CD7a13dB0Ef56C86De7973Ac503"   # checksummed
    assert mezo.explorer_tx_url("0xab") == "https://explorer.test.mezo.org/tx/0xab"
    assert [n.name for n in nets.for_mode(True)] == ["mezo"]
    assert [n.name for n in nets.for_mode(False)] == ["anvil", "mezo-testnet"]
    with pytest.raises(InvalidRequest) as exc:
        nets.get("ethereum")
    assert exc.value.code == "network_unknown" and exc.value.status == 400
    with pytest.raises(InvalidRequest):
        nets.for_chain(1)


@pytest.mark.parametrize("change", [
    {"rpc_urls": []}, {"rpc_urls": ["ftp://x"]}, {"chain_id": 0}, {"name": "Bad Name"},
    {"tokens": {"DOGE": "0x" + "11" * 20}}, {"tokens": {"USD": "0x" + "11" * 20}},
    {"tokens": {"USDC": "0x1234"}}, {"tokens": {"ETH": "0x" + "11" * 20}},
    {"tokens": {"USDC": "0x" + "11" * 20, "PPT": "0x" + "11" * 20}},
    {"native_asset": "KHR"}, {"reorg_depth": 0}, {"unknown_field": 1},
])
def test_bad_configuration_fails_at_load(change):
    with pytest.raises(ValidationError):
        load_networks(env={"PAYLOOM_CHAIN_NETWORKS": json.dumps([{**MEZO_TESTNET, **change}])})


def test_duplicate_names_or_chain_ids_fail():
    a = {**MEZO_TESTNET, "name": "a", "chain_id": 5}
    for b in ({**a, "chain_id": 6}, {**a, "name": "b"}):   # same name; same chain id
        with pytest.raises(ValidationError):
            load_networks(env={"PAYLOOM_CHAIN_NETWORKS": json.dumps([a, b])})


def test_unset_means_local_anvil_outside_production_and_is_required_in_it(monkeypatch):
    nets = load_networks(env={})
    assert [n.name for n in nets.networks] == ["anvil"]
    assert nets.get("anvil").tokens == ANVIL_TOKEN_ADDRESSES
    with pytest.raises(RuntimeError):
        load_networks(env={}, production=True)
    monkeypatch.setenv("PAYLOOM_CHAIN_NETWORKS", json.dumps([MEZO_TESTNET]))
    deps = _deps()
    assert get_network(deps, "mezo-testnet").chain_id == 31611
    assert network_for_chain(deps, 31611).name == "mezo-testnet"
    assert chain_networks(deps) is chain_networks(deps)   # parsed once per deps
