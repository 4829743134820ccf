"""Identity test wiring, for every test under tests/identity (one copy of each fixture).

Real pieces only: the Firestore emulator behind ``deps``, the loopback email API (SendGrid
protocol), SMS provider (Twilio protocol), OIDC/OAuth simulator, and anvil for contract
wallets. Each test runs on its own ``demo-`` project, so rate-limit windows, nonces and codes
never leak between tests; argon2 is cheap and every test gets a fresh signing key set.
"""
from __future__ import annotations

import itertools
import os
import secrets
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
import requests

from infra.local import email_sim, oidc_sim, sms_sim
from infra.local.stack import free_port
from shared.identity.factors.otp import OtpSettings
from shared.identity.ports_sms import TwilioSmsSender
from shared.identity.sessions.keys import KeySet, generate_key
from shared.identity.web3.siwe import SiweSettings
from tests.identity.helpers import ANVIL_CHAIN_ID, CODE_RE, PASSWORD, SIWE_DOMAIN, fresh_ip
from tests.support.identity import deliver_outbound, fast_identity_settings

# --- simulators (one per session) -----------------------------------------------------------


def _serve(sim):
    """A loopback provider simulator for the session."""
    server, _ = sim.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def email_server():
    yield from _serve(email_sim)


@pytest.fixture(scope="session")
def sms_server():
    yield from _serve(sms_sim)


@pytest.fixture(scope="session")
def oidc_server():
    yield from _serve(oidc_sim)


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


# --- per-test wiring -------------------------------------------------------------------------

@pytest.fixture
def identity_settings(deps, email_server):
    """Injected identity settings (tests may replace them via ``configure``)."""
    from shared.notify.settings import NotifySettings
    settings = fast_identity_settings(email_api_url=email_server.base_url, email_api_key="test-key")
    deps.extras["identity.settings"] = settings
    deps.extras["notify.settings"] = NotifySettings(email_api_url=email_server.base_url,
                                                    email_api_key="test-key")
    return settings


@pytest.fixture
def keyset(deps):
    ks = KeySet((generate_key("EdDSA"),))
    deps.extras["identity.keyset"] = ks
    return ks


@pytest.fixture(autouse=True)
def _identity_wiring(deps, identity_settings, keyset, sms_server):
    """Every identity port on ``deps``: settings, keys, the SMS provider, OTP and SIWE settings."""
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
def configure(deps, identity_settings):
    """``configure(**overrides)`` replaces the injected identity settings."""
    def apply(**overrides):
        settings = identity_settings.model_copy(update=overrides)
        deps.extras["identity.settings"] = settings
        return settings
    return apply


# --- clients and users -----------------------------------------------------------------------

@pytest.fixture
def auth(function_client):
    return function_client("auth")


@pytest.fixture
def me(function_client):
    return function_client("accounts")


@pytest.fixture
def inbox(deps, email_server):
    """The simulator's inbox for ``to``, after delivering what is queued (notify's job)."""
    def read(to: str) -> list[dict]:
        deliver_outbound(deps)
        return email_server.inbox(to)
    return read


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
def signup(auth):
    """Register and log in over HTTP; returns a namespace with user, tokens and headers."""
    def make(username: str | None = None, email: str | None = None, password: str = PASSWORD):
        username = username or f"u_{secrets.token_hex(5)}"
        email = email or f"{username.lower()}@example.com"
        r = auth.post("/v1/auth/register", json={"email": email, "password": password,
                                                 "username": username},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code == 201, r.get_json()
        user = r.get_json()
        r = auth.post("/v1/auth/login", json={"username": username, "password": password},
                      headers={"X-Forwarded-For": fresh_ip()})
        assert r.status_code == 200, r.get_json()
        tokens = r.get_json()
        return SimpleNamespace(user=user, id=user["id"], username=username, email=email,
                               password=password, tokens=tokens, token=tokens["access_token"],
                               refresh=tokens["refresh_token"], session_id=tokens["session"]["id"],
                               headers={"Authorization": f"Bearer {tokens['access_token']}"})
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
