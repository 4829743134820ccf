"""Custody test wiring: a real anvil per module (``chain``, from tests/chain/conftest.py), the
custody functions' clients, and the withdrawal fixtures: custodians (identity users with a
password session and an MFA session each), the custody configuration of this test, the hot
wallet provisioned on this anvil, and helpers that fund the hot wallet on chain and the
platform's fee revenue in the ledger."""
from __future__ import annotations

import dataclasses

import pytest

from shared.chain import hd
from shared.chain.networks import load_networks
from shared.custody import withdrawal_chain
from shared.custody import withdrawals as wd
from shared.custody.custodians import CustodyConfig, ModePolicy
from shared.identity.sessions.sessions import start_session
from shared.ledger import accounts, engine
from shared.ledger.model import TransferSpec
from shared.platform.ids import new_id
from shared.platform.uow import run_unit
from shared.refunds import hot_wallet
from tests.chain.conftest import anvil_chain, chain  # noqa: F401  (module-scoped anvil)
from tests.refunds.conftest import assert_ledger_clean, balance  # noqa: F401  (re-exported)
from tests.refunds.test_crypto_refunds import (  # noqa: F401  (re-exported chain helpers)
    eth_balance,
    fund_hot,
    rpc,
    token_balance,
    wait_mined,
)
from tests.support.identity import auth_headers, create_user_with_token

WITHDRAWALS = "/v1/custody/withdrawals"
GWEI = 10**9
FEES_ETH = accounts.system_account_id("fees", "ETH", "test")
FEES_USDC = accounts.system_account_id("fees", "USDC", "test")


def err(resp):
    return resp.get_json()["error"]


def withdrawal_doc(deps, wid):
    return deps.db.collection(wd.COLLECTION).document(wid).get().to_dict()


def finish(deps, chain, wid, tries=30):  # noqa: F811  (the fixture, passed on)
    """Mined, then polled until the withdrawal ends (what the custody queue's polls do)."""
    wait_mined(chain, withdrawal_doc(deps, wid)["chain"]["hash"])
    for _ in range(tries):
        outcome = withdrawal_chain.poll(deps, wid)
        if outcome in ("succeeded", "failed", "done"):
            return outcome
    raise AssertionError("withdrawal did not end")


@pytest.fixture
def custody_api(function_client):
    return function_client("custody")


@pytest.fixture
def custody_tasks(function_client):
    return function_client("custody_tasks")


# --- custodians ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Staff:
    """Custodians (and outsiders): ``ids[i]``; ``headers(i)`` with an MFA session (the
    default) or a password-only one (``mfa=False``)."""
    ids: list[str]
    mfa_tokens: list[str]
    pwd_tokens: list[str]

    def headers(self, i: int, *, mfa: bool = True, live: bool = False, **extra) -> dict[str, str]:
        h = auth_headers((self.mfa_tokens if mfa else self.pwd_tokens)[i], **extra)
        if live:
            h["Payloom-Mode"] = "live"
        return h


def make_staff(deps, n: int) -> Staff:
    ids, mfa, pwd = [], [], []
    for _ in range(n):
        uid, token = create_user_with_token(deps)
        pair = start_session(deps, user_id=uid, amr=["pwd", "otp", "mfa"], ip="127.0.0.1",
                             user_agent="pytest")
        ids.append(uid)
        pwd.append(token)
        mfa.append(pair.access_token)
    return Staff(ids, mfa, pwd)


def configure(deps, staff_ids, *, threshold: int, limits=None, live=None, **policy) -> None:
    """This test's ``PAYLOOM_CUSTODIANS`` (test mode; ``live`` another policy's approvers)."""
    test = ModePolicy(approvers=tuple(staff_ids), threshold=threshold,
                      limits=limits or {"ETH": "0.5", "USDC": "100"}, **policy)
    live_policy = ModePolicy(approvers=tuple(live), threshold=1) if live else None
    deps.extras["custody.custodians"] = CustodyConfig(test=test, live=live_policy)


# --- chain and ledger ---------------------------------------------------------------------------
def fund_revenue(deps, asset: str, amount: int, *, livemode: bool = False) -> None:
    """Platform fee revenue in the ledger (external → fees), as payments' fee legs book it."""
    key = "" if livemode else "test"
    fees = accounts.system_template("fees", asset, key)
    external = accounts.system_template("external", asset, key)
    spec = TransferSpec(id=new_id("txf"), debit_account_id=external.id,
                        credit_account_id=fees.id, amount=amount, asset=asset, code="fee",
                        description="test revenue")
    run_unit(deps, lambda uow: engine.execute(uow, [spec], templates=[fees, external]))


@pytest.fixture
def treasury(deps, chain):  # noqa: F811  (the fixture)
    """This anvil as the test network and a provisioned hot wallet; returns its address."""
    deps.extras["chain.networks"] = load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env})
    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    return seed.tree(account=hot_wallet.HOT_ACCOUNT).address(hot_wallet.HOT_INDEX)
