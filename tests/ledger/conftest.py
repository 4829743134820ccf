"""Fixtures for ledger and wallet tests (real emulators through ``deps``)."""
from __future__ import annotations

import contextlib
import threading

import pytest
from google.cloud import firestore

from shared.identity import directory
from shared.ledger import accounts, service
from shared.ledger.model import TransferSpec
from shared.platform.ids import new_id
from shared.wallet import config as wallet_config
from shared.wallet.limits import DEFAULT_POLICY, TierLimits, WalletPolicy
from tests.support.identity import auth_headers, create_user_with_token

__all__ = ["fund", "new_user_id", "link_handle", "auth_headers", "generous_policy", "unit"]


def unit(deps, fn, *args, **kw):
    """Run a uow-taking service function in its own unit of work (commit + publish)."""
    from shared.platform.uow import run_unit
    return run_unit(deps, lambda uow: fn(uow, *args, **kw))


def new_user_id() -> str:
    return new_id("usr")


def fund(deps, user_id: str, amount: int, asset: str = "USD") -> str:
    """Credit a user's wallet from top-up clearing (what a succeeded top-up does)."""
    clearing = accounts.ensure_system_account(deps.db, "topup_clearing", asset, deps.clock.now())
    tmpl = accounts.wallet_template(user_id, asset)
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=clearing,
                                               credit_account_id=tmpl.id, amount=amount,
                                               asset=asset, code="topup"), templates=[tmpl])
    return tmpl.id


def link_handle(deps, user_id: str, kind: str, value: str) -> None:
    """Give a user a phone or wallet handle (directory-shaped, as identity's flows would)."""
    db, now = deps.db, deps.clock.now()

    @firestore.transactional
    def run(txn):
        directory.claim_handle(db, txn, kind, value, user_id, now)
    run(db.transaction())


def generous_policy(**overrides) -> WalletPolicy:
    big = {a: 10**15 for a in ("USD", "KHR", "USDC", "MUSD", "ETH", "PPT")}
    tier = TierLimits(daily=big, monthly=big, velocity_count=10_000, velocity_window_seconds=600)
    return WalletPolicy(tiers={0: tier}, max_topup=DEFAULT_POLICY.max_topup, **overrides)


@pytest.fixture
def wallet(function_client):
    return function_client("wallet")


@pytest.fixture
def user(deps):
    """A signed-in user: (user_id, headers)."""
    uid, token = create_user_with_token(deps)
    return uid, auth_headers(token)


@pytest.fixture
def make_user(deps):
    def make(username: str | None = None):
        uid, token = create_user_with_token(deps, username=username)
        return uid, auth_headers(token)
    return make


@pytest.fixture
def policy(deps):
    """Install a wallet policy for this test: ``policy(WalletPolicy(...))``."""
    def install(p: WalletPolicy) -> WalletPolicy:
        deps.extras[wallet_config.POLICY_KEY] = p
        return p
    return install


@pytest.fixture
def wallet_server(deps):
    """The wallet function served over real HTTP (the Stripe simulator posts webhooks to it)."""
    import functions_framework
    from werkzeug.serving import make_server

    from shared.platform import manifest

    fn = manifest.function("wallet")
    app = functions_framework.create_app(target=fn["entry_point"],
                                         source=str(manifest.REPO_ROOT / "functions" / "wallet" / "main.py"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    with contextlib.suppress(Exception):
        server.server_close()


@pytest.fixture
def stripe(deps, wallet_server):
    """The Stripe simulator wired to our webhook, and the production adapter pointed at it."""
    from infra.local import stripe_sim
    from shared.adapters.stripe_cards import StripeTopUpProvider

    sim = stripe_sim.start(0, webhook_url=f"{wallet_server}/v1/wallet/webhooks/stripe")
    deps.extras[wallet_config.PROVIDER_KEY] = StripeTopUpProvider(
        sim.api_key, sim.webhook_secret, base_url=sim.url)
    yield sim
    sim.wait_idle()
    sim.stop()
