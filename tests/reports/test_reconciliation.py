"""Reconciliation on a real anvil: crypto payments made through the real flow (HTTP choice,
web3 payment, the watcher, the payments consumer, the ledger) reconcile exactly (dust,
underpayment, a wrong-token payment all explained); money that reaches deposit addresses
outside Payloom's knowledge, and a ledger posting no receipt explains, are found; the run is
stored once and its events are emitted once. Also: the settlement report after crypto payments.
"""
from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import firestore

from shared.chain import payment_uri
from shared.ledger import service as ledger_service
from shared.ledger.accounts import system_template
from shared.ledger.model import TransferSpec
from shared.payments import settlement
from shared.platform.ids import new_id
from shared.platform.outbox import COLLECTION as EVENTS
from shared.reports import reconcile
from shared.reports.models import DISCREPANCY
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped fixtures)
from tests.payments.test_crypto_flow import Shop
from tests.reports.conftest import REPORTS

ETH_DUE = 1_500_000_000                     # 1.5 ETH at the ledger's gwei scale


@pytest.fixture
def shop(deps, chain, function_client):  # noqa: F811
    return Shop(deps, chain, function_client("payments"))


def fund_usdc(shop, sender: int, amount: int):
    shop.pay(payment_uri.erc20_uri(shop.chain.tokens["USDC"], shop.chain.accounts[sender].address,
                                   shop.chain.chain_id, amount), sender=0)


def events(deps):
    return [s.to_dict() for s in deps.db.collection(EVENTS).where(
        filter=firestore.FieldFilter("type", "==", DISCREPANCY.name)).stream()]


def paid_shop(shop):
    """Three intents: ETH paid with 123 wei of dust, USDC underpaid, and a wrong-token payment
    (USDC sent to the ETH intent's address: unmatched, kept for a refund)."""
    eth, s1 = shop.intent(ETH_DUE)
    c1 = shop.choose(eth, s1)["crypto"]
    shop.pay(c1["uri"], amount=int(c1["amount_due"]) + 123, sender=1)
    usdc, s2 = shop.intent(25_000_000, currency="USDC")
    c2 = shop.choose(usdc, s2, asset="USDC")["crypto"]
    fund_usdc(shop, 2, 100_000_000)
    shop.pay(c2["uri"], amount=10_000_000, sender=2)
    shop.pay(payment_uri.erc20_uri(shop.chain.tokens["USDC"], c1["address"], shop.chain.chain_id,
                                   3_000_000), sender=2)
    shop.mine(2)
    shop.sync()
    assert shop.doc(eth)["status"] == "succeeded" and shop.doc(usdc)["status"] == "underpaid"
    return (eth, c1), (usdc, c2)


def test_payments_reconcile_exactly_then_injected_money_is_found(deps, shop):
    (_eth, c1), (usdc, c2) = paid_shop(shop)
    clean = reconcile.run_network(deps, shop.net, run_key="clean")
    assert clean.status == "completed" and clean.discrepancies == 0, \
        deps.db.collection(reconcile.RUNS).document(reconcile.run_id("anvil", "clean")).get().to_dict()
    assert clean.addresses == 2 and clean.balances_checked == 2 * len(shop.net.assets)
    assert clean.rpc_http_calls == 1                     # one batched request for the page
    assert events(deps) == []
    # what explained each balance, recomputed from the same reads
    docs = next(reconcile.watch_pages(deps.db, "anvil"))
    block = deps.db.collection("chain_cursors").document("anvil").get().to_dict()["block_number"]
    from shared.chain.rpc import RpcClient
    bal = reconcile.read_balances(RpcClient("anvil", shop.net.rpc_urls), shop.net, docs, block, None)
    rows = {(d["address"], a): x for d, a, x in reconcile.compare_page(
        shop.net, docs, bal, reconcile.page_records(deps.db, docs), block,
        dt.datetime.now(dt.UTC))}
    eth_row = rows[(c1["address"], "ETH")]
    assert (eth_row.dust, eth_row.ledger, eth_row.onchain) == (123, ETH_DUE * 10**9, ETH_DUE * 10**9 + 123)
    assert rows[(c1["address"], "USDC")].unmatched == 3_000_000
    assert rows[(c2["address"], "USDC")].unsettled == 10_000_000

    # 1) a token payment after the address left the watch list (late window over): the watcher
    #    drops it at its next full refresh (forced here) and never sees the transfer
    deps.db.collection("deposit_addresses").document(f"anvil:{c2['address'].lower()}").update(
        {"watch_until": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})
    shop.watcher.watch._full_at = None
    shop.pay(payment_uri.erc20_uri(shop.chain.tokens["USDC"], c2["address"], shop.chain.chain_id,
                                   7_000_000), sender=2)
    # 2) ether that arrives without a transaction the watcher can read (an internal transfer
    #    from a contract looks the same to a block scanner): anvil_setBalance
    before = shop.chain.w3.eth.get_balance(c2["address"])
    shop.chain.w3.provider.make_request("anvil_setBalance", [c2["address"], hex(before + 250 * 10**15)])
    shop.mine(1)
    shop.sync()
    run = reconcile.run_network(deps, shop.net, run_key="after")
    assert run.status == "completed" and run.discrepancies == 2
    stored = deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "after")).get().to_dict()
    found = {(i["address"], i["asset"]): i for i in stored["items"]}
    assert set(found) == {(c2["address"], "USDC"), (c2["address"], "ETH")}
    u = found[(c2["address"], "USDC")]
    assert (u["kind"], u["difference"], u["onchain"], u["expected"]) == \
        ("unobserved", "7000000", "17000000", "10000000")
    assert u["tenant"] == shop.id and u["intent_id"] == usdc and u["tree"] == "xpub"
    e = found[(c2["address"], "ETH")]
    assert (e["kind"], e["difference"]) == ("unobserved", str(250 * 10**15))
    sent = events(deps)
    assert sorted(ev["data"]["object"]["asset"] for ev in sent) == ["ETH", "USDC"]
    assert all(ev["tenant"] == shop.id and ev["livemode"] is False for ev in sent)
    # the same run again (a duplicate Scheduler delivery): the stored answer, no new event
    again = reconcile.run_network(deps, shop.net, run_key="after")
    assert again.discrepancies == 2 and len(events(deps)) == 2


def test_a_ledger_posting_no_receipt_explains_is_a_ledger_mismatch(deps, shop):
    (eth, c1), _ = paid_shop(shop)
    src = system_template("external", "ETH", "test")
    dest = settlement.settlement_template(shop.id, "ETH", False)
    ledger_service.transfer_now(deps, TransferSpec(
        id=new_id("txf"), debit_account_id=src.id, credit_account_id=dest.id, amount=5,
        asset="ETH", code="manual", metadata={"payment_intent": eth}), templates=[src, dest])
    run = reconcile.run_network(deps, shop.net, run_key="manual")
    assert run.discrepancies == 1
    [item] = deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "manual")).get().to_dict()["items"]
    assert (item["address"], item["asset"], item["kind"]) == (c1["address"], "ETH", "ledger_mismatch")
    assert item["breakdown"]["ledger_gap"] == str(5 * 10**9)
    assert item["breakdown"]["unobserved"] == "0"            # the chain itself agrees


def test_a_reorg_and_its_replay_reconcile(deps, shop):
    pi, secret = shop.intent(1_000_000_000)
    c = shop.choose(pi, secret)["crypto"]
    receipt = shop.pay(c["uri"], sender=5)
    raw = shop.last_raw
    shop.mine(2)
    shop.sync()
    assert reconcile.run_network(deps, shop.net, run_key="paid").discrepancies == 0
    shop.chain.w3.provider.make_request("anvil_reorg", [3, []])
    shop.mine(1)
    shop.sync()
    assert reconcile.run_network(deps, shop.net, run_key="reorged").discrepancies == 0
    again = shop.chain.w3.eth.wait_for_transaction_receipt(
        shop.chain.w3.eth.send_raw_transaction(raw))
    assert again.transactionHash == receipt.transactionHash
    shop.mine(1)
    shop.sync()
    assert reconcile.run_network(deps, shop.net, run_key="replayed").discrepancies == 0


def test_no_cursor_and_rpc_down_are_statuses_not_alarms(deps, shop):
    from shared.chain.networks import Network
    down = Network(name="ghost", chain_id=999, rpc_urls=("http://127.0.0.1:9",))
    assert reconcile.run_network(deps, down, run_key="x").status == "no_cursor"
    paid_shop(shop)
    dead = shop.net.model_copy(update={"rpc_urls": ("http://127.0.0.1:9",)})
    run = reconcile.run_network(deps, dead, run_key="down")
    assert run.status == "rpc_unavailable" and run.discrepancies == 0 and events(deps) == []


def test_settlement_report_after_crypto_payments(deps, shop, api_key, reports):
    (eth, _), _ = paid_shop(shop)
    key = api_key(shop.id, scopes=("payments:read",))
    day = dt.datetime.now(dt.UTC).date().isoformat()
    rep = reports.get(f"{REPORTS}/settlements?date={day}",
                      headers={"Authorization": f"Bearer {key}"}).get_json()
    [sec] = [a for a in rep["assets"] if a["asset"] == "ETH"]
    [line] = sec["lines"]
    assert (line["payment_intent"], line["gross"], line["fee"], line["net"]) == \
        (eth, ETH_DUE, ETH_DUE // 100, ETH_DUE - ETH_DUE // 100)
    assert sec["opening"]["posted"] + line["posted"] == sec["closing"]["posted"] == shop.settled("ETH")
    assert [a["asset"] for a in rep["assets"]] == ["ETH"]        # the underpaid USDC: nothing yet


def test_the_job_route(deps, shop, function_client, service_headers):
    from shared.platform import manifest
    try:
        manifest.function("reconciliation")
    except KeyError:
        pytest.skip("the coordinator adds the reconciliation function")
    paid_shop(shop)
    client = function_client("reconciliation")
    r = client.post("/", json={}, headers=service_headers)
    assert r.status_code == 200, r.get_json()
    [net] = r.get_json()["networks"]
    assert net["network"] == "anvil" and net["status"] == "completed" and net["discrepancies"] == 0
    assert client.post("/", json={}).status_code == 401
    bad = client.post("/", json={"network": "nowhere"}, headers=service_headers)
    assert bad.status_code == 400


def spend_from(shop, key: bytes, source: str, wei: int):
    """Send ether OUT of a deposit address with its own key (outside Payloom)."""
    w3 = shop.chain.w3
    tx = {"from": source, "to": shop.chain.accounts[9].address, "value": wei, "gas": 21_000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1, "chainId": shop.chain.chain_id,
          "nonce": w3.eth.get_transaction_count(source, "pending")}
    signed = w3.eth.account.sign_transaction(tx, "0x" + key.hex())
    assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(
        signed.raw_transaction)).status == 1


def test_custody_keys_used_outside_payloom_are_found(deps, chain, function_client):  # noqa: F811
    from shared.chain import hd
    shop = Shop(deps, chain, function_client("payments"), xpub=False)
    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    pi, secret = shop.intent(10_000_000)                           # 0.01 ETH
    c = shop.choose(pi, secret)["crypto"]
    assert c["derivation"]["tree"] == "custodial"
    shop.pay(c["uri"], sender=6)
    shop.mine(1)
    shop.sync()
    assert shop.doc(pi)["status"] == "succeeded"
    assert reconcile.run_network(deps, shop.net, run_key="custody-clean").discrepancies == 0
    spend_from(shop, hd.custodial_private_key(seed.seed(), c["derivation"]["index"]),
               c["address"], 10**15)
    shop.mine(1)
    shop.sync()
    run = reconcile.run_network(deps, shop.net, run_key="custody-spent")
    [item] = deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "custody-spent")).get().to_dict()["items"]
    assert run.discrepancies == 1
    assert (item["asset"], item["kind"], item["tree"]) == ("ETH", "custody_spent", "custodial")
    assert int(item["difference"]) < -10**15                    # the amount sent plus its gas


def test_a_merchant_spending_from_its_own_xpub_address_is_not_an_alarm(deps, shop):
    (eth, c1), _ = paid_shop(shop)
    index = shop.doc(eth)["crypto"]["derivation"]["index"]
    spend_from(shop, shop.tree.private_key(index), c1["address"], 10**17)
    shop.mine(1)
    shop.sync()
    run = reconcile.run_network(deps, shop.net, run_key="owner")
    stored = deps.db.collection(reconcile.RUNS).document(
        reconcile.run_id("anvil", "owner")).get().to_dict()
    assert run.discrepancies == 0 and stored["owner_spent_addresses"] == 1


def test_cost_is_one_batched_request_per_page_of_addresses(deps, shop, capsys):
    """90 addresses (3 pages of 30) × 4 assets: 3 HTTP requests, 363 JSON-RPC calls."""
    import time

    from eth_account import Account

    from shared.payments import deposit
    now = deps.clock.now()
    batch = deps.db.batch()
    for i in range(90):
        address = Account.create().address
        batch.set(deposit.watch_ref(deps.db, "anvil", address), deposit.watch_document(
            network="anvil", chain_id=shop.net.chain_id, address=address, asset="ETH", token=None,
            tenant=shop.id, livemode=False, intent_id=f"pi_bench{i:04d}", required_confirmations=1,
            watch_until=now, now=now + dt.timedelta(microseconds=i), index=i,
            tree=deposit.Tree("xpub", shop.id)))
    batch.commit()
    shop.mine(1)
    shop.sync()
    from shared.chain.rpc import RpcClient
    rpc = RpcClient("anvil", shop.net.rpc_urls)
    started = time.perf_counter()
    run = reconcile.run_network(deps, shop.net, run_key="bench", rpc=rpc)
    elapsed = time.perf_counter() - started
    assert (run.addresses, run.balances_checked, run.discrepancies) == (90, 360, 0)
    assert rpc.http_calls == 3 and rpc.rpc_requests == 3 * (1 + 30 * (2 + 3))
    with capsys.disabled():
        print(f"\nreconciliation: 90 addresses x 4 assets in {elapsed * 1000:.0f} ms, "
              f"{rpc.http_calls} HTTP requests, {rpc.rpc_requests} JSON-RPC calls")
