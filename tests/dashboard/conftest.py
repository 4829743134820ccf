"""Dashboard test wiring: the ``dashboard`` function served by functions-framework's test client
(one client per member: each has its own cookie jar), real users signing in through the form,
merchants with a member of every role, wallet payments made through the payments services, and
webhook endpoints that deliver to the loopback receiver."""
from __future__ import annotations

import html
import re
import secrets

import functions_framework
import pytest

from infra.local.simserver import start_in_thread
from infra.local.webhook_sim import WebhookSimServer
from shared.adapters.kms import LocalKms
from shared.merchants import context
from shared.payments import intents, wallet_method
from shared.payments.models import CreateIntent, PayWithWallet
from shared.platform import manifest
from shared.platform.auth import Principal
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.outbox import Event
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, endpoints, fanout
from shared.webhooks.models import CreateEndpoint
from tests.ledger.conftest import fund
from tests.payments.conftest import Merchant, make_merchant  # noqa: F401  (fixture)
from tests.support.identity import (
    DEFAULT_PASSWORD,
    create_user_with_token,
    use_fast_password_hashing,
)
from tests.support.polling import wait_for
from tests.support.webhooks import fast_settings

ROOT = "/dashboard"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def wiring(deps):
    use_fast_password_hashing(deps)
    deps.extras["platform.kms"] = LocalKms.generate()
    context.CACHE.clear()
    return deps


@pytest.fixture
def app(wiring):
    fn = manifest.function("dashboard")
    return functions_framework.create_app(
        target=fn["entry_point"], source=str(manifest.REPO_ROOT / "functions" / "dashboard" / "main.py"))


class Browser:
    """One member's browser: a test client with its own cookies, posting forms with the CSRF
    token of the pages it opened (as a browser does)."""

    def __init__(self, client):
        self.client = client
        self.csrf = ""
        # its own address: the sign-in capacity limit is counted per IP in process memory,
        # so a whole test run signing in from 127.0.0.1 would trip it
        client.environ_base["REMOTE_ADDR"] = f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"

    def _remember(self, resp):
        found = _CSRF_RE.search(resp.get_data(as_text=True)) if resp.content_type.startswith("text/html") else None
        if found:
            self.csrf = html.unescape(found.group(1))
        return resp

    def get(self, path: str, **kw):
        return self._remember(self.client.get(ROOT + path, **kw))

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kw):
        if csrf and not self.csrf:
            self.get("/signin")
        form = {**({"csrf_token": self.csrf} if csrf else {}), **(data or {})}
        return self._remember(self.client.post(ROOT + path, data=form, **kw))

    def cookie(self, name: str):
        return self.client.get_cookie(name, path=ROOT)

    def sign_in(self, email: str, password: str = DEFAULT_PASSWORD):
        r = self.post("/signin", {"email": email, "password": password})
        assert r.status_code == 303, r.get_data(as_text=True)[:500]
        return r


def text(resp) -> str:
    return resp.get_data(as_text=True)


def email_of(deps, user_id: str) -> str:
    return deps.db.collection("users").document(user_id).get().get("email")


@pytest.fixture
def browser(app):
    """``browser()``: a fresh browser (no cookies)."""
    return lambda: Browser(app.test_client())


@pytest.fixture
def shop(make_merchant):  # noqa: F811
    return make_merchant(("owner", "admin", "developer", "support", "viewer"))


@pytest.fixture
def member(wiring, browser, shop):
    """``member(role)``: a browser signed in as the shop's member with that role."""
    def sign_in(role: str = "owner", merchant: Merchant | None = None) -> Browser:
        b = browser()
        b.sign_in(email_of(wiring, (merchant or shop).users[role][0]))
        return b
    return sign_in


def owner_principal(m: Merchant, *, livemode: bool = False) -> Principal:
    uid = m.users["owner"][0]
    return Principal(kind="user", id=uid, tenant_id=m.id, role="owner", actor_id=uid,
                     livemode=livemode)


@pytest.fixture
def payer(wiring):
    uid, _ = create_user_with_token(wiring)
    fund(wiring, uid, 1_000_000)
    return uid


def paid_intent(deps, m: Merchant, payer_id: str, amount: int = 1000, *, livemode: bool = False,
                email: str | None = None, description: str | None = None):
    """An intent of ``m`` paid from the payer's wallet, through the payments services."""
    body = CreateIntent(amount=amount, currency="USD", customer_email=email,
                        description=description)
    made = run_unit(deps, lambda uow: intents.create(uow, owner_principal(m, livemode=livemode),
                                                     body, None))
    payer = Principal(kind="user", id=payer_id, tenant_id=payer_id)
    return run_unit(deps, lambda uow: wallet_method.pay(
        uow, payer, made.id, PayWithWallet(client_secret=made.client_secret)))


def open_intent(deps, m: Merchant, amount: int = 500, *, livemode: bool = False):
    body = CreateIntent(amount=amount, currency="USD")
    return run_unit(deps, lambda uow: intents.create(uow, owner_principal(m, livemode=livemode),
                                                     body, None))


def endpoint_of(deps, m: Merchant, url: str, events=("payment_intent.*",), *, livemode=False):
    body = CreateEndpoint(url=url, enabled_events=list(events))
    return run_unit(deps, lambda uow: endpoints.create(uow, owner_principal(m, livemode=livemode), body))


def fan_out_events_of(deps, object_id: str) -> list[str]:
    """What the webhooks consumer does for the events about ``object_id``; returns their ids."""
    ids = []
    for snap in deps.db.collection(EVENTS).stream():
        doc = snap.to_dict()
        if ((doc.get("data") or {}).get("object") or {}).get("id") == object_id:
            fanout.fan_out(deps, Event(**{k: doc[k] for k in Event.model_fields if k in doc}))
            ids.append(doc["id"])
    return ids


@pytest.fixture
def receiver(wiring):
    """The loopback webhook receiver, with the delivery schedule compressed."""
    wiring.extras["webhooks.settings"] = fast_settings()
    server, _ = start_in_thread(WebhookSimServer(0), "webhook-sim")
    yield server
    server.stop()


def delivered(deps, event_id: str, endpoint_id: str, run: int = 1) -> dict:
    """Wait until the event's delivery to the endpoint succeeded in its ``run``-th run."""
    def check():
        snap = deliveries.ref(deps.db, deliveries.delivery_id(event_id, endpoint_id)).get()
        doc = snap.to_dict() if snap.exists else None
        return doc if doc and doc["status"] == "succeeded" and doc["run"] == run else None
    return wait_for(check, timeout=20)
