"""Fixtures for wallet tests: signed-in users, the wallet function's test client, wallet policies
and the Stripe simulator. Ledger helpers come from ``tests/ledger/conftest.py``."""
from __future__ import annotations

import pytest
from google.cloud import firestore

from shared.identity.users import directory
from shared.wallet import config as wallet_config
from shared.wallet.limits import DEFAULT_POLICY, TierLimits, WalletPolicy
from tests.support.identity import auth_headers, create_user_with_token

__all__ = ["link_handle", "generous_policy"]


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
def stripe(deps, inprocess_gateway):
    """The Stripe simulator wired to the inbox (``/v1/inbound/stripe``, served over real HTTP by
    the in-process gateway, sharing ``deps``, which also serves the ``inbound_tasks`` that
    credit the wallet), and the production adapter pointed at it."""
    from infra.local import stripe_sim
    from shared.adapters.stripe_cards import StripeTopUpProvider
    from shared.inbox.settings import SETTINGS_KEY, InboxSettings

    sim = stripe_sim.start(0, webhook_url=f"{inprocess_gateway}/v1/inbound/stripe")
    deps.extras[wallet_config.PROVIDER_KEY] = StripeTopUpProvider(
        sim.api_key, sim.webhook_secret, base_url=sim.url)
    deps.extras[SETTINGS_KEY] = InboxSettings(stripe_webhook_secret=sim.webhook_secret,
                                              backoff_base_seconds=0.2, backoff_factor=1)
    yield sim
    sim.wait_idle()
    sim.stop()
