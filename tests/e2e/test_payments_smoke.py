"""A crypto payment end to end on the running stack, from outside, as a merchant and a payer see it.

A user registers a merchant (settlement in USDC) with a watch-only xpub, creates a test project
and an API key, and (acting for the merchant) a webhook endpoint on the receiver simulator. The
chain watcher job is started the way Cloud Scheduler starts it (``POST /_fn/chain_watcher/`` with
the service token). The API key creates a USDC intent; the payer chooses crypto with the client
secret only and pays from another anvil account with the fields of the EIP-681 URI. The watcher
sees the transfer, its events reach ``payments_events`` through the outbox and Pub/Sub, the
intent succeeds and is settled, and the receiver gets ``payment_intent.succeeded`` signed by the
endpoint's secret (verified with the PyPI ``standardwebhooks`` receiver).
"""
import json
import threading
import time
import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.e2e import running_stack, signed_in_user

pytestmark = pytest.mark.e2e
stack = running_stack("demo-payloom-e2e-payments",
                      ("firestore", "pubsub", "tasks", "anvil", "prices", "webhooks", "gateway"))
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
AMOUNT = 25_000_000          # 25 USDC (6 decimals on chain and in the ledger)


def _ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json()


def _until(look, timeout, step=0.2):
    deadline = time.time() + timeout
    while True:
        got = look()
        if got or time.time() > deadline:
            return got
        time.sleep(step)


class Payer:
    """anvil's default accounts, signing with web3 (account 0 deployed and holds the tokens)."""

    def __init__(self, rpc_url):
        from shared.adapters.evm import web3_client
        from shared.chain import hd

        self.w3 = web3_client(rpc_url)
        tree = hd.restore_from_mnemonic(ANVIL_MNEMONIC)
        self.accounts = [(tree.address(i), "0x" + tree.private_key(i).hex()) for i in range(10)]

    def transfer(self, sender, token, to, amount, chain_id):
        from shared.chain.tokens import encode_transfer_call

        address, key = self.accounts[sender]
        tx = {"to": token, "value": 0, "data": "0x" + encode_transfer_call(to, amount).hex(),
              "from": address, "chainId": chain_id, "gas": 100_000, "maxFeePerGas": 10**10,
              "maxPriorityFeePerGas": 1,
              "nonce": self.w3.eth.get_transaction_count(address, "pending")}
        signed = self.w3.eth.account.sign_transaction(tx, key)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(signed.raw_transaction), timeout=30, poll_latency=0.1)
        assert receipt["status"] == 1
        return receipt

    def pay_uri(self, uri, sender):
        """Pay exactly what the EIP-681 request says: token contract, recipient, amount, chain."""
        from shared.chain.payment_uri import parse_uri

        req = parse_uri(uri)
        assert req.token is not None and req.amount is not None
        return self.transfer(sender, req.token, req.recipient, req.amount, req.chain_id)


def test_usdc_intent_paid_on_chain_succeeds_and_the_merchant_is_told(stack):
    from shared.chain import hd

    base = f"http://127.0.0.1:{stack.ports.gateway}"
    sim = f"http://127.0.0.1:{stack.ports.webhooks}"
    usdc = stack.chain_tokens["USDC"]

    # -- the merchant: registered by a user, watch-only xpub, test project, API key ----------
    _, user = signed_in_user(base, "pay")
    mch = _ok(requests.post(f"{base}/v1/merchants", headers=user, timeout=30, json={
        "business_name": "Angkor Coffee", "country": "KH", "settlement_asset": "USDC"}), 201)
    mid = mch["id"]
    wallet = hd.CustodialSeed.generate().tree()          # the merchant's own wallet
    settings = _ok(requests.post(f"{base}/v1/merchants/{mid}/settings", headers=user, timeout=30,
                                 json={"xpub": wallet.xpub(), "speed_policy": "medium"}))
    assert settings["xpub"] == wallet.xpub() and settings["speed_policy"] == "medium"
    project = _ok(requests.post(f"{base}/v1/merchants/{mid}/projects", headers=user, timeout=30,
                                json={"name": "web shop"}), 201)
    key = _ok(requests.post(f"{base}/v1/merchants/{mid}/projects/{project['id']}/api_keys",
                            headers=user, timeout=30,
                            json={"scopes": ["payments:read", "payments:write"]}), 201)
    assert key["secret"].startswith("sk_test_")
    api = {"Authorization": f"Bearer {key['secret']}"}

    # -- a webhook endpoint, created by the user acting for the merchant ------------------------
    path = "/hooks/pay-" + uuid.uuid4().hex[:8]
    endpoint = _ok(requests.post(f"{base}/v1/webhook_endpoints", timeout=30,
                                 headers={**user, "Payloom-Merchant": mid},
                                 json={"url": sim + path, "enabled_events": ["payment_intent.*"]}),
                   201)
    assert endpoint["secret"].startswith("whsec_")

    # -- the watcher job, started as Cloud Scheduler does (service token only) ------------------
    job_url = f"{base}/_fn/chain_watcher/"
    assert requests.post(job_url, json={}, timeout=30).status_code == 401
    job: dict = {}

    def run_job():
        try:
            r = requests.post(job_url, json={}, timeout=150,
                              headers={"Authorization": f"Bearer {stack.task_secret}",
                                       "X-CloudScheduler": "true"})
            job["status"], job["body"] = r.status_code, r.json()
        except requests.RequestException as exc:   # the stack stopped under a long run
            job["error"] = repr(exc)

    threading.Thread(target=run_job, daemon=True).start()

    def watching():
        nets = _ok(requests.get(f"{base}/v1/chain/networks", headers=user, timeout=30))["data"]
        anvil = next(n for n in nets if n["name"] == "anvil")
        return anvil if anvil["watcher_active"] and anvil["cursor"] is not None else None

    assert _until(watching, 20), "the watcher job did not take the network's lease"

    # -- the intent, created with the API key (idempotent) --------------------------------------
    body = {"amount": AMOUNT, "currency": "USDC", "payment_method_types": ["crypto"],
            "description": "2 flat whites", "metadata": {"order": "A-17"}}
    idem = {**api, "Idempotency-Key": "order-A-17"}
    intent = _ok(requests.post(f"{base}/v1/payment_intents", headers=idem, json=body, timeout=30),
                 201)
    again = _ok(requests.post(f"{base}/v1/payment_intents", headers=idem, json=body, timeout=30),
                201)
    assert again["id"] == intent["id"]
    assert intent["status"] == "requires_payment_method" and intent["merchant"] == mid
    assert intent["required_confirmations"] == 1 and intent["livemode"] is False

    # -- the payer chooses crypto with the client secret only -----------------------------------
    choose = f"{base}/v1/payment_intents/{intent['id']}/crypto"
    wrong = requests.post(choose, timeout=30, json={"network": "anvil", "asset": "USDC",
                                                    "client_secret": intent["id"] + "_secret_x" * 3})
    assert 400 <= wrong.status_code < 500 and "error" in wrong.json()
    chosen = _ok(requests.post(choose, timeout=30, json={
        "network": "anvil", "asset": "USDC", "client_secret": intent["client_secret"]}))
    crypto = chosen["crypto"]
    assert crypto["token"].lower() == usdc.lower() and crypto["amount_due"] == str(AMOUNT)
    # a fresh address of the merchant's own tree (watch-only: derived from the xpub it gave)
    assert crypto["address"].lower() in {wallet.address(i).lower() for i in range(5)}
    assert crypto["uri"].startswith(f"ethereum:{crypto['token']}@31337/transfer?address=")

    # -- paid on anvil from another account, using the URI's fields -----------------------------
    payer = Payer(f"http://127.0.0.1:{stack.ports.anvil}")
    payer.transfer(0, usdc, payer.accounts[3][0], 100_000_000, 31337)   # fund the payer
    receipt = payer.pay_uri(crypto["uri"], sender=3)
    paid_at = time.time()

    def succeeded():
        got = _ok(requests.get(f"{base}/v1/payment_intents/{intent['id']}", headers=api,
                               timeout=30))
        return got if got["status"] not in ("requires_payment_method", "processing") else None

    final = _until(succeeded, 30)
    assert final, "the intent was not paid within 30 s"
    seen_in = time.time() - paid_at
    assert final["status"] == "succeeded", final
    assert final["amount_received"] == AMOUNT and final["method"] == "crypto"
    assert final["crypto"]["received"] == str(AMOUNT)
    settlement = final["settlement"]
    assert settlement and settlement["asset"] == "USDC" and settlement["amount"] == AMOUNT
    assert settlement["net"] + settlement["fee"] == AMOUNT
    assert [t["status"] for t in final["timeline"]][-1] == "succeeded"

    # -- the merchant's receiver got payment_intent.succeeded, signed --------------------------
    def delivered():
        got = requests.get(f"{sim}/_inbox", params={"path": path}, timeout=10).json()
        got = got.get("data", got) if isinstance(got, dict) else got
        done = [e for e in got if json.loads(e["body"])["type"] == "payment_intent.succeeded"]
        return (got, done) if done else None

    found = _until(delivered, 30)
    assert found, "payment_intent.succeeded did not reach the receiver within 30 s"
    entries, done = found
    entry = done[0]
    headers = {k: v for k, v in entry["headers"].items() if k.startswith("webhook-")}
    Webhook(endpoint["secret"]).verify(entry["body"], headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(entry["body"], headers)
    event = json.loads(entry["body"])
    assert event["id"] == headers["webhook-id"] and event["livemode"] is False
    obj = event["data"]["object"]
    assert obj["id"] == intent["id"] and obj["status"] == "succeeded"
    assert obj["amount_received"] == AMOUNT and obj["metadata"] == {"order": "A-17"}
    assert "client_secret" not in obj
    types = [json.loads(e["body"])["type"] for e in entries]
    assert "payment_intent.created" in types
    assert len({e["headers"]["webhook-id"] for e in done}) == 1   # one event, never two

    # -- the network status shows the watcher past the payment's block --------------------------
    anvil = next(n for n in _ok(requests.get(f"{base}/v1/chain/networks", headers=user,
                                             timeout=30))["data"] if n["name"] == "anvil")
    assert anvil["cursor"] >= receipt["blockNumber"] and anvil["head"] >= anvil["cursor"]
    print(f"\npayment block → intent {final['status']} seen over HTTP in {seen_in:.2f} s; "
          f"job so far: {job or 'still running'}")


def test_a_merchant_without_xpub_gets_custodial_addresses_on_the_running_stack(stack):
    """`make run` provisions test-mode custody: the custodial tree hands out deposit addresses
    (distinct under 12 concurrent payers) and the hot wallet holds gas and tokens for refunds."""
    from concurrent.futures import ThreadPoolExecutor

    from web3 import Web3

    base = f"http://127.0.0.1:{stack.ports.gateway}"
    _, user = signed_in_user(base, "cust")
    mid = _ok(requests.post(f"{base}/v1/merchants", headers=user, timeout=30, json={
        "business_name": "Mekong Tea", "country": "KH", "settlement_asset": "USDC"}), 201)["id"]
    project = _ok(requests.post(f"{base}/v1/merchants/{mid}/projects", headers=user, timeout=30,
                                json={"name": "shop"}), 201)
    key = _ok(requests.post(f"{base}/v1/merchants/{mid}/projects/{project['id']}/api_keys",
                            headers=user, timeout=30, json={"scopes": ["payments:write"]}), 201)
    api = {"Authorization": f"Bearer {key['secret']}"}
    intents = [_ok(requests.post(f"{base}/v1/payment_intents", headers=api, timeout=30, json={
        "amount": 1_000_000, "currency": "USDC", "payment_method_types": ["crypto"]}), 201)
        for _ in range(12)]

    def choose(intent):
        return _ok(requests.post(f"{base}/v1/payment_intents/{intent['id']}/crypto", timeout=60, json={
            "network": "anvil", "asset": "USDC", "client_secret": intent["client_secret"]}))

    with ThreadPoolExecutor(12) as pool:
        chosen = list(pool.map(choose, intents))
    addresses = {c["crypto"]["address"] for c in chosen}
    assert len(addresses) == 12
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{stack.ports.anvil}"))
    assert stack.hot_wallet and stack.hot_wallet not in addresses
    assert w3.eth.get_balance(stack.hot_wallet) >= 50 * 10**18
