"""Card refunds through the Stripe-protocol simulator: the intent is paid by a real processor
payment (its signed webhook through the inbox settles it), the refund holds the merchant's
share, the submit task calls the processor (twice: one processor refund), the answer posts the
holds; a refund the processor fails later (``pm_card_refundFail``) is failed by its signed
``refund.failed`` webhook, its holds voided and the amount refundable again."""
from __future__ import annotations

import pytest

import shared.refunds.inbound  # noqa: F401  (registers the refund.* handler in this process)
from shared.payments import card_events, card_method, settlement
from shared.refunds import card
from tests.refunds.conftest import PI_URL, URL, assert_ledger_clean, balance, events_of
from tests.support.polling import wait_for

CARD_FEES = {"fee_schedule": {"card": {"percent_bps": 290, "fixed": {"USD": 30}}}}


@pytest.fixture
def sim(deps, inprocess_gateway):
    """The Stripe simulator wired to the inbox over real HTTP (the in-process gateway serves
    ``inbound`` and ``inbound_tasks`` with this process's handlers), the adapter pointed at it."""
    from infra.local import stripe_sim
    from shared.adapters.stripe_cards import StripeTopUpProvider
    from shared.inbox.settings import SETTINGS_KEY, InboxSettings
    from shared.wallet import config as wallet_config

    s = stripe_sim.start(0, webhook_url=f"{inprocess_gateway}/v1/inbound/stripe")
    provider = StripeTopUpProvider(s.api_key, s.webhook_secret, base_url=s.url)
    deps.extras[wallet_config.PROVIDER_KEY] = provider
    deps.extras[card_method.PROCESSOR_KEY] = provider
    deps.extras[SETTINGS_KEY] = InboxSettings(stripe_webhook_secret=s.webhook_secret,
                                              backoff_base_seconds=0.2, backoff_factor=1)
    s.refund_failure_delay = 0.5
    yield s, provider
    s.wait_idle()
    s.stop()


def card_paid_intent(deps, payments, m, provider, payment_method="pm_card_visa", amount=1000):
    pi = payments.post(PI_URL, json={"amount": amount, "currency": "USD",
                                     "payment_method_types": ["card"]},
                       headers=m.headers()).get_json()
    provider.create_payment_intent(amount=card_events.processor_amount(amount, "USD"),
                                   currency="usd", payment_method=payment_method,
                                   metadata={card_events.METADATA_KEY: pi["id"]},
                                   idempotency_key=f"test-{pi['id']}")
    def paid():
        doc = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
        return doc if doc["status"] == "succeeded" else None
    return wait_for(paid)


def test_card_refund_through_the_processor(deps, payments, refunds, make_merchant, sim):
    s, provider = sim
    m = make_merchant(("owner",), settings=CARD_FEES)
    pi = card_paid_intent(deps, payments, m, provider)
    pid = pi["card"]["processor_id"]
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    assert balance(deps, settle_acc).posted == 1000 - 59                     # 2.9% + 30

    r = refunds.post(URL, json={"payment_intent": pi["id"], "amount": 500,
                                "reason": "requested_by_customer"}, headers=m.headers())
    assert r.status_code == 201, r.get_json()
    ref = r.get_json()
    assert ref["status"] == "pending" and ref["method"] == "card"
    assert (ref["ledger"]["merchant_share"], ref["ledger"]["fee_share"]) == (471, 29)
    assert balance(deps, settle_acc).debits_pending == 471
    # the task (twice, as Cloud Tasks may): one processor refund, one posting
    outcomes = [card.submit(deps, ref["id"]) for _ in range(2)]
    # (the processor's refund.created webhook may record the success first: then "done")
    assert outcomes[0] in ("succeeded", "done") and outcomes[1] == "done"
    doc = deps.db.collection("refunds").document(ref["id"]).get().to_dict()
    processor_refund = provider.retrieve_refund(doc["processor"]["id"])
    assert processor_refund.status == "succeeded" and processor_refund.amount == 500
    assert processor_refund.payment_intent == pid
    assert processor_refund.metadata["payloom_refund"] == ref["id"]
    assert len([x for x in s.refunds.values() if x.get("payment_intent") == pid]) == 1
    bal = balance(deps, settle_acc)
    assert bal.debits_pending == 0 and bal.posted == 941 - 471
    got = refunds.get(f"{URL}/{ref['id']}", headers=m.headers()).get_json()
    assert got["status"] == "succeeded" and got["processor_refund"] == doc["processor"]["id"]
    # the processor's own webhooks (refund.created) arrive later and change nothing
    s.wait_idle()
    assert events_of(deps, ref["id"]) == ["refund.created", "refund.succeeded"]
    assert_ledger_clean(deps)


def test_processor_fails_the_refund_later_by_webhook(deps, payments, refunds, make_merchant, sim):
    _, provider = sim
    m = make_merchant(("owner",), settings=CARD_FEES)
    pi = card_paid_intent(deps, payments, m, provider, payment_method="pm_card_refundFail")
    settle_acc = settlement.settlement_template(m.id, "USD", False).id
    r = refunds.post(URL, json={"payment_intent": pi["id"]}, headers=m.headers())
    assert r.status_code == 201 and r.get_json()["amount"] == 1000
    rid = r.get_json()["id"]
    assert card.submit(deps, rid) in ("pending", "done")
    assert balance(deps, settle_acc).debits_pending == 941
    # the simulator fails it and sends refund.updated + refund.failed, signed, to the inbox
    def failed_refund():
        doc = deps.db.collection("refunds").document(rid).get().to_dict()
        return doc if doc["status"] == "failed" else None
    failed = wait_for(failed_refund)
    assert failed["failure_reason"] == "expired_or_canceled_card"
    bal = balance(deps, settle_acc)
    assert bal.debits_pending == 0 and bal.posted == 941
    intent = deps.db.collection("payment_intents").document(pi["id"]).get().to_dict()
    assert intent["refund_totals"]["amount"] == 0
    assert events_of(deps, rid) == ["refund.created", "refund.failed"]
    assert card.submit(deps, rid) == "done"
    assert_ledger_clean(deps)
