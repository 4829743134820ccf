"""The SDK and the API agree on routes: every call the SDK makes is a route of the OpenAPI
document (method and path), and every route an API key may call is wrapped by the SDK. A route
added to the API, or renamed, fails here until the SDK follows."""
from __future__ import annotations

import json
import re

import payloom
import requests

from infra.local.gateway import Gateway
from shared.platform.openapi import build_openapi, manifest_routers
from shared.platform.router import SERVICE

# Routes an API key may call that the SDK leaves to client.request() on purpose: a user's own
# account and personal keys (the identity app's API, not a merchant integration's) and the
# platform operator's probes.
NOT_WRAPPED: set[tuple[str, str]] = {
    ("GET", "/v1/me"), ("GET", "/v1/me/api_keys"), ("GET", "/v1/me/api_keys/{key_id}"),
    ("GET", "/v1/platform/probes"), ("GET", "/v1/platform/probes/{probe_id}"),
    ("POST", "/v1/platform/probes"),
}


class Recorder(requests.Session):
    """A session that answers every request with an empty list and records it."""
    calls: list[tuple[str, str]] = []

    def request(self, method, url, **kw):
        path = url.split("://", 1)[1].split("/", 1)[1]
        Recorder.calls.append((method, "/" + path.split("?", 1)[0]))
        r = requests.Response()
        r.status_code = 200
        r.headers["Content-Type"] = "application/json"
        r._content = json.dumps({"object": "list", "data": [], "has_more": False, "url": "/"}).encode()
        return r


def every_sdk_call(c: payloom.Client) -> None:
    pi = c.PaymentIntent
    pi.create(amount=1, currency="USD")
    pi.retrieve("pi_1")
    pi.list()
    pi.modify("pi_1")
    pi.cancel("pi_1")
    pi.choose_crypto("pi_1", network="anvil", asset="ETH")
    pi.pay_with_card("pi_1", payment_method="pm", return_url="https://x")
    pi.pay("pi_1", client_secret="s")
    pi.qr_code("pi_1")
    pi.qr_code("pi_1", format="svg")
    c.Refund.create(payment_intent="pi_1")
    c.Refund.retrieve("re_1")
    c.Refund.list()
    c.Refund.list_for("pi_1")
    inv = c.Invoice
    inv.create(customer={}, currency="USD")
    inv.retrieve("in_1")
    inv.list()
    inv.modify("in_1")
    inv.delete("in_1")
    inv.finalize("in_1")
    inv.void("in_1")
    inv.mark_uncollectible("in_1")
    inv.list_lines("in_1")
    pl = c.PaymentLink
    pl.create(currency="USD")
    pl.retrieve("pl_1")
    pl.list()
    pl.modify("pl_1")
    pl.button("pl_1")
    pl.start_checkout("pl_1", client_key="k")
    we = c.WebhookEndpoint
    we.create(url="https://x", enabled_events=["*"])
    we.retrieve("we_1")
    we.list()
    we.modify("we_1")
    we.delete("we_1")
    we.enable("we_1")
    we.disable("we_1")
    we.rotate_secret("we_1")
    we.send_test("we_1")
    we.resend("we_1", event="evt_1")
    we.recover("we_1", since=0)
    we.list_attempts("we_1")
    we.list_deliveries("we_1")
    we.retrieve_delivery("we_1", delivery_id="wd_1")
    we.list_event_attempts("evt_1")
    c.Event.retrieve("evt_1")
    c.Event.list()
    c.Rate.retrieve(base="ETH", quote="USD")
    c.Rate.convert(from_="ETH", to="USD", amount="1")
    c.Rate.list_pairs()
    c.Report.settlements(date="2026-01-01")
    c.Report.settlements_csv(date="2026-01-01")
    c.Report.analytics(from_="2026-01-01", to="2026-01-02")
    m = c.Merchant
    m.create(business_name="x", country="KH", settlement_asset="USD")
    m.retrieve("mch_1")
    m.list()
    m.modify("mch_1")
    m.retrieve_settings("mch_1")
    m.modify_settings("mch_1")
    m.retrieve_branding("mch_1")
    m.modify_branding("mch_1")
    m.list_members("mch_1")
    p = c.Project
    p.create(name="x")
    p.retrieve("prj_1")
    p.list()
    p.modify("prj_1")
    p.delete("prj_1")
    p.create_api_key("prj_1", scopes=["payments:read"])
    k = c.ApiKey
    k.list()
    k.retrieve("key_1")
    k.roll("key_1")
    k.revoke("key_1")
    c.Balance.list()
    c.WalletTransaction.list()
    c.ChainNetwork.list()
    msg = c.Message
    msg.create(to="+85510234567", text="hi")
    msg.retrieve("msg_1")
    msg.list()
    msg.cancel("msg_1")
    msg.opt_out("+85510234567")
    msg.list_opt_outs()
    msg.remove_opt_out("rcp_1")
    msg.rotate_callback_secret()


def _route_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$")


def test_every_sdk_call_is_an_api_route_and_every_key_route_is_wrapped():
    Gateway()  # loads every function of the manifest, registering its routers
    Recorder.calls = []
    client = payloom.Client("sk_test_x", api_base="http://api.invalid", merchant="mch_1",
                            session_factory=Recorder)
    every_sdk_call(client)
    spec = build_openapi()
    routes = [(m.upper(), path, _route_regex(path)) for path, ops in spec["paths"].items() for m in ops]
    used: set[tuple[str, str]] = set()
    for method, path in Recorder.calls:
        matches = [(m, t) for m, t, rx in routes if m == method and rx.match(path)]
        # the most specific template wins (/attempts beats /{endpoint_id})
        assert matches, f"the SDK calls {method} {path}, which the API does not have"
        used.add(max(matches, key=lambda mt: mt[1].count("/") * 100 - mt[1].count("{")))

    key_routes = set()
    for router in manifest_routers():
        if not router.public_prefix:
            continue
        for route in router.routes:
            kinds = (route.auth,) if isinstance(route.auth, str) else route.auth
            if route.auth != SERVICE and "api_key" in kinds:
                full = router.public_prefix + ("" if route.path == "/" else route.path)
                key_routes.add((route.method, full))
    missing = key_routes - used - NOT_WRAPPED
    assert not missing, f"routes an API key may call that the SDK does not wrap: {sorted(missing)}"
