"""Wiring for phone OTP, social login, SIWE and DID tests.

Real pieces only: the Firestore emulator behind ``deps``, the loopback SMS provider
(Twilio protocol), the OIDC/OAuth simulator, and anvil for contract wallets. Each test runs on
its own ``demo-`` project, so rate-limit windows and nonces never leak between tests.
"""
from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from infra.local import oidc_sim, sms_sim
from infra.local.stack import free_port
from shared.identity.sessions.keys import KeySet, generate_key
from shared.identity.factors.otp import OtpSettings
from shared.identity.ports_sms import TwilioSmsSender
from shared.identity.web3.siwe import SiweSettings
from tests.support.identity import deliver_outbound, fast_identity_settings

SIWE_DOMAIN = "app.payloom.test"
ANVIL_CHAIN_ID = 31337
_ips = itertools.count(1)


def fresh_ip() -> str:
    n = next(_ips)
    return f"10.77.{(n >> 8) & 255}.{n & 255}"


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response is the platform's error envelope with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert set(body) == {"error"} and {"type", "code", "message", "param"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


# --- simulators --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sms_server():
    server, _ = sms_sim.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_server():
    server, _ = oidc_sim.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def anvil():
    """A real anvil on a free port for this module; yields its RPC URL."""
    from infra.local.stack import anvil_binary

    port = free_port()
    proc = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port),
                             "--chain-id", str(ANVIL_CHAIN_ID), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                         "params": []}, timeout=1)
            if r.ok:
                break
        except requests.RequestException:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("anvil did not start")
        time.sleep(0.1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


# --- per-test wiring ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def identity_wiring(deps, sms_server):
    deps.extras["identity.settings"] = fast_identity_settings()
    deps.extras["identity.keyset"] = KeySet((generate_key("EdDSA"),))
    deps.extras["identity.sms"] = TwilioSmsSender(
        base_url=sms_server.base_url, account_sid=sms_server.account_sid,
        auth_token=sms_server.auth_token, from_number="Payloom")
    deps.extras["identity.otp_settings"] = OtpSettings()
    deps.extras["identity.siwe_settings"] = SiweSettings(domain=SIWE_DOMAIN)
    # SMS leave after commit through notify: reading the inbox first delivers what is queued.
    read = type(sms_server).inbox
    sms_server.inbox = lambda to, *a, **kw: (deliver_outbound(deps), read(sms_server, to, *a, **kw))[1]
    yield
    del sms_server.inbox


@pytest.fixture
def auth(function_client):
    return function_client("auth")


@pytest.fixture
def me(function_client):
    return function_client("accounts")


CODE_RE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def sms_code(deps, sms_server):
    """The code in the newest SMS to ``phone`` (read from the simulator's inbox over HTTP),
    after delivering what is queued (notify's job, after commit)."""
    def read(phone: str) -> str:
        deliver_outbound(deps)
        r = requests.get(f"{sms_server.base_url}/_inbox", params={"to": phone}, timeout=5)
        messages = r.json()
        assert messages, f"no SMS to {phone}"
        match = CODE_RE.search(messages[-1]["body"])
        assert match, messages[-1]["body"]
        return match.group(1)
    return read


_phone_seq = itertools.count(100_000)


@pytest.fixture
def new_phone():
    """A fresh valid Smart number per call (the SMS inbox is shared by the session)."""
    def make() -> str:
        n = next(_phone_seq) + (os.getpid() % 50) * 10_000
        return f"+85510{n:06d}"
    return make


@pytest.fixture
def phone_user(auth, sms_code, new_phone):
    """Sign up by phone over HTTP; returns (user_id, headers, phone, tokens)."""
    def make(phone: str | None = None):
        phone = phone or new_phone()
        ip = fresh_ip()
        r = auth.post("/v1/auth/phone/start", json={"phone": phone, "purpose": "signin"},
                      headers={"X-Forwarded-For": ip})
        assert r.status_code == 202, r.get_json()
        r = auth.post("/v1/auth/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                      headers={"X-Forwarded-For": ip})
        assert r.status_code in (200, 201), r.get_json()
        body = r.get_json()
        return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}, phone, body
    return make
