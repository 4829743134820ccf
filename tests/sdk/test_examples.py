"""The SDK's three examples run as a user would run them (subprocesses against the in-process
gateway): a crypto payment paid on a real anvil and watched by the chain watcher (driven in a
thread of this process, its events delivered to the payments consumer as Pub/Sub would), its
crypto refund sent from the hot wallet, and a webhook receiver that registers itself and
verifies a real delivery."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests
from eth_account import Account
from google.cloud import firestore

import payloom
from payloom.webhook import WebhookSignature
from shared.chain import hd
from shared.chain.networks import load_networks
from shared.chain.watcher import Watcher, WatcherSettings
from shared.ledger import audit
from shared.payments import crypto_events
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.outbox import Event
from shared.refunds import hot_wallet
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.sdk.conftest import SDK

EXAMPLES = SDK / "examples"
CHAIN_EVENTS = ["chain.transfer_seen", "chain.transfer_confirmed", "chain.transfer_reorged"]
SETTINGS = {"speed_policy": "medium", "fee_schedule": {"crypto": {"percent_bps": 100}}}


def run_example(name: str, *args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(SDK), **env}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return done


def last_fields(output: str) -> dict:
    line = output.strip().splitlines()[-1]
    return dict(part.split("=", 1) for part in line.split())


class ChainDriver:
    """What the scheduled watcher and the Pub/Sub push do on the local stack: watch anvil,
    then hand every chain event to the payments consumer (once each)."""

    def __init__(self, deps, chain):
        self.deps = deps
        net = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env}).networks[0]
        self.watcher = Watcher(deps, net, settings=WatcherSettings(
            run_seconds=1, poll_interval_s=0.05, lease_seconds=60))
        assert self.watcher.acquire()
        self.delivered: set[str] = set()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.stop.is_set():
                while self.watcher.step():
                    pass
                self._deliver()
                self.stop.wait(0.1)
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            self.errors.append(exc)

    def _deliver(self):
        q = self.deps.db.collection(EVENTS).where(
            filter=firestore.FieldFilter("type", "in", CHAIN_EVENTS))
        docs = sorted((s.to_dict() for s in q.stream()), key=lambda d: (d["created_at"], d["id"]))
        for d in docs:
            if d["id"] not in self.delivered:
                self.delivered.add(d["id"])
                crypto_events.consumer.handle(self.deps, Event(**{k: d[k] for k in (
                    "id", "type", "created", "tenant", "livemode", "data")}))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def rpc(url: str, method: str, *params):
    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                      timeout=10).json()
    assert "error" not in r, r
    return r["result"]


@pytest.fixture
def shop(deps, chain, make_merchant, api_key, inprocess_gateway):
    """A merchant on this anvil (custodial deposit addresses), its key, and the env of the
    examples."""
    deps.extras["chain.networks"] = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env})
    hd.provision_custodial_seed(deps, livemode=False)
    m = make_merchant(("owner",), settings=SETTINGS)
    key = api_key(m.id, scopes=("payments:read", "payments:write", "webhooks:read", "webhooks:write"))
    env = {"PAYLOOM_API_KEY": key, "PAYLOOM_API_BASE": inprocess_gateway,
           "PAYLOOM_CHAIN_RPC_URL": chain.rpc_url}
    return m, key, env


def test_accept_a_crypto_payment_then_refund_it(deps, chain, shop):
    m, key, env = shop
    with ChainDriver(deps, chain) as driver:
        paid = run_example("accept_crypto_payment.py", "--amount", "1000000", "--currency", "ETH",
                           "--pay-from-anvil", "--payer-key", chain.accounts[1].key,
                           "--poll-interval", "0.2", "--timeout", "90", env=env)
    assert driver.errors == []
    assert paid.returncode == 0, paid.stdout + paid.stderr
    out = paid.stdout
    fields = last_fields(out)
    assert fields["status"] == "succeeded"
    intent_id = fields["payment_intent"]
    uri = re.search(r"EIP-681:\s+(\S+)", out).group(1)
    address = re.search(r"pay to:\s+(0x[0-9a-fA-F]{40})", out).group(1)
    assert uri == f"ethereum:{address}@{chain.chain_id}?value={10**15}"      # 0.001 ETH in wei
    assert "amount due: 1000000000000000 base units of ETH" in out
    client = payloom.Client(key, api_base=env["PAYLOOM_API_BASE"])
    intent = client.PaymentIntent.retrieve(intent_id)
    assert (intent.status, intent.amount_received, intent.method) == ("succeeded", 1_000_000, "crypto")
    assert int(rpc(chain.rpc_url, "eth_getBalance", address, "latest"), 16) == 10**15

    # the refund goes out from the hot wallet (funded here; an operator's job on a real stack)
    hot = hot_wallet.hot_address(deps, livemode=False)
    rpc(chain.rpc_url, "eth_sendTransaction", {"from": chain.accounts[2].address, "to": hot,
                                               "value": hex(10**18)})
    receiver = Account.create().address
    refunded = run_example("refund_payment.py", intent_id, "--amount", "400000", "--address",
                           receiver, "--idempotency-key", f"refund-{intent_id}-1",
                           "--poll-interval", "0.2", "--timeout", "90", env=env)
    assert refunded.returncode == 0, refunded.stdout + refunded.stderr
    fields = last_fields(refunded.stdout)
    assert fields["status"] == "succeeded"
    assert int(rpc(chain.rpc_url, "eth_getBalance", receiver, "latest"), 16) == 400_000 * 10**9
    # the same idempotency key again: the same refund, nothing sent twice
    again = run_example("refund_payment.py", intent_id, "--amount", "400000", "--address", receiver,
                        "--idempotency-key", f"refund-{intent_id}-1", "--timeout", "5", env=env)
    assert "already requested" in again.stdout and last_fields(again.stdout)["refund"] == fields["refund"]
    assert int(rpc(chain.rpc_url, "eth_getBalance", receiver, "latest"), 16) == 400_000 * 10**9
    assert client.PaymentIntent.retrieve(intent_id).amount_refunded == 400_000
    # a bad refund is refused with the parameter named, exit code 2
    over = run_example("refund_payment.py", intent_id, "--amount", "999999999", "--address",
                       receiver, env=env)
    assert over.returncode == 2 and "param=amount" in over.stderr
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == []


def test_verify_webhook_registers_itself_and_verifies_a_real_delivery(deps, shop):
    m, key, env = shop
    done = run_example("verify_webhook.py", "--port", "0", "--create-endpoint", "--send-test",
                       "--once", "--timeout", "60", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^verified webhook_endpoint\.test evt_\w+$", done.stdout, re.M), done.stdout
    client = payloom.Client(key, api_base=env["PAYLOOM_API_BASE"])
    assert list(client.WebhookEndpoint.list().auto_paging_iter()) == []     # cleaned up


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_webhook_receiver_refuses_forgeries_and_duplicates():
    example = load_example("verify_webhook")
    old, new = "whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="
    receiver = example.Receiver([old, new])                 # rotating: both are accepted
    body = b'{"id":"evt_1","object":"event","type":"refund.succeeded","created":"x","data":{}}'
    good = WebhookSignature.headers(new, "evt_1", body)
    assert receiver.handle(body, good) == (200, "verified refund.succeeded evt_1")
    assert receiver.handle(body, good)[1].startswith("duplicate")
    assert receiver.handle(body, WebhookSignature.headers(old, "evt_2", body))[0] == 200
    forged = WebhookSignature.headers("whsec_" + "C" * 43 + "=", "evt_3", body)
    assert receiver.handle(body, forged)[0] == 400
    assert receiver.handle(body + b" ", WebhookSignature.headers(new, "evt_4", body))[0] == 400
    stale = WebhookSignature.headers(new, "evt_5", body, timestamp=int(time.time()) - 600)
    assert receiver.handle(body, stale) == (400, "rejected: Message timestamp too old.")
    assert [e.id for e in receiver.events] == ["evt_1", "evt_1"]
