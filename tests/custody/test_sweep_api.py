"""The sweep routes: the Scheduler entry and the poll task take a service credential only and
answer bad input with a 4xx; custodians of the mode (and nobody else) read the sweeps and the
hot wallet against its caps; signed bytes are never shown."""
from __future__ import annotations

from eth_account import Account

from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.custody.conftest import configure, make_staff
from tests.custody.test_sweeps import custody, custody_network  # noqa: F401  (fixture)
from tests.refunds.test_crypto_refunds import eth_balance, fund_hot

SWEEPS, HOT = "/v1/custody/sweeps", "/v1/custody/hot_wallet"


def test_the_scheduler_entry_and_the_poll_task(custody, function_client, service_headers):  # noqa: F811
    sweeper = function_client("custody_sweeper")
    r = sweeper.post("/", json={}, headers=service_headers)
    assert r.status_code == 200, r.get_json()
    [net] = r.get_json()["networks"]
    assert net["network"] == "anvil" and net["status"] == "completed" and net["planned"] == 0
    assert sweeper.post("/", json={}).status_code == 401
    bad = sweeper.post("/", json={"network": "nowhere"}, headers=service_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "network_unknown"
    assert sweeper.post("/", json={"network": 5}, headers=service_headers).status_code == 400
    tasks = function_client("custody_tasks")
    r = tasks.post("/sweeps/poll", json={"batch_id": "swb_doesnotexist1"}, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["outcome"] == "missing"
    assert tasks.post("/sweeps/poll", json={"batch_id": "../x"},
                      headers=service_headers).status_code == 400
    assert tasks.post("/sweeps/poll", json={}, headers=service_headers).status_code == 400
    assert tasks.post("/sweeps/poll", json={"batch_id": "swb_doesnotexist1"}).status_code == 401


def test_custodians_read_sweeps_and_the_hot_wallet(custody, chain, function_client):  # noqa: F811
    c = custody
    cold = Account.create().address
    c.use(custody_network(chain, {"cold_address": cold, "hot_caps": {"ETH": "100"}}))
    fund_hot(chain, c.hot, eth=10**18)
    for gwei in (100_000_000, 200_000_000):
        c.pay_eth(gwei)
    c.final()
    [batch] = c.sweep("api").batches
    c.drive(batch)
    staff = make_staff(c.deps, 2)
    configure(c.deps, staff.ids[:1], threshold=1)              # staff 1 is not a custodian
    api = function_client("custody")
    h = staff.headers(0, mfa=False)                            # reading needs no second factor

    r = api.get(SWEEPS, headers=h)
    assert r.status_code == 200, r.get_json()
    page = r.get_json()
    assert [s["status"] for s in page["data"]] == ["succeeded", "succeeded"]
    assert {s["kind"] for s in page["data"]} == {"sweep"} and page["url"] == SWEEPS
    first = page["data"][0]
    assert first["object"] == "custody_sweep" and first["to"] == c.hot and first["livemode"] is False
    assert first["transaction"]["status"] == 1 and int(first["fee"]) > 0
    assert "raw" not in r.get_data(as_text=True)               # signed bytes never leave
    one = api.get(f"{SWEEPS}?limit=1", headers=h).get_json()
    nxt = api.get(f"{SWEEPS}?limit=1&starting_after={one['data'][0]['id']}", headers=h).get_json()
    assert one["has_more"] and [s["id"] for s in one["data"] + nxt["data"]] == \
        [s["id"] for s in page["data"]]
    assert api.get(f"{SWEEPS}?status=failed", headers=h).get_json()["data"] == []
    assert len(api.get(f"{SWEEPS}?status=succeeded&network=anvil", headers=h).get_json()["data"]) == 2
    assert api.get(f"{SWEEPS}?network=other-net", headers=h).get_json()["data"] == []
    for bad in ("status=lost", "limit=0", "kind=sweep", "network=A", "starting_after=swp_nothere1"):
        assert api.get(f"{SWEEPS}?{bad}", headers=h).status_code == 400, bad
    assert api.get(SWEEPS).status_code == 401
    denied = api.get(SWEEPS, headers=staff.headers(1))
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "custodian_required"
    assert api.get(SWEEPS, headers=staff.headers(0, live=True)).status_code == 403  # not live's
    assert api.get(SWEEPS, headers={**h, "Payloom-Mode": "prod"}).status_code == 400

    r = api.get(HOT, headers=h)
    assert r.status_code == 200, r.get_json()
    hot = r.get_json()
    [net] = hot["networks"]
    assert hot["livemode"] is False and net["address"] == c.hot and net["cold_address"] == cold
    eth = next(a for a in net["assets"] if a["asset"] == "ETH")
    assert eth["balance"] == str(eth_balance(chain, c.hot))
    assert (eth["cap"], eth["target"], eth["over_cap"]) == (str(100 * 10**18), str(80 * 10**18), False)
    usdc = next(a for a in net["assets"] if a["asset"] == "USDC")
    assert usdc["cap"] is None and usdc["over_cap"] is False
    assert api.get(HOT, headers=staff.headers(1)).status_code == 403
