"""The card-processor port without emulators: the production adapter against the Stripe
simulator over HTTP (3-D Secure, refunds, disputes, idempotency), the pure rules of the card
method, and the inbox routing by metadata."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from infra.local import stripe_sim
from shared.adapters.stripe_cards import (Dispute, ProviderDeclined, Refund, StripeCardProcessor,
                                          verify_stripe_signature)
from shared.payments import card_events
from shared.platform.errors import InvalidRequest


class Receiver:
    """A plain HTTP endpoint recording what the simulator delivers (signature checked)."""

    def __init__(self, secret_holder):
        self.events: list[dict] = []
        self.holder = secret_holder
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                verify_stripe_signature(raw, self.headers["Stripe-Signature"],
                                        outer.holder["secret"], int(time.time()))
                outer.events.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def types(self):
        return [e["type"] for e in self.events]


@pytest.fixture
def sim():
    holder: dict = {}
    rec = Receiver(holder)
    s = stripe_sim.start(0, webhook_url=rec.url)
    holder["secret"] = s.webhook_secret
    s.receiver = rec
    s.refund_failure_delay = 0.05
    yield s
    s.wait_idle()
    s.stop()
    rec.server.shutdown()


@pytest.fixture
def proc(sim):
    return StripeCardProcessor(sim.api_key, sim.webhook_secret, base_url=sim.url)


def paid_intent(proc, pm="pm_card_visa", amount=5000):
    pi = proc.create_payment_intent(amount=amount, currency="usd", payment_method=None,
                                    metadata={"payloom_intent_id": "pi_x"},
                                    idempotency_key=f"k-{pm}-{amount}", confirm=False)
    return proc.confirm_payment_intent(pi.id, payment_method=pm, return_url="https://r.example/x")


def test_three_d_secure_redirect_protocol(sim, proc):
    pi = paid_intent(proc, "pm_card_threeDSecure2Required")
    assert pi.status == "requires_action" and pi.redirect_url.startswith(sim.url + "/_sim/3ds/")
    assert pi.next_action["redirect_to_url"]["return_url"] == "https://r.example/x"
    # without a return_url Stripe asks for its SDK (which we cannot drive): no redirect URL
    other = proc.create_payment_intent(amount=100, currency="usd", payment_method=None,
                                       metadata={}, idempotency_key="k-sdk", confirm=False)
    sdk = proc.confirm_payment_intent(other.id, payment_method="pm_card_authenticationRequired")
    assert sdk.status == "requires_action" and sdk.redirect_url is None
    assert card_events.next_action_of(sdk.next_action) is None
    # the challenge page needs no key; the API does
    assert requests.get(pi.redirect_url, timeout=5).status_code == 200
    assert requests.get(f"{sim.url}/v1/payment_intents/{pi.id}", timeout=5).status_code == 401
    r = requests.post(pi.redirect_url + "/complete", data={"outcome": "succeed"},
                      allow_redirects=False, timeout=5)
    assert r.status_code == 302 and "redirect_status=succeeded" in r.headers["Location"]
    assert "payment_intent_client_secret=" in r.headers["Location"]
    again = requests.post(pi.redirect_url + "/complete", allow_redirects=False, timeout=5)
    assert again.status_code == 400                         # completed once only
    got = proc.retrieve_payment_intent(pi.id)
    assert got.status == "succeeded" and got.latest_charge.startswith("ch_")
    sim.wait_idle()
    assert sim.receiver.types().count("payment_intent.succeeded") == 1
    assert "payment_intent.requires_action" in sim.receiver.types()


def test_decline_carries_the_charge_and_a_new_attempt_may_succeed(sim, proc):
    pi = proc.create_payment_intent(amount=300, currency="usd", payment_method=None,
                                    metadata={}, idempotency_key="k-decl", confirm=False)
    with pytest.raises(ProviderDeclined) as exc:
        proc.confirm_payment_intent(pi.id, payment_method="pm_card_chargeDeclined",
                                    idempotency_key="c1")
    first = exc.value.intent.last_payment_error["charge"]
    assert exc.value.code == "card_declined" and first.startswith("ch_")
    with pytest.raises(ProviderDeclined) as exc2:                # same key: the stored answer
        proc.confirm_payment_intent(pi.id, payment_method="pm_card_chargeDeclined",
                                    idempotency_key="c1")
    assert exc2.value.intent.last_payment_error["charge"] == first
    ok = proc.confirm_payment_intent(pi.id, payment_method="pm_card_visa", idempotency_key="c2")
    assert ok.status == "succeeded" and ok.latest_charge != first


def test_refunds_partial_full_idempotent_and_refused(sim, proc):
    pi = paid_intent(proc, amount=5000)
    r1 = proc.create_refund(pi.id, 2000, "ref-1", metadata={"payloom_refund_id": "re_1"})
    assert isinstance(r1, Refund) and (r1.status, r1.amount, r1.payment_intent) == ("succeeded", 2000, pi.id)
    assert r1.metadata == {"payloom_refund_id": "re_1"}
    assert proc.create_refund(pi.id, 2000, "ref-1", metadata={"payloom_refund_id": "re_1"}).id == r1.id
    assert len(sim.refunds) == 1                                # the retry refunded nothing more
    with pytest.raises(InvalidRequest) as too_much:
        proc.create_refund(pi.id, 3001, "ref-2")
    assert too_much.value.param == "amount"
    rest = proc.create_refund(pi.id, None, "ref-3")               # what is left
    assert rest.amount == 3000 and proc.retrieve_refund(rest.id).status == "succeeded"
    with pytest.raises(InvalidRequest):
        proc.create_refund(pi.id, 1, "ref-4")                     # fully refunded
    unpaid = proc.create_payment_intent(amount=100, currency="usd", payment_method=None,
                                        metadata={}, idempotency_key="k-unpaid", confirm=False)
    with pytest.raises(InvalidRequest):
        proc.create_refund(unpaid.id, 100, "ref-5")
    sim.wait_idle()
    refunded = [e for e in sim.receiver.events if e["type"] == "charge.refunded"]
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [2000, 5000]
    assert refunded[-1]["data"]["object"]["metadata"] == {"payloom_intent_id": "pi_x"}


def test_a_refund_that_fails_later(sim, proc):
    pi = paid_intent(proc, "pm_card_refundFail", amount=1000)
    r = proc.create_refund(pi.id, 1000, "ref-f")
    assert r.status == "pending"
    sim.wait_idle()
    assert proc.retrieve_refund(r.id).status == "failed"
    assert proc.retrieve_refund(r.id).failure_reason == "expired_or_canceled_card"
    assert {"refund.created", "refund.updated", "refund.failed"} <= set(sim.receiver.types())
    assert "charge.refunded" not in sim.receiver.types()


def test_disputes_open_close_and_parse(sim, proc):
    pi = paid_intent(proc, amount=4000)
    auth = {"Authorization": f"Bearer {sim.api_key}"}
    assert requests.post(f"{sim.url}/_sim/disputes", data={"payment_intent": pi.id},
                         timeout=5).status_code == 401
    dp = requests.post(f"{sim.url}/_sim/disputes", data={"payment_intent": pi.id, "amount": 1500},
                       headers=auth, timeout=5).json()
    d = proc.retrieve_dispute(dp["id"])
    assert (d.amount, d.payment_intent, d.status, d.outcome) == (1500, pi.id, "needs_response", None)
    assert d.evidence_due_by and d.charge == pi.latest_charge
    won = requests.post(f"{sim.url}/_sim/disputes/{dp['id']}/close", data={"outcome": "won"},
                        headers=auth, timeout=5).json()
    assert Dispute.from_json(won).outcome == "won"
    # closing again sends nothing more; accepting a closed dispute changes nothing
    assert proc.close_dispute(dp["id"]).outcome == "won"
    sim.wait_idle()
    assert sim.receiver.types().count("charge.dispute.created") == 1
    assert sim.receiver.types().count("charge.dispute.closed") == 1
    unpaid = proc.create_payment_intent(amount=100, currency="usd", payment_method=None,
                                        metadata={}, idempotency_key="k-u2", confirm=False)
    assert requests.post(f"{sim.url}/_sim/disputes", data={"payment_intent": unpaid.id},
                         headers=auth, timeout=5).status_code == 400
    for bad in ({"object": "charge"}, {"object": "dispute", "id": "dp_1", "status": "lost",
                                       "amount": "12", "currency": "usd"}, None):
        with pytest.raises(ValueError):
            Dispute.from_json(bad)
    assert Dispute.from_json({"object": "dispute", "id": "dp_1", "status": "warning_closed",
                              "amount": 5, "currency": "USD", "payment_intent": None,
                              "charge": {"id": "ch_1"}}).outcome == "won"


def test_pure_rules():
    assert card_events.processor_amount(1234, "USD") == 1234
    assert card_events.processor_amount(4000, "KHR") == 400_000      # KHR: scale 0, Stripe 2
    assert card_events.from_processor_amount(400_050, "KHR") == 4001  # rounded up
    with pytest.raises(InvalidRequest):
        card_events.processor_amount(1, "ETH")
    err = card_events.error_of({"type": "card_error", "code": "card_declined", "charge": "ch_1",
                                "payment_method": {"card": {"last4": "4242"}}, "decline_code": ""})
    assert err == {"type": "card_error", "code": "card_declined", "charge": "ch_1"}
    assert card_events.error_of("x") is None
    assert card_events.next_action_of({"type": "redirect_to_url",
                                       "redirect_to_url": {"url": "https://a/b"}}) == {
        "type": "redirect_to_url", "redirect_to_url": {"url": "https://a/b", "return_url": None}}
    assert card_events.next_action_of({"type": "redirect_to_url", "redirect_to_url": {"url": 5}}) is None


def test_inbox_routing_by_metadata(monkeypatch):
    from shared.inbox import handlers
    from shared.wallet import inbound, service
    calls = []
    monkeypatch.setattr(service, "apply_card_event", lambda uow, e: calls.append("wallet") or "w")
    monkeypatch.setattr(card_events, "apply", lambda uow, e: calls.append("card") or "c")

    def ev(md):
        return {"type": "payment_intent.succeeded", "data": {"object": {"metadata": md}}}
    route = handlers.handler_for("stripe", "payment_intent.succeeded")
    assert route is inbound.route_payment_intent
    assert route(None, ev({"topup_id": "tpu_1"})) == "w"
    assert route(None, ev({"payloom_intent_id": "pi_1"})) == "c"
    assert route(None, ev({})) == "ignored" and route(None, {"data": "x"}) == "ignored"
    assert calls == ["wallet", "card"]
    assert handlers.handler_for("stripe", "charge.dispute.closed") is inbound.route_dispute
