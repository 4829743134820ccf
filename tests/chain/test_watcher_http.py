"""The watcher's entry surfaces through functions-framework: the scheduled job (service only)
and ``GET /v1/chain/networks`` (any signed-in caller)."""
from __future__ import annotations

import pytest

from shared.chain.networks import ChainNetworks
from shared.chain.rpc import redact
from shared.chain.watcher import CURSORS, TRANSFERS, WatcherSettings, transfer_id
from tests.chain.test_watcher import TENANT, fresh, network, pay_eth, watch
from tests.support.identity import auth_headers, create_user_with_token


@pytest.fixture
def wired(deps, chain):
    from infra.local.stack import free_port

    dead = f"http://127.0.0.1:{free_port()}/key/abc123"
    net = network(chain, [dead, chain.rpc_url])
    deps.extras["chain.networks"] = ChainNetworks(networks=(net,))
    deps.extras["chain.watcher_settings"] = WatcherSettings(
        run_seconds=2.5, poll_interval_s=0.2, lease_seconds=5, lease_wait_s=0, rpc_timeout_s=1,
        rpc_cooldown_s=30, health_flush_s=0.5)
    return net


def test_job_is_for_the_scheduler_only_and_follows_the_chain(deps, chain, wired, function_client,
                                                            service_headers):
    client = function_client("chain_watcher")
    assert client.post("/", json={}).status_code == 401
    to = fresh()
    watch(deps, to, required=1)
    first = client.post("/", json={}, headers=service_headers)   # creates the cursor at the head
    assert first.status_code == 200, first.get_json()
    run = first.get_json()["networks"][0]
    assert run["network"] == "anvil" and run["acquired"] and run["stopped"] == "deadline"
    tx = pay_eth(chain, to, 77)
    second = client.post("/", json={}, headers=service_headers)
    assert second.status_code == 200
    assert second.get_json()["networks"][0]["transfers"] == 1
    doc = deps.db.collection(TRANSFERS).document(transfer_id("anvil", tx, -1)).get().to_dict()
    assert doc["status"] == "confirmed" and doc["tenant"] == TENANT


def test_network_status_shows_head_cursor_lag_and_endpoint_health(deps, chain, wired,
                                                                  function_client, service_headers):
    client = function_client("chain")
    assert client.get("/v1/chain/networks").status_code == 401
    _, token = create_user_with_token(deps)
    before = client.get("/v1/chain/networks", headers=auth_headers(token))
    assert before.status_code == 200, before.get_json()
    net = before.get_json()["data"][0]
    assert net["name"] == "anvil" and net["cursor"] is None and net["watcher_active"] is False
    assert [e["url"] for e in net["endpoints"]] == [redact(u) for u in wired.rpc_urls]

    assert function_client("chain_watcher").post("/", json={}, headers=service_headers).status_code == 200
    body = client.get("/v1/chain/networks", headers=auth_headers(token)).get_json()
    net = body["data"][0]
    assert body["object"] == "list" and net["object"] == "chain_network"
    assert net["chain_id"] == 31337 and net["livemode"] is False and "USDC" in net["assets"]
    assert net["cursor"] is not None and net["head"] >= net["cursor"] and net["lag_blocks"] == net["head"] - net["cursor"]
    assert net["watcher_active"] is False          # released at the end of the run
    dead, live = net["endpoints"]
    assert dead["healthy"] is False and dead["errors"] >= 1 and "abc123" not in dead["url"]
    assert live["healthy"] is True and live["latest_block"] >= net["cursor"]
    cursor = deps.db.collection(CURSORS).document("anvil").get().to_dict()
    assert cursor["block_number"] == net["cursor"]


def test_a_caller_may_ask_for_a_shorter_run_never_a_longer_one(deps, chain, wired, function_client,
                                                               service_headers):
    import time
    client = function_client("chain_watcher")
    started = time.monotonic()
    short = client.post("/", json={"run_seconds": 0.3}, headers=service_headers)
    assert short.status_code == 200, short.get_json()
    assert time.monotonic() - started < 2.4   # the configured run is 2.5 s
    for bad in ({"run_seconds": 0}, {"run_seconds": 301}, {"run_seconds": "long"}, {"x": 1}):
        r = client.post("/", json=bad, headers=service_headers)
        assert r.status_code == 400, bad
