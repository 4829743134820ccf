"""Card payments of merchant intents end to end: the production Stripe adapter against the
loopback Stripe simulator over HTTP, whose signed webhooks reach the inbox (``/v1/inbound/stripe``
served by the in-process gateway) and are applied by ``inbound_tasks`` (the routing handler of
``shared/wallet/inbound.py``). Only the webhook pays an intent; disputes hold and release or post
the merchant's settlement money; the ledger audit finds nothing after each scenario."""
from __future__ import annotations

import json
import time

import pytest
import requests

from infra.local.stripe_sim import sign
from shared.ledger import accounts, audit
from shared.payments import card_method, disputes, http, settlement
from tests.payments.conftest import err
from tests.payments.test_intents_api import URL, create
from tests.support.polling import wait_for

card_method.register(http.api)      # until shared/payments/http.py registers it itself

RETURN = "https://shop.example/return?order=7"


@pytest.fixture
def stripe(deps, inprocess_gateway):
    """The simulator wired to the inbox; the card processor port pointed at it."""
    from infra.local import stripe_sim
    from shared.adapters.stripe_cards import StripeCardProcessor
    from shared.inbox.settings import SETTINGS_KEY, InboxSettings

    sim = stripe_sim.start(0, webhook_url=f"{inprocess_gateway}/v1/inbound/stripe")
    deps.extras[card_method.PROCESSOR_KEY] = StripeCardProcessor(
        sim.api_key, sim.webhook_secret, base_url=sim.url)
    deps.extras[SETTINGS_KEY] = InboxSettings(stripe_webhook_secret=sim.webhook_secret,
                                              backoff_base_seconds=0.2, backoff_factor=1)
    sim.inbound_url = f"{inprocess_gateway}/v1/inbound/stripe"
    yield sim
    sim.wait_idle()
    sim.stop()


def intent_doc(deps, pid):
    return deps.db.collection("payment_intents").document(pid).get().to_dict()


def events_of(deps, pid, prefix="payment_intent."):
    out = []
    for e in deps.db.collection("events").stream():
        d = e.to_dict()
        obj = (d.get("data") or {}).get("object") or {}
        if d.get("type", "").startswith(prefix) and (obj.get("id") == pid or
                                                     obj.get("payment_intent") == pid):
            out.append(d)
    return sorted(out, key=lambda d: d.get("created") or "")


def inbox_results(deps, etype):
    return [d.get("result") for d in (s.to_dict() for s in deps.db.collection("inbound_events").stream())
            if d.get("type") == etype and d.get("status") == "processed"]


def balance(deps, account_id):
    got = accounts.read_balances(deps.db, [account_id])
    return got[account_id][1] if account_id in got else accounts.Balances()


def assert_ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def pay(payments, pi, pm, *, key=None, secret=None, **extra):
    headers = {"Idempotency-Key": key} if key else {}
    body = {"payment_method": pm, "return_url": RETURN,
            "client_secret": pi["client_secret"] if secret is None else secret, **extra}
    return payments.post(f"{URL}/{pi['id']}/card", json=body, headers=headers)


def paid(deps, pid):
    return wait_for(lambda: (d := intent_doc(deps, pid))["status"] == "succeeded" and d)


def test_card_payment_is_settled_by_the_webhook_only(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner",), settings={"fee_schedule": {"card": {"percent_bps": 290,
                                                                      "fixed": {"USD": 30}}}})
    pi = create(payments, m.headers(), amount=2000).get_json()
    stripe.webhook_url = None                     # hold the webhooks back
    r = pay(payments, pi, "pm_card_visa", key="card-1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    # the processor said succeeded, but nothing is paid until its signed webhook arrives
    assert body["status"] == "processing" and body["amount_received"] == 0
    assert body["card"]["status"] == "succeeded" and body["card"]["attempts"] == 1
    assert body["next_action"] is None and body["settlement"] is None
    proc = stripe.intents[body["card"]["processor_payment_id"]]
    assert proc["metadata"]["payloom_intent_id"] == pi["id"] and proc["amount"] == 2000
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    assert balance(deps, settle_acc).posted == 0
    # the retried request replays; the processor saw one PaymentIntent
    again = pay(payments, pi, "pm_card_visa", key="card-1")
    assert again.get_json() == body and len(stripe.intents) == 1
    # now the webhook: delivered twice (Stripe may), stored and applied once
    stripe.webhook_url = stripe.inbound_url
    succeeded = next(e for e in stripe.events if e["type"] == "payment_intent.succeeded")
    stripe.resend(succeeded["id"])
    stripe.resend(succeeded["id"])
    done = paid(deps, pi["id"])
    stripe.wait_idle()
    assert done["amount_received"] == 2000 and done["method"] == "card"
    fee = 2000 * 290 // 10_000 + 30
    assert (done["settlement"]["amount"], done["settlement"]["fee"]) == (2000, fee)
    assert balance(deps, settle_acc).posted == 2000 - fee
    assert balance(deps, settlement.fees_template("USD", False).id).posted == fee
    clearing = accounts.system_account_id("topup_clearing", "USD", "test")
    assert balance(deps, clearing).posted == -2000          # the card clearing account paid
    # the same payment announced again under another event id: the receipt is keyed by the
    # processor's PaymentIntent, so nothing moves twice
    event = {**succeeded, "id": "evt_replayed_" + pi["id"][-8:]}
    raw = json.dumps(event).encode()
    resp = requests.post(stripe.inbound_url, data=raw, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign(stripe.webhook_secret, raw, int(time.time()))})
    assert resp.status_code == 200
    wait_for(lambda: "already_received" in inbox_results(deps, "payment_intent.succeeded"))
    assert balance(deps, settle_acc).posted == 2000 - fee
    types = [e["type"] for e in events_of(deps, pi["id"])]
    assert types.count("payment_intent.succeeded") == 1 and "payment_intent.processing" in types
    assert all(e["tenant"] == m.id for e in events_of(deps, pi["id"]))
    # a paid intent takes no second card
    r = pay(payments, pi, "pm_card_visa")
    assert r.status_code == 409 and err(r)["code"] == "intent_not_payable"
    assert_ledger_clean(deps)


def test_three_d_secure_redirect_then_webhook(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner", "developer"))
    pi = create(payments, m.headers(), amount=1500).get_json()
    r = pay(payments, pi, "pm_card_threeDSecure2Required")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "processing" and body["card"]["status"] == "requires_action"
    redirect = body["next_action"]["redirect_to_url"]
    assert redirect["url"].startswith(stripe.url + "/_sim/3ds/") and redirect["return_url"] == RETURN
    # the merchant's GET shows what the payer must do, as Stripe's does
    seen = payments.get(f"{URL}/{pi['id']}", headers=m.headers("developer")).get_json()
    assert seen["status"] == "processing" and seen["card"]["status"] == "requires_action"
    assert seen["next_action"]["redirect_to_url"]["url"] == redirect["url"]
    assert seen["card"]["processor_payment_id"] == body["card"]["processor_payment_id"]
    page = requests.get(redirect["url"], timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    done = requests.post(redirect["url"] + "/complete", data={"outcome": "succeed"},
                         allow_redirects=False, timeout=5)
    assert done.status_code == 302
    assert done.headers["Location"].startswith(RETURN + "&payment_intent=")
    assert "redirect_status=succeeded" in done.headers["Location"]
    doc = paid(deps, pi["id"])
    assert doc["amount_received"] == 1500 and doc["card"]["status"] == "succeeded"
    assert [t["status"] for t in doc["timeline"]] == ["requires_payment_method", "processing",
                                                      "succeeded"]
    after = payments.get(f"{URL}/{pi['id']}", headers=m.headers("developer")).get_json()
    assert after["next_action"] is None and after["card"]["status"] == "succeeded"
    assert_ledger_clean(deps)


def test_failed_authentication_then_another_card(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner",))
    pi = create(payments, m.headers(), amount=700).get_json()
    body = pay(payments, pi, "pm_card_authenticationRequired").get_json()
    url = body["next_action"]["redirect_to_url"]["url"]
    fail = requests.post(url + "/complete", data={"outcome": "fail"}, allow_redirects=False,
                         timeout=5)
    assert fail.status_code == 302 and "redirect_status=failed" in fail.headers["Location"]
    doc = wait_for(lambda: (d := intent_doc(deps, pi["id"]))["status"] ==
                   "requires_payment_method" and d)
    assert doc["card"]["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    wait_for(lambda: len([e for e in events_of(deps, pi["id"])
                          if e["type"] == "payment_intent.payment_failed"]) == 1)
    # still payable: the second attempt confirms the SAME processor PaymentIntent
    r = pay(payments, pi, "pm_card_visa")
    assert r.status_code == 200 and r.get_json()["card"]["attempts"] == 2
    assert len(stripe.intents) == 1
    paid(deps, pi["id"])
    stripe.wait_idle()
    assert len([e for e in events_of(deps, pi["id"]) if e["type"] == "payment_intent.payment_failed"]) == 1
    assert_ledger_clean(deps)


def test_declined_card_fails_once_and_the_intent_stays_payable(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner",))
    pi = create(payments, m.headers(), amount=900).get_json()
    r = pay(payments, pi, "pm_card_chargeDeclined", key="decline-1")
    assert r.status_code == 402, r.get_json()
    assert err(r)["type"] == "card_error" and err(r)["code"] == "card_declined"
    assert pay(payments, pi, "pm_card_chargeDeclined", key="decline-1").status_code == 402
    assert sum(1 for e in stripe.events if e["type"] == "payment_intent.payment_failed") == 1
    doc = intent_doc(deps, pi["id"])
    assert doc["status"] == "requires_payment_method"
    assert doc["card"]["last_payment_error"]["decline_code"] == "card_declined"
    # the processor's payment_failed webhook for the same charge adds nothing (whichever of the
    # answer and the webhook was applied first, the charge is counted once)
    wait_for(lambda: inbox_results(deps, "payment_intent.payment_failed"))
    failed = [e for e in events_of(deps, pi["id"]) if e["type"] == "payment_intent.payment_failed"]
    assert len(failed) == 1 and failed[0]["tenant"] == m.id
    # insufficient funds next: a second failure event (another charge)
    assert pay(payments, pi, "pm_card_chargeDeclinedInsufficientFunds").status_code == 402
    wait_for(lambda: len([e for e in events_of(deps, pi["id"])
                          if e["type"] == "payment_intent.payment_failed"]) == 2)
    assert pay(payments, pi, "pm_card_mastercard").status_code == 200
    doc = paid(deps, pi["id"])
    assert doc["card"]["attempts"] == 3 and len(stripe.intents) == 1
    assert_ledger_clean(deps)


def test_bad_requests_are_clear_4xx(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner", "viewer"))
    pi = create(payments, m.headers(), amount=500).get_json()
    crypto_only = create(payments, m.headers(), amount=500,
                         payment_method_types=["crypto"]).get_json()
    cases = [
        (pay(payments, pi, "pm_card_visa", secret=pi["id"] + "_secret_wrongwrongwrong"), 404, None),
        (payments.post(f"{URL}/{pi['id']}/card", json={"payment_method": "pm_card_visa",
                                                       "return_url": RETURN}), 401, None),
        (pay(payments, pi, "visa"), 400, None),
        (pay(payments, pi, "pm_card_visa", return_url="javascript:alert(1)"), 400, None),
        (pay(payments, pi, "pm_card_visa", extra_field=1), 400, None),
        (pay(payments, crypto_only, "pm_card_visa"), 400, "payment_method_not_accepted"),
        (payments.post(f"{URL}/pi_nope/card", json={"payment_method": "pm_card_visa",
                                                     "return_url": RETURN,
                                                     "client_secret": pi["client_secret"]}), 404, None),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, (resp.status_code, resp.get_json())
        if code:
            assert err(resp)["code"] == code
    # a viewer may not charge cards for the merchant; an owner may (no client secret)
    viewer = payments.post(f"{URL}/{pi['id']}/card", json={"payment_method": "pm_card_visa",
                                                           "return_url": RETURN},
                           headers=m.headers("viewer"))
    assert viewer.status_code == 403
    # a payment method the processor does not know: 400, and the claim is released at once
    unknown = pay(payments, pi, "pm_card_unknown")
    assert unknown.status_code == 400 and err(unknown)["code"] == "card_payment_invalid"
    assert intent_doc(deps, pi["id"])["status"] == "requires_payment_method"
    owner = payments.post(f"{URL}/{pi['id']}/card", json={"payment_method": "pm_card_visa",
                                                          "return_url": RETURN},
                          headers=m.headers("owner"))
    assert owner.status_code == 200, owner.get_json()
    paid(deps, pi["id"])


def _paid_card_intent(deps, payments, m, stripe, amount, pm="pm_card_visa"):
    pi = create(payments, m.headers(), amount=amount).get_json()
    assert pay(payments, pi, pm).status_code == 200
    doc = paid(deps, pi["id"])
    return pi, doc["card"]["processor_id"]


def _dispute_doc(deps, processor_id, stripe):
    def find():
        for d in stripe.disputes.values():
            if d["payment_intent"] == processor_id:
                snap = deps.db.collection("disputes").document(d["id"]).get()
                return snap.to_dict() if snap.exists else None
        return None
    return find


@pytest.mark.parametrize("outcome", ["lost", "won"])
def test_dispute_holds_then_posts_or_releases(deps, payments, make_merchant, stripe, outcome):
    m = make_merchant(("owner",))
    pi, proc_id = _paid_card_intent(deps, payments, m, stripe, 3000)
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    disputes_acc = disputes.disputes_template("USD", False).id
    assert balance(deps, settle_acc).available == 3000
    opened = requests.post(f"{stripe.url}/_sim/disputes",
                           data={"payment_intent": proc_id, "amount": 1200},
                           headers={"Authorization": f"Bearer {stripe.api_key}"}, timeout=5).json()
    doc = wait_for(_dispute_doc(deps, proc_id, stripe))
    assert (doc["amount"], doc["held_amount"], doc["uncovered_amount"]) == (1200, 1200, 0)
    assert doc["intent_id"] == pi["id"] and doc["tenant"] == m.id and doc["outcome"] is None
    b = balance(deps, settle_acc)
    assert (b.posted, b.available) == (3000, 1800)              # held, not yet taken
    # the created event again (another delivery): nothing more is held
    created = next(e for e in stripe.events if e["type"] == "charge.dispute.created")
    stripe.resend(created["id"])
    stripe.wait_idle()
    assert balance(deps, settle_acc).available == 1800
    requests.post(f"{stripe.url}/_sim/disputes/{opened['id']}/close", data={"outcome": outcome},
                  headers={"Authorization": f"Bearer {stripe.api_key}"}, timeout=5)
    closed = wait_for(lambda: (d := _dispute_doc(deps, proc_id, stripe)()) and d["outcome"] and d)
    assert closed["outcome"] == outcome
    b = balance(deps, settle_acc)
    if outcome == "lost":
        assert (b.posted, b.available) == (1800, 1800)
        assert balance(deps, disputes_acc).posted == 1200
    else:
        assert (b.posted, b.available) == (3000, 3000)
        assert balance(deps, disputes_acc).posted == 0
    closed_event = next(e for e in stripe.events if e["type"] == "charge.dispute.closed")
    stripe.resend(closed_event["id"])
    stripe.wait_idle()
    assert balance(deps, settle_acc).posted == (1800 if outcome == "lost" else 3000)
    types = [e["type"] for e in events_of(deps, opened["id"], prefix="dispute.")]
    assert sorted(types) == ["dispute.closed", "dispute.created"]
    assert all(e["tenant"] == m.id for e in events_of(deps, opened["id"], prefix="dispute."))
    assert_ledger_clean(deps)


def test_dispute_beyond_the_balance_holds_what_is_there(deps, payments, make_merchant, stripe):
    """pm_card_createDispute: the processor opens a dispute right after the payment; with a fee
    the merchant's settlement holds less than the disputed amount."""
    m = make_merchant(("owner",), settings={"fee_schedule": {"card": {"percent_bps": 1000}}})
    _, proc_id = _paid_card_intent(deps, payments, m, stripe, 1000, pm="pm_card_createDispute")
    doc = wait_for(_dispute_doc(deps, proc_id, stripe))
    assert (doc["amount"], doc["held_amount"], doc["uncovered_amount"]) == (1000, 900, 100)
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    assert balance(deps, settle_acc).available == 0
    # the merchant accepts the dispute through the processor's API: lost
    proc = deps.extras[card_method.PROCESSOR_KEY]
    assert proc.close_dispute(doc["id"]).outcome == "lost"
    wait_for(lambda: (d := _dispute_doc(deps, proc_id, stripe)()) and d["outcome"] == "lost")
    assert balance(deps, settle_acc).posted == 0
    assert_ledger_clean(deps)


def test_closed_before_created_and_unknown_payments(deps, payments, make_merchant, stripe):
    """Events may be applied out of order: a ``closed`` first opens and resolves in one batch;
    the late ``created`` changes nothing. A dispute of a payment we do not know (yet) is left
    for the inbox to retry."""
    from shared.platform.uow import run_unit
    m = make_merchant(("owner",))
    _, proc_id = _paid_card_intent(deps, payments, m, stripe, 800)
    dp = {"id": "dp_outoforder" + proc_id[-6:], "object": "dispute", "amount": 800,
          "currency": "usd", "charge": "ch_x", "payment_intent": proc_id, "reason": "fraudulent",
          "status": "lost", "created": int(time.time()), "livemode": False, "metadata": {}}
    closed = {"id": "evt_c", "object": "event", "type": "charge.dispute.closed", "data": {"object": dp}}
    created = {"id": "evt_o", "object": "event", "type": "charge.dispute.created",
               "data": {"object": {**dp, "status": "needs_response"}}}
    assert run_unit(deps, lambda uow: disputes.apply(uow, closed)) == "closed_lost"
    assert run_unit(deps, lambda uow: disputes.apply(uow, created)) == "already_closed"
    assert run_unit(deps, lambda uow: disputes.apply(uow, closed)) == "already_closed"
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    assert balance(deps, settle_acc).posted == 0
    stranger = {**created, "data": {"object": {**dp, "id": "dp_other", "payment_intent": "pi_unknown"}}}
    with pytest.raises(disputes.PaymentNotYetKnown):          # the inbox retries it
        run_unit(deps, lambda uow: disputes.apply(uow, stranger))
    assert_ledger_clean(deps)


def test_an_abandoned_challenge_may_be_paid_with_another_card(deps, payments, make_merchant, stripe):
    m = make_merchant(("owner",))
    pi = create(payments, m.headers(), amount=400).get_json()
    first = pay(payments, pi, "pm_card_threeDSecure2Required").get_json()
    assert first["status"] == "processing" and first["next_action"]
    r = pay(payments, pi, "pm_card_visa")                # the payer gives up on the challenge
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["card"]["attempts"] == 2 and r.get_json()["next_action"] is None
    doc = paid(deps, pi["id"])
    assert doc["amount_received"] == 400 and len(stripe.intents) == 1
    # the old challenge can no longer be completed
    url = first["next_action"]["redirect_to_url"]["url"]
    assert requests.post(url + "/complete", allow_redirects=False, timeout=5).status_code == 400
    assert_ledger_clean(deps)


def test_one_confirmation_at_a_time_and_an_outage_releases_the_claim(deps, payments,
                                                                     make_merchant, stripe):
    from shared.adapters.stripe_cards import StripeCardProcessor
    from shared.platform.errors import Conflict
    from shared.platform.uow import run_unit
    m = make_merchant(("owner",))
    pi = create(payments, m.headers(), amount=600).get_json()
    # a claim in flight refuses a second one (two clicks never charge twice)
    run_unit(deps, lambda uow: card_method._claim(uow, pi["id"], "pm_card_visa"))
    with pytest.raises(Conflict) as exc:
        run_unit(deps, lambda uow: card_method._claim(uow, pi["id"], "pm_card_visa"))
    assert exc.value.code == "card_payment_in_progress"
    r = pay(payments, pi, "pm_card_visa")
    assert r.status_code == 409 and err(r)["code"] == "card_payment_in_progress"
    card_method._release(deps, pi["id"], 1, None)
    # the processor is down: 503, nothing charged, the claim released for the retry
    good = deps.extras[card_method.PROCESSOR_KEY]
    deps.extras[card_method.PROCESSOR_KEY] = StripeCardProcessor(
        stripe.api_key, stripe.webhook_secret, base_url="http://127.0.0.1:9", timeout=2)
    down = pay(payments, pi, "pm_card_visa", key="outage-1")
    assert down.status_code == 503 and err(down)["code"] == "provider_unavailable"
    doc = intent_doc(deps, pi["id"])
    assert doc["status"] == "requires_payment_method" and doc["card"]["status"] != "confirming"
    deps.extras[card_method.PROCESSOR_KEY] = good
    again = pay(payments, pi, "pm_card_visa", key="outage-1")     # a 503 is never stored
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["card"]["attempts"] == 3
    paid(deps, pi["id"])
