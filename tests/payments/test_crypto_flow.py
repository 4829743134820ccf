"""The crypto method end to end on a real anvil: choose crypto over HTTP, pay with web3 from
another account using the EIP-681 URI's fields, drive the chain watcher step by step, deliver
its events to the ``payments_events`` consumer, check the intent, the ledger and its invariants.
"""
from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import firestore

from shared.chain import hd, payment_uri, tokens
from shared.chain.networks import load_networks
from shared.chain.watcher import Watcher, WatcherSettings
from shared.ledger import audit
from shared.ledger.accounts import system_account_id
from shared.merchants import settings as msettings
from shared.merchants import store
from shared.payments import crypto_events, crypto_method, deposit, http, intents, settlement
from shared.payments.models import CreateIntent
from shared.platform.auth import Principal
from shared.platform.ids import new_id
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.outbox import Event
from shared.platform.uow import run_unit
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped fixtures)

crypto_method.register(http.api)
BASE = "/v1/payment_intents"


# --- wiring ------------------------------------------------------------------------------------
class Shop:
    """A merchant with a watch-only xpub on the module's anvil, and the helpers a test needs."""

    def __init__(self, deps, chain, client, *, speed="medium", tolerance=0, xpub=True):
        self.deps, self.chain, self.client = deps, chain, client
        self.net = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env}).networks[0]
        deps.extras["chain.networks"] = load_networks(
            env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env})
        self.id = new_id("mch")
        self.tree = hd.CustodialSeed.generate().tree()     # the merchant's own wallet
        db, now = deps.db, deps.clock.now()
        store.merchant_ref(db, self.id).set({
            "id": self.id, "business_name": "Shop", "country": "KH", "settlement_asset": "USDC",
            "status": "active", "created_by": "usr_test", "created_at": now})
        stored = {"speed_policy": speed, "payment_tolerance_bps": tolerance,
                  "fee_schedule": {"crypto": {"percent_bps": 100}}}
        if xpub:
            stored["xpub"] = self.tree.xpub()
        msettings.settings_ref(db, self.id).set(stored)
        self.principal = Principal(kind="api_key", id=new_id("key"), tenant_id=self.id,
                                   scopes=frozenset({"*"}), livemode=False)
        self.delivered: set[str] = set()
        self.watcher = Watcher(deps, self.net, settings=WatcherSettings(
            run_seconds=1, poll_interval_s=0.05, lease_seconds=60))
        assert self.watcher.acquire()

    def intent(self, amount, currency="ETH", **kw):
        body = CreateIntent(amount=amount, currency=currency, **kw)
        created = run_unit(self.deps, lambda uow: intents.create(uow, self.principal, body, None))
        return created.id, created.client_secret

    def choose(self, intent_id, secret, asset="ETH", network="anvil", status=200):
        r = self.client.post(f"{BASE}/{intent_id}/crypto",
                             json={"network": network, "asset": asset, "client_secret": secret})
        assert r.status_code == status, r.get_json()
        return r.get_json()

    def doc(self, intent_id):
        return intents.intent_ref(self.deps.db, intent_id).get().to_dict()

    def pay(self, uri, *, amount=None, sender=1):
        """Pay from anvil account ``sender`` with the URI's fields (``amount`` overrides)."""
        req = payment_uri.parse_uri(uri)
        w3, acct = self.chain.w3, self.chain.accounts[sender]
        value = req.amount if amount is None else amount
        if req.token is None:
            tx = {"to": req.recipient, "value": value}
        else:
            data = tokens.encode_transfer_call(req.recipient, value)
            tx = {"to": req.token, "data": "0x" + data.hex(), "value": 0}
        tx.update({"from": acct.address, "chainId": req.chain_id,
                   "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
                   "gas": 100_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1})
        signed = w3.eth.account.sign_transaction(tx, acct.key)
        h = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(h)
        assert receipt.status == 1
        self.last_raw = signed.raw_transaction
        return receipt

    def mine(self, n=1):
        self.chain.w3.provider.make_request("anvil_mine", [hex(n)])

    def sync(self):
        """Let the watcher catch up, then deliver every chain event (as Pub/Sub would)."""
        while self.watcher.step():
            pass
        self.deliver()

    def deliver(self):
        q = self.deps.db.collection(EVENTS).where(
            filter=firestore.FieldFilter("type", "in", ["chain.transfer_seen",
                                                         "chain.transfer_confirmed",
                                                         "chain.transfer_reorged"]))
        docs = sorted((s.to_dict() for s in q.stream()), key=lambda d: (d["created_at"], d["id"]))
        for d in docs:
            if d["id"] in self.delivered:
                continue
            self.delivered.add(d["id"])
            event = Event(**{k: d[k] for k in ("id", "type", "created", "tenant", "livemode",
                                                "data")})
            crypto_events.consumer.handle(self.deps, event)

    def settled(self, asset):
        """The merchant's test-mode settlement balance in ``asset`` (shards included)."""
        acc = settlement.settlement_template(self.id, asset, False).id
        snap = audit.snapshot(self.deps.db)
        doc = snap["accounts"].get(acc)
        if doc is None:
            return 0
        shards = snap["shards"].get(acc)
        posted = int(doc.get("credits_posted", 0)) - int(doc.get("debits_posted", 0))
        if shards is not None:
            posted += shards.credits_posted - shards.debits_posted
        return posted


def invariants(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == []


@pytest.fixture
def make_shop(deps, chain, function_client):
    return lambda **kw: Shop(deps, chain, function_client("payments"), **kw)


@pytest.fixture
def shop(make_shop):
    return make_shop()


# --- choosing crypto ---------------------------------------------------------------------------
def test_choose_crypto_is_idempotent_and_derives_from_the_xpub(shop):
    pi, secret = shop.intent(1_500_000_000)                      # 1.5 ETH (gwei scale)
    first = shop.choose(pi, secret)
    again = shop.choose(pi, secret)
    c = first["crypto"]
    assert again["crypto"]["address"] == c["address"]
    assert c["address"] == shop.tree.address(0)                   # m/44'/60'/0'/0/0 of the xpub
    assert c["amount_due"] == str(1_500_000_000 * 10**9)
    assert c["uri"] == f"ethereum:{c['address']}@{shop.chain.chain_id}?value={c['amount_due']}"
    req = payment_uri.parse_uri(c["uri"])
    assert (req.recipient, req.amount, req.token) == (c["address"], int(c["amount_due"]), None)
    watch = shop.deps.db.collection("deposit_addresses").document(
        f"anvil:{c['address'].lower()}").get().to_dict()
    assert watch["intent_id"] == pi and watch["required_confirmations"] == 1
    assert watch["watch_until"] > shop.doc(pi)["late_until"]
    # another choice for the same intent is refused; a second intent gets the next index
    assert shop.choose(pi, secret, asset="USDC", status=409)["error"]["code"] == \
        "crypto_already_chosen"
    pi2, secret2 = shop.intent(10)
    assert shop.choose(pi2, secret2)["crypto"]["address"] == shop.tree.address(1)


def test_choose_crypto_hostile_input(shop):
    pi, secret = shop.intent(1_000)
    c = shop.client
    assert c.post(f"{BASE}/{pi}/crypto", json={"network": "anvil", "asset": "ETH",
                                                "client_secret": pi + "_secret_wrong00"}
                  ).status_code == 404
    assert c.post(f"{BASE}/{pi}/crypto", json={"network": "anvil", "asset": "ETH"}
                  ).status_code == 401
    assert c.post(f"{BASE}/{pi}/crypto", json={"network": "nowhere", "asset": "ETH",
                                                "client_secret": secret}).status_code == 400
    assert c.post(f"{BASE}/{pi}/crypto", json={"network": "anvil", "asset": "KHR",
                                                "client_secret": secret}).status_code == 400
    assert c.post(f"{BASE}/{pi}/crypto", json={"network": "anvil", "asset": "ETH",
                                                "client_secret": secret, "x": 1}).status_code == 400
    assert c.post(f"{BASE}/pi_doesnotexist00000/crypto",
                  json={"network": "anvil", "asset": "ETH", "client_secret": secret}
                  ).status_code == 404
    assert c.get(f"{BASE}/{pi}/crypto/qr.png?client_secret={secret}").status_code == 404
    assert shop.doc(pi)["crypto"] is None


def test_qr_codes(shop):
    pi, secret = shop.intent(1_000)
    shop.choose(pi, secret)
    png = shop.client.get(f"{BASE}/{pi}/crypto/qr.png?client_secret={secret}")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["Cache-Control"] == "no-store"
    svg = shop.client.get(f"{BASE}/{pi}/crypto/qr.svg?client_secret={secret}")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    import xml.etree.ElementTree as ET
    ET.fromstring(svg.data)
    assert shop.client.get(f"{BASE}/{pi}/crypto/qr.png").status_code == 401


# --- paying on chain -----------------------------------------------------------------------------
def test_eth_payment_processing_then_succeeded_at_depth(make_shop):
    shop = make_shop(speed="lowmedium")                           # 2 confirmations
    pi, secret = shop.intent(2_000_000_000)                       # 2 ETH
    uri = shop.choose(pi, secret)["crypto"]["uri"]
    shop.pay(uri, sender=1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "processing" and doc["amount_pending"] == 2_000_000_000
    assert shop.settled("ETH") == 0
    assert shop.doc(pi)["timeline"][-1]["status"] == "processing"
    shop.mine(1)                                                  # the second confirmation
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "succeeded" and doc["amount_received"] == 2_000_000_000
    assert doc["method"] == "crypto" and doc["crypto"]["confirmed"] == str(2 * 10**18)
    fee = 2_000_000_000 * 100 // 10_000
    assert shop.settled("ETH") == 2_000_000_000 - fee
    shop.deliver()                                                # redelivery: nothing changes
    shop.delivered.clear()
    shop.deliver()
    assert shop.settled("ETH") == 2_000_000_000 - fee
    invariants(shop.deps)


def test_usdc_underpaid_then_completed(shop):
    pi, secret = shop.intent(25_000_000, currency="USDC")         # 25 USDC
    c = shop.choose(pi, secret, asset="USDC")["crypto"]
    assert c["token"] == shop.chain.tokens["USDC"]
    assert c["uri"].startswith(f"ethereum:{c['token']}@{shop.chain.chain_id}/transfer?address=")
    shop.chain.w3  # the deployer (account 0) holds the supply: fund the payer first
    shop.pay(payment_uri.erc20_uri(c["token"], shop.chain.accounts[2].address,
                                   shop.chain.chain_id, 100_000_000), sender=0)
    shop.pay(c["uri"], amount=10_000_000, sender=2)
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "underpaid" and doc["amount_received"] == 10_000_000
    assert shop.settled("USDC") == 0                              # nothing settled while short
    shop.pay(c["uri"], amount=15_000_000, sender=2)
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "succeeded" and doc["amount_received"] == 25_000_000
    assert len(doc["receipts"]) == 2
    assert shop.settled("USDC") == 25_000_000 - 25_000_000 // 100
    invariants(shop.deps)


def test_overpaid_with_dust_recorded(shop):
    pi, secret = shop.intent(1_000_000_000)                       # 1 ETH
    c = shop.choose(pi, secret)["crypto"]
    sent = int(c["amount_due"]) + 3 * 10**9 + 7                  # 3 gwei over, 7 wei of dust
    shop.pay(c["uri"], amount=sent, sender=3)
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "overpaid" and doc["amount_received"] == 1_000_000_003
    assert doc["crypto"]["dust"] == "7" and doc["crypto"]["confirmed"] == str(sent)
    invariants(shop.deps)


def test_late_payment_and_after_the_late_window(shop):
    pi, secret = shop.intent(1_000_000)
    c = shop.choose(pi, secret)["crypto"]
    now = shop.deps.clock.now()
    ref = intents.intent_ref(shop.deps.db, pi)
    ref.update({"expires_at": now - dt.timedelta(seconds=5), "status": "expired"})
    shop.pay(c["uri"], sender=4)
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "paid_late" and doc["amount_received"] == 1_000_000
    # another intent whose late window closed before the payment: unmatched, never lost
    pi2, secret2 = shop.intent(1_000_000)
    c2 = shop.choose(pi2, secret2)["crypto"]
    intents.intent_ref(shop.deps.db, pi2).update({
        "expires_at": now - dt.timedelta(hours=2), "late_until": now - dt.timedelta(hours=1),
        "status": "expired"})
    shop.pay(c2["uri"], sender=4)
    shop.mine(1)
    shop.sync()
    doc2 = shop.doc(pi2)
    assert doc2["status"] == "expired" and doc2["amount_received"] == 0
    assert doc2["crypto"]["unmatched_count"] == 1
    assert doc2["crypto"]["unmatched"][0]["reason"] == "after_late_window"
    assert doc2["crypto"]["unmatched"][0]["amount"] == c2["amount_due"]
    events = [s.to_dict()["type"] for s in shop.deps.db.collection(EVENTS).where(
        filter=firestore.FieldFilter("type", "==", "payment_intent.payment_unmatched")).stream()]
    assert len(events) == 1
    invariants(shop.deps)


def test_reorg_of_depth_3_after_confirmation(shop):
    pi, secret = shop.intent(1_000_000_000)
    c = shop.choose(pi, secret)["crypto"]
    receipt = shop.pay(c["uri"], sender=5)
    raw = shop.last_raw
    shop.mine(2)
    shop.sync()
    assert shop.doc(pi)["status"] == "succeeded"
    paid = shop.settled("ETH")
    assert paid == 1_000_000_000 - 10_000_000
    tip = shop.chain.w3.eth.block_number
    assert tip - receipt.blockNumber == 2                         # the tx is 3 blocks deep
    # a real reorg: the last 3 blocks replaced, the payment dropped
    shop.chain.w3.provider.make_request("anvil_reorg", [3, []])
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] in ("processing", "requires_payment_method")
    assert doc["amount_received"] == 0 and shop.settled("ETH") == 0   # reversed exactly once
    types = [s.to_dict()["type"] for s in shop.deps.db.collection(EVENTS).where(
        filter=firestore.FieldFilter("type", "==", "payment_intent.reorged")).stream()]
    assert len(types) == 1
    # the same transaction reappears (re-broadcast) in another block: confirmed, settled once
    again = shop.chain.w3.eth.wait_for_transaction_receipt(
        shop.chain.w3.eth.send_raw_transaction(raw))
    assert again.transactionHash == receipt.transactionHash
    assert again.blockHash != receipt.blockHash
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "succeeded" and shop.settled("ETH") == paid
    invariants(shop.deps)


def test_wallet_and_chain_pay_the_same_intent_concurrently(shop):
    """Policy: the first FINAL payment captures; the other never settles a second time. A wallet
    payment loses to a chain payment already seen (409 intent_not_payable, nothing moved); a chain
    payment confirming after the wallet captured is recorded as unmatched for a refund."""
    import threading

    from shared.ledger import accounts
    from shared.payments import wallet_method
    from tests.ledger.conftest import fund
    from tests.support.identity import auth_headers, create_user_with_token

    amount = 1_000_000_000
    pi, secret = shop.intent(amount)
    c = shop.choose(pi, secret)["crypto"]
    uid, token = create_user_with_token(shop.deps)
    fund(shop.deps, uid, 5 * amount, "ETH")
    answers = []

    def wallet():
        r = shop.client.post(f"{BASE}/{pi}/pay", json={"client_secret": secret},
                             headers=auth_headers(token))
        answers.append(r.status_code)

    shop.pay(c["uri"], sender=6)
    t = threading.Thread(target=wallet)
    t.start()
    shop.sync()
    t.join()
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    funding = wallet_method.funding_template(uid, "ETH", livemode=False).id   # test mode: the faucet
    spent = accounts.balance(shop.deps.db, funding).debits_posted if doc["method"] == "wallet" else 0
    assert accounts.balance(shop.deps.db, accounts.user_wallet_id(uid, "ETH")).debits_posted == 0
    assert doc["status"] == "succeeded"
    if doc["method"] == "wallet":
        assert answers == [200] and spent == amount
        assert doc["crypto"]["unmatched_count"] == 1
        assert doc["crypto"]["unmatched"][0]["reason"] == "paid_by_other_method"
        assert shop.settled("ETH") == amount                     # no fee on wallet payments here
    else:
        assert answers == [409] and spent == 0
        assert shop.settled("ETH") == amount - amount // 100
    assert len(doc["settlement"]["transfer_ids"]) in (1, 2)
    invariants(shop.deps)


def test_chain_payment_after_wallet_capture_is_unmatched_not_settled(shop):
    from tests.ledger.conftest import fund
    from tests.support.identity import auth_headers, create_user_with_token

    amount = 1_000_000_000
    pi, secret = shop.intent(amount)
    c = shop.choose(pi, secret)["crypto"]
    uid, token = create_user_with_token(shop.deps)
    fund(shop.deps, uid, amount, "ETH")
    r = shop.client.post(f"{BASE}/{pi}/pay", json={"client_secret": secret},
                         headers=auth_headers(token))
    assert r.status_code == 200 and r.get_json()["status"] == "succeeded"
    shop.pay(c["uri"], sender=7)
    shop.mine(1)
    shop.sync()
    doc = shop.doc(pi)
    assert doc["status"] == "succeeded" and doc["method"] == "wallet"
    assert doc["amount_received"] == amount and len(doc["receipts"]) == 1
    assert doc["crypto"]["unmatched"][0]["reason"] == "paid_by_other_method"
    assert shop.settled("ETH") == amount                          # captured once, by the wallet
    invariants(shop.deps)


def test_custodial_tree_without_xpub(make_shop):
    shop = make_shop(xpub=False)
    pi, secret = shop.intent(1_000)
    err = shop.choose(pi, secret, status=503)["error"]
    assert err["code"] == "custody_unavailable" and shop.doc(pi)["crypto"] is None
    seed, created = hd.provision_custodial_seed(shop.deps, livemode=False)
    assert created
    c = shop.choose(pi, secret)["crypto"]
    tree = deposit.choose_tree(shop.id, has_xpub=False, intent_id=pi)
    assert c["derivation"] == {"tree": "custodial", "index": tree.shard}
    assert c["address"] == hd.custodial_address(seed.seed(), tree.shard)
