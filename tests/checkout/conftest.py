"""Fixtures for the hosted payment page: a merchant (helper M's documents), intents made through
the payments service, the price simulator behind the rates cache, the checkout function's own
test client, and a page reader that checks the headers every page must carry."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from shared.merchants import branding
from shared.merchants import settings as msettings
from shared.merchants import store
from shared.payments import intents
from shared.payments.models import CreateIntent
from shared.platform.auth import Principal
from shared.platform.ids import new_id
from shared.platform.uow import run_unit

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def prices(deps):
    """The CoinGecko-protocol simulator behind the rates cache (ETH 3000 USD, KHR 4100/USD)."""
    from infra.local import price_sim
    from shared.adapters.price_coingecko import CoinGeckoPriceFeed
    from shared.rates.config import FEED_KEY
    server, url = price_sim.start(api_key="CG-checkout-test")
    deps.extras[FEED_KEY] = CoinGeckoPriceFeed("CG-checkout-test", base_url=url + "/api/v3",
                                               timeout=2.0)
    yield server
    server.stop()


@pytest.fixture
def stripe(deps, inprocess_gateway):
    """The Stripe-protocol simulator, its webhooks into the inbox, the card port pointed at it."""
    from infra.local import stripe_sim
    from shared.adapters.stripe_cards import StripeCardProcessor
    from shared.inbox.settings import SETTINGS_KEY, InboxSettings
    from shared.payments import card_method
    sim = stripe_sim.start(0, webhook_url=f"{inprocess_gateway}/v1/inbound/stripe")
    deps.extras[card_method.PROCESSOR_KEY] = StripeCardProcessor(sim.api_key, sim.webhook_secret,
                                                                 base_url=sim.url)
    deps.extras[SETTINGS_KEY] = InboxSettings(stripe_webhook_secret=sim.webhook_secret,
                                              backoff_base_seconds=0.2, backoff_factor=1)
    yield sim
    sim.wait_idle()
    sim.stop()


@dataclasses.dataclass
class Shop:
    deps: Any
    id: str
    principal: Principal

    def intent(self, amount=1000, currency="USD", *, live=False, **kw):
        """A payment intent and its client secret (the page's URL token)."""
        principal = dataclasses.replace(self.principal, livemode=live)
        body = CreateIntent(amount=amount, currency=currency, **kw)
        pi = run_unit(self.deps, lambda uow: intents.create(uow, principal, body, None))
        return pi.id, pi.client_secret

    def doc(self, intent_id):
        return intents.intent_ref(self.deps.db, intent_id).get().to_dict()

    def brand(self, **fields):
        body = branding.UpdateBranding(**fields)
        run_unit(self.deps, lambda uow: branding.update_branding(uow, self.id, body))


@pytest.fixture
def make_shop(deps, prices):
    def make(name="Angkor Coffee", settings: dict[str, Any] | None = None, xpub=True) -> Shop:
        from shared.chain import hd
        mch = new_id("mch")
        now = deps.clock.now()
        store.merchant_ref(deps.db, mch).set({
            "id": mch, "business_name": name, "country": "KH", "settlement_asset": "USD",
            "status": "active", "created_by": "usr_test", "created_at": now, "updated_at": now,
            "owners": ["usr_test"], "member_count": 1})
        stored = dict(settings or {})
        if xpub:          # a watch-only xpub of the merchant's own wallet: deposit addresses
            stored["xpub"] = hd.CustodialSeed.generate().tree().xpub() if xpub is True else xpub
        if stored:
            msettings.settings_ref(deps.db, mch).set({"merchant_id": mch, **stored,
                                                      "updated_at": now})
        principal = Principal(kind="api_key", id=new_id("key"), tenant_id=mch,
                              scopes=frozenset({"*"}), livemode=False)
        return Shop(deps, mch, principal)
    return make


@pytest.fixture
def shop(make_shop):
    return make_shop()


@pytest.fixture
def client(function_client):
    return function_client("checkout")


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def assert_page_headers(resp) -> None:
    """What every HTML page of checkout must send."""
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "no-referrer")
    assert resp.headers["X-Frame-Options"] == "DENY"
