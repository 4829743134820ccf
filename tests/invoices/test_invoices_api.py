"""Invoices over HTTP on the emulators: drafts and totals, finalization (number, intent, hosted
URL) once under concurrency and gap-free across invoices, paid through the intent's wallet
payment and the events consumer, void and uncollectible, tenant/mode isolation, hostile input."""
from __future__ import annotations

import threading
import time

import pytest

from shared.invoices import invoices, numbering
from shared.ledger import audit
from shared.platform.errors import Conflict, NotFound
from shared.platform.outbox import Event
from tests.invoices.conftest import INVOICES, events_of
from tests.ledger.conftest import fund
from tests.payments.conftest import err
from tests.support.identity import auth_headers

LINES = [{"description": "Espresso", "quantity": 3, "unit_amount": 333},
         {"description": "Cake", "quantity": 1, "unit_amount": 1250, "tax_rate_bps": 0}]


def draft(client, headers, **body):
    body = {"customer": {"email": "Ann@Example.com", "name": "Ann"}, "currency": "USD",
            "lines": LINES, "default_tax_rate_bps": 750, **body}
    r = client.post(INVOICES, json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def finalize(client, headers, invoice_id):
    return client.post(f"{INVOICES}/{invoice_id}/finalize", headers=headers)


def doc_of(deps, invoice_id):
    return deps.db.collection("invoices").document(invoice_id).get().to_dict()


def ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def test_draft_update_finalize(deps, invoices_client, payments, merchant):
    h = merchant.headers("developer")
    inv = draft(invoices_client, h, memo="Thanks", metadata={"order": "42"},
                discount={"percent_off_bps": 1000}, due_date=int(time.time()) + 30 * 86400)
    assert inv["object"] == "invoice" and inv["status"] == "draft" and inv["number"] is None
    assert inv["customer"] == {"email": "ann@example.com", "name": "Ann"}
    # 999 + 1250 = 2249; 10 % off = 224.9 → 225, allocated 100 / 125 (largest remainder);
    # tax 7.5 % on (999 − 100) = 67.425 → 67; the cake line is zero-rated
    assert inv["subtotal"] == 2249 and inv["total_discount"] == 225
    assert [x["discount_amount"] for x in inv["lines"]["data"]] == [100, 125]
    assert [x["tax_amount"] for x in inv["lines"]["data"]] == [67, 0]
    assert inv["total_tax"] == 67 and inv["total"] == 2249 - 225 + 67 == inv["amount_due"]
    assert inv["lines"]["total_count"] == 2 and inv["payment_intent"] is None
    # update the draft: lines replaced, discount cleared, totals recomputed
    r = invoices_client.post(f"{INVOICES}/{inv['id']}", json={
        "lines": [{"description": "Tea", "quantity": 2, "unit_amount": 500}], "discount": None},
        headers=h)
    assert r.status_code == 200, r.get_json()
    up = r.get_json()
    assert (up["subtotal"], up["total_discount"], up["total_tax"], up["total"]) == (1000, 0, 75, 1075)
    assert up["memo"] == "Thanks" and up["metadata"] == {"order": "42"}
    r = finalize(invoices_client, h, inv["id"])
    assert r.status_code == 200, r.get_json()
    fin = r.get_json()
    prefix = numbering.prefix(merchant.id)
    assert fin["status"] == "open" and fin["number"] == f"TEST-{prefix}-0001"
    assert fin["hosted_invoice_url"].endswith(f"/pay/invoice/{inv['id']}")
    assert fin["finalized_at"] and fin["payment_intent"].startswith("pi_")
    # the intent: amount = total, the invoice named in its metadata, long enough to be paid
    pi = payments.get(f"/v1/payment_intents/{fin['payment_intent']}", headers=h).get_json()
    assert pi["amount"] == 1075 and pi["currency"] == "USD" and pi["status"] == "requires_payment_method"
    assert pi["metadata"] == {"invoice": inv["id"], "invoice_number": fin["number"]}
    assert pi["customer_email"] == "ann@example.com"
    assert pi["expires_at"] - pi["created"] == invoices.MAX_INTENT_S
    # the hosted page can recover the intent's client secret (sealed at rest)
    stored = doc_of(deps, inv["id"])
    assert "ct" in stored["intent_client_secret"]
    assert invoices.payer_client_secret(deps, stored).startswith(pi["id"] + "_secret_")
    # finalized is immutable; finalizing again is refused
    again = finalize(invoices_client, h, inv["id"])
    assert again.status_code == 409 and err(again)["code"] == "invoice_unexpected_state"
    r = invoices_client.post(f"{INVOICES}/{inv['id']}", json={"memo": "x"}, headers=h)
    assert r.status_code == 409
    r = invoices_client.delete(f"{INVOICES}/{inv['id']}", headers=h)
    assert r.status_code == 409
    # events: created then finalized, public and declared (checked at emit)
    types = [e.type for e in events_of(deps, "invoice.created", "invoice.finalized")]
    assert types == ["invoice.created", "invoice.finalized"]


def test_numbers_are_gap_free_per_merchant_and_mode(deps, invoices_client, make_merchant):
    a, b = make_merchant(("owner",)), make_merchant(("owner",))
    got = []
    for m, live in ((a, False), (a, False), (b, False), (a, True), (a, False)):
        inv = draft(invoices_client, m.headers(live=live))
        got.append(finalize(invoices_client, m.headers(live=live), inv["id"]).get_json()["number"])
    pa, pb = numbering.prefix(a.id), numbering.prefix(b.id)
    assert got == [f"TEST-{pa}-0001", f"TEST-{pa}-0002", f"TEST-{pb}-0001", f"{pa}-0001",
                   f"TEST-{pa}-0003"]
    # a refused finalization (no lines) takes no number
    empty = draft(invoices_client, a.headers(), lines=[])
    r = finalize(invoices_client, a.headers(), empty["id"])
    assert r.status_code == 400 and err(r)["code"] == "invoice_no_lines"
    inv = draft(invoices_client, a.headers())
    assert finalize(invoices_client, a.headers(), inv["id"]).get_json()["number"] == f"TEST-{pa}-0004"


def test_concurrent_finalization_one_number_one_intent(deps, function_client, make_merchant):
    m = make_merchant(("owner",))
    setup = function_client("invoices")
    same = draft(setup, m.headers())
    others = [draft(setup, m.headers()) for _ in range(3)]
    targets = [same["id"]] * 5 + [o["id"] for o in others]   # 5 racers on one, 3 on others
    results: list[tuple[str, int, dict]] = []
    barrier = threading.Barrier(len(targets))

    def go(invoice_id):
        client = function_client("invoices")
        barrier.wait()
        r = finalize(client, m.headers(), invoice_id)
        results.append((invoice_id, r.status_code, r.get_json()))

    threads = [threading.Thread(target=go, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_same = [(c, b) for i, c, b in results if i == same["id"]]
    assert [c for c, _ in on_same].count(200) == 1, on_same
    assert all(c == 409 and b["error"]["code"] in ("invoice_unexpected_state", "contention")
               or c == 503 for c, b in on_same if c != 200), on_same
    assert all(c == 200 for i, c, _ in results if i != same["id"]), results
    # gap-free: four invoices, numbers 1..4, each once
    numbers = sorted(doc_of(deps, i)["number"] for i in {same["id"], *[o["id"] for o in others]})
    assert numbers == [numbering.format_number(m.id, False, n) for n in (1, 2, 3, 4)]
    counter = numbering.counter_ref(deps.db, m.id, False).get().to_dict()
    assert counter["last"] == 4
    # one intent for the raced invoice
    intents = [d.to_dict() for d in deps.db.collection("payment_intents").stream()
               if (d.to_dict().get("metadata") or {}).get("invoice") == same["id"]]
    assert len(intents) == 1 and intents[0]["id"] == doc_of(deps, same["id"])["payment_intent"]
    finalized = [e for e in events_of(deps, "invoice.finalized")
                 if e.data["object"]["id"] == same["id"]]
    assert len(finalized) == 1


def test_paid_by_wallet_through_the_intent(deps, invoices_client, payments, make_merchant,
                                           payer, deliver):
    m = make_merchant(("owner",))
    uid, ph = payer
    fund(deps, uid, 10_000)
    inv = draft(invoices_client, m.headers())
    fin = finalize(invoices_client, m.headers(), inv["id"]).get_json()
    secret = invoices.payer_client_secret(deps, doc_of(deps, inv["id"]))
    r = payments.post(f"/v1/payment_intents/{fin['payment_intent']}/pay",
                      json={"client_secret": secret}, headers=ph)
    assert r.status_code == 200 and r.get_json()["status"] == "succeeded", r.get_json()
    assert invoices_client.get(f"{INVOICES}/{inv['id']}", headers=m.headers()).get_json()[
        "status"] == "open"                       # not yet: the consumer has not run
    assert deliver() == 1                          # payment_intent.succeeded
    got = invoices_client.get(f"{INVOICES}/{inv['id']}", headers=m.headers()).get_json()
    assert got["status"] == "paid" and got["amount_paid"] == fin["total"] == 2324
    assert got["amount_remaining"] == 0 and got["paid_at"]
    paid = events_of(deps, "invoice.paid")
    assert len(paid) == 1 and paid[0].data["object"]["id"] == inv["id"]
    # a redelivery changes nothing (consumer marker), nor does a replayed copy of the event
    succeeded = events_of(deps, "payment_intent.succeeded")[0]
    from shared.invoices.http import consume
    assert consume.handle(deps, succeeded) is False
    copy = Event(**{**succeeded.model_dump(), "id": "evt_copyofsucceeded0001"})
    assert consume.handle(deps, copy) is True      # processed: the invoice is already paid
    assert len(events_of(deps, "invoice.paid")) == 1
    # paid: cannot be voided nor marked uncollectible
    for action in ("void", "mark_uncollectible"):
        r = invoices_client.post(f"{INVOICES}/{inv['id']}/{action}", headers=m.headers())
        assert r.status_code == 409, action
    ledger_clean(deps)


def test_void_cancels_the_intent_and_uncollectible_stays_payable(deps, invoices_client, payments,
                                                                 make_merchant, payer, deliver):
    m = make_merchant(("owner",))
    uid, ph = payer
    fund(deps, uid, 10_000)
    a = draft(invoices_client, m.headers())
    fa = finalize(invoices_client, m.headers(), a["id"]).get_json()
    r = invoices_client.post(f"{INVOICES}/{a['id']}/void", headers=m.headers())
    assert r.status_code == 200 and r.get_json()["status"] == "void" and r.get_json()["voided_at"]
    pi = payments.get(f"/v1/payment_intents/{fa['payment_intent']}", headers=m.headers()).get_json()
    assert pi["status"] == "canceled"
    secret = invoices.payer_client_secret(deps, doc_of(deps, a["id"]))
    r = payments.post(f"/v1/payment_intents/{fa['payment_intent']}/pay",
                      json={"client_secret": secret}, headers=ph)
    assert r.status_code == 409                    # nothing moved
    r = invoices_client.post(f"{INVOICES}/{a['id']}/void", headers=m.headers())
    assert r.status_code == 409 and err(r)["code"] == "invoice_unexpected_state"
    # uncollectible: still payable, and paying it makes it paid
    b = draft(invoices_client, m.headers())
    fb = finalize(invoices_client, m.headers(), b["id"]).get_json()
    r = invoices_client.post(f"{INVOICES}/{b['id']}/mark_uncollectible", headers=m.headers())
    assert r.status_code == 200 and r.get_json()["status"] == "uncollectible"
    secret = invoices.payer_client_secret(deps, doc_of(deps, b["id"]))
    r = payments.post(f"/v1/payment_intents/{fb['payment_intent']}/pay",
                      json={"client_secret": secret}, headers=ph)
    assert r.status_code == 200
    deliver()
    assert doc_of(deps, b["id"])["status"] == "paid"
    # a draft cannot be voided; it is deleted
    c = draft(invoices_client, m.headers())
    assert invoices_client.post(f"{INVOICES}/{c['id']}/void", headers=m.headers()).status_code == 409
    assert invoices_client.delete(f"{INVOICES}/{c['id']}", headers=m.headers()).status_code == 204
    assert invoices_client.get(f"{INVOICES}/{c['id']}", headers=m.headers()).status_code == 404
    types = [e.type for e in events_of(deps) if e.type.startswith("invoice.")]
    assert types.count("invoice.voided") == 1 and types.count("invoice.marked_uncollectible") == 1
    ledger_clean(deps)


def test_zero_total_is_paid_at_finalization(deps, invoices_client, make_merchant):
    m = make_merchant(("owner",))
    inv = draft(invoices_client, m.headers(),
                lines=[{"description": "Free sample", "quantity": 1, "unit_amount": 0}])
    fin = finalize(invoices_client, m.headers(), inv["id"]).get_json()
    assert fin["status"] == "paid" and fin["payment_intent"] is None and fin["total"] == 0
    # finalized and paid leave in the same commit (same instant: no order between them)
    assert sorted(e.type for e in events_of(deps) if e.type.startswith("invoice.")) == [
        "invoice.created", "invoice.finalized", "invoice.paid"]


def test_tenant_mode_and_role_isolation(deps, invoices_client, merchant, make_merchant, api_key):
    other = make_merchant(("owner",))
    inv = draft(invoices_client, merchant.headers("developer"))
    path = f"{INVOICES}/{inv['id']}"
    # another merchant and the other mode: 404 everywhere, nothing changed
    for h in (other.headers(), merchant.headers(live=True)):
        assert invoices_client.get(path, headers=h).status_code == 404
        for action in ("finalize", "void", "mark_uncollectible"):
            r = invoices_client.post(f"{path}/{action}", headers=h)
            assert r.status_code == 404 and err(r)["code"] == "resource_missing"
        assert invoices_client.post(path, json={"memo": "x"}, headers=h).status_code == 404
        assert invoices_client.delete(path, headers=h).status_code == 404
        assert invoices_client.get(INVOICES, headers=h).get_json()["data"] == []
    assert doc_of(deps, inv["id"])["status"] == "draft"
    # roles: viewer and support read, cannot write
    for role in ("viewer", "support"):
        assert invoices_client.get(path, headers=merchant.headers(role)).status_code == 200
        r = invoices_client.post(f"{path}/finalize", headers=merchant.headers(role))
        assert r.status_code == 403 and err(r)["code"] == "insufficient_role"
    # no merchant context: 403 naming the header
    r = invoices_client.get(INVOICES, headers=auth_headers(merchant.users["owner"][1]))
    assert r.status_code == 403 and err(r)["code"] == "merchant_required"
    # API keys: the test key sees it, the live key and a read-only key cannot act
    test_key, live_key = api_key(merchant.id), api_key(merchant.id, livemode=True)
    ro_key = api_key(merchant.id, scopes=("payments:read",))
    assert invoices_client.get(path, headers=auth_headers(test_key)).status_code == 200
    assert invoices_client.get(path, headers=auth_headers(live_key)).status_code == 404
    r = invoices_client.post(f"{path}/finalize", headers=auth_headers(ro_key))
    assert r.status_code == 403 and err(r)["code"] == "missing_scope"
    r = invoices_client.post(f"{path}/finalize", headers=auth_headers(test_key))
    assert r.status_code == 200 and r.get_json()["livemode"] is False
    # lists filter by status and customer, newest first, paginated
    second = draft(invoices_client, merchant.headers(), customer={"email": "bob@example.com"})
    lst = invoices_client.get(INVOICES, headers=merchant.headers()).get_json()
    assert [x["id"] for x in lst["data"]] == [second["id"], inv["id"]]
    lst = invoices_client.get(f"{INVOICES}?status=open", headers=merchant.headers()).get_json()
    assert [x["id"] for x in lst["data"]] == [inv["id"]]
    lst = invoices_client.get(f"{INVOICES}?customer_email=BOB@example.com",
                              headers=merchant.headers()).get_json()
    assert [x["id"] for x in lst["data"]] == [second["id"]]
    page = invoices_client.get(f"{INVOICES}?limit=1", headers=merchant.headers()).get_json()
    assert page["has_more"] is True and len(page["data"]) == 1
    r = invoices_client.get(f"{INVOICES}?starting_after={inv['id']}", headers=other.headers())
    assert r.status_code == 400 and err(r)["code"] == "invalid_cursor"


def test_hostile_input_is_a_4xx(deps, invoices_client, merchant):
    h = merchant.headers()
    base = {"customer": {"email": "a@example.com"}, "currency": "USD", "lines": LINES}
    cases = [
        ({**base, "currency": "DOGE"}, "asset_unknown"),
        ({**base, "lines": [{"description": "x", "quantity": 1_000_000,
                             "unit_amount": 2**63 - 1}]}, "amount_too_large"),
        ({**base, "lines": [{"description": "x", "quantity": -1, "unit_amount": 1}]},
         "parameter_invalid"),
        ({**base, "lines": [{"description": "x", "quantity": 1, "unit_amount": 1.5}]},
         "parameter_invalid"),
        ({**base, "due_date": int(time.time()) - 10}, "parameter_invalid"),
        ({**base, "tenant": "mch_someoneelse"}, "parameter_unknown"),
        ({**base, "status": "paid"}, "parameter_unknown"),
        ({**base, "default_tax_rate_bps": -5}, "parameter_invalid"),
        ({**base, "lines": [{"description": "", "quantity": 1, "unit_amount": 1}]},
         "parameter_invalid"),
        ({**base, "discount": {"amount_off": 0}}, "parameter_invalid"),
    ]
    for body, code in cases:
        r = invoices_client.post(INVOICES, json=body, headers=h)
        assert r.status_code == 400 and err(r)["code"] == code, (body, r.get_json())
    r = invoices_client.post(INVOICES, data="[1,2]", content_type="application/json", headers=h)
    assert r.status_code == 400
    r = invoices_client.post(INVOICES, data="{" * 100 + "}" * 100,
                             content_type="application/json", headers=h)
    assert r.status_code == 400
    for bad in ("pi_notaninvoice0000", "in_..", "in_x" * 200, "in_doesnotexist00000"):
        r = invoices_client.get(f"{INVOICES}/{bad}", headers=h)
        assert r.status_code in (404,), (bad, r.status_code)
    r = invoices_client.get(f"{INVOICES}?status=bogus", headers=h)
    assert r.status_code == 400
    inv = draft(invoices_client, h)
    r = invoices_client.post(f"{INVOICES}/{inv['id']}", json={}, headers=h)
    assert r.status_code == 400
    r = invoices_client.post(f"{INVOICES}/{inv['id']}", json={"customer": None}, headers=h)
    assert r.status_code == 400
    r = invoices_client.post(f"{INVOICES}/{inv['id']}/finalize", json={"x": 1}, headers=h)
    assert r.status_code == 400 and err(r)["code"] == "unexpected_body"
    # a currency the merchant does not accept is refused at finalization, nothing numbered
    deps.db.collection("merchant_settings").document(merchant.id).set(
        {"merchant_id": merchant.id, "accepted_assets": ["KHR"]})
    r = finalize(invoices_client, h, inv["id"])
    assert r.status_code == 400 and err(r)["code"] == "currency_not_accepted"
    assert doc_of(deps, inv["id"])["status"] == "draft"
    assert not numbering.counter_ref(deps.db, merchant.id, False).get().exists


def test_consumer_ignores_foreign_and_unrelated_intents(deps, invoices_client, make_merchant):
    from shared.invoices.http import consume
    a, b = make_merchant(("owner",)), make_merchant(("owner",))
    inv = draft(invoices_client, a.headers())
    fin = finalize(invoices_client, a.headers(), inv["id"]).get_json()

    def event(**pi):
        obj = {"id": fin["payment_intent"], "livemode": False, "amount_received": 1,
               "metadata": {"invoice": inv["id"]}, **pi}
        return Event(id=f"evt_forged{len(pi)}{abs(hash(str(pi))) % 10**8:08d}",
                     type="payment_intent.succeeded", created="2026-12-02T00:00:00Z",
                     tenant=pi.pop("tenant", a.id), livemode=False, data={"object": obj})

    for ev in (event(tenant=b.id), event(id="pi_someotherintent0000"), event(livemode=True),
               event(metadata={}), event(metadata={"invoice": "../../x"})):
        consume.handle(deps, ev)
    assert doc_of(deps, inv["id"])["status"] == "open"
    assert events_of(deps, "invoice.paid") == []


def test_finalization_round_trips(deps, invoices_client, links_client, make_merchant):
    """Measured: finalizing is ONE batch get (invoice, counter, merchant, settings, the intent's
    derived id) and one commit (+ the outbox update after publishing); a link checkout likewise
    (link, then checkout record + intent + merchant + settings: two gets), one commit."""
    from bench.harness import RpcCounter
    m = make_merchant(("owner",))
    inv = draft(invoices_client, m.headers())
    with RpcCounter() as get:   # authentication's own reads + the invoice
        assert invoices_client.get(f"{INVOICES}/{inv['id']}", headers=m.headers()).status_code == 200
    auth = get.counts.get("batch_get_documents", 0) - 1
    with RpcCounter() as fin:
        assert finalize(invoices_client, m.headers(), inv["id"]).status_code == 200
    print("finalize round trips:", fin.counts, "of which authentication:", auth)
    assert fin.counts == {"batch_get_documents": 1 + auth, "commit": 2}, fin.counts
    link = links_client.post("/v1/payment_links", json={"currency": "USD", "amount": 100},
                             headers=m.headers()).get_json()
    with RpcCounter() as co:
        r = links_client.post(f"/v1/payment_links/{link['id']}/intents",
                              json={"client_key": "rt-visitor-000000000"},
                              headers={"X-Forwarded-For": "192.0.2.1"})
    assert r.status_code == 201
    print("link checkout round trips:", co.counts)
    # + one commit: the shared (cross-instance) rate-limit counter's blind write
    assert co.counts == {"batch_get_documents": 2, "commit": 3}, co.counts


def test_reorged_payment_reopens_then_pays_again(deps, invoices_client, make_merchant, deliver):
    """A chain payment that paid the invoice is reorganised out: the invoice is open again
    (invoice.reopened); when it confirms again the invoice is paid again. A reorged event
    delivered AFTER the re-confirmation (Pub/Sub keeps no order) changes nothing."""
    from shared.invoices.http import consume
    from shared.payments import intents as pis
    from shared.platform.uow import run_unit
    m = make_merchant(("owner",))
    inv = draft(invoices_client, m.headers())
    fin = finalize(invoices_client, m.headers(), inv["id"]).get_json()
    pid, ref_tx = fin["payment_intent"], "anvil:0xfeed:0"

    def receive():
        def unit(uow):
            ref, doc = pis.load_for_update(uow, pid)
            return pis.record_received(uow, ref, doc, fin["total"], method="crypto", final=True,
                                       reference=ref_tx)
        return run_unit(deps, unit)

    def reorg():
        def unit(uow):
            ref, doc = pis.load_for_update(uow, pid)
            return pis.record_reorged(uow, ref, doc, ref_tx)
        return run_unit(deps, unit)

    assert receive()["status"] == "succeeded"
    deliver()
    assert doc_of(deps, inv["id"])["status"] == "paid"
    assert reorg()["status"] == "requires_payment_method"
    deliver()
    got = doc_of(deps, inv["id"])
    assert got["status"] == "open" and got["paid_at"] is None and got["amount_paid"] == 0
    reopened = events_of(deps, "invoice.reopened")
    assert len(reopened) == 1 and reopened[0].data["object"]["status"] == "open"
    assert receive()["status"] == "succeeded"
    deliver()
    assert doc_of(deps, inv["id"])["status"] == "paid"
    assert len(events_of(deps, "invoice.paid")) == 2
    # out of order: the first reorged event, delivered again as a new message, is stale now
    stale = events_of(deps, "payment_intent.reorged")[0]
    copy = Event(**{**stale.model_dump(), "id": "evt_stalereorgcopy00001"})
    assert consume.handle(deps, copy) is True
    assert doc_of(deps, inv["id"])["status"] == "paid"
    assert len(events_of(deps, "invoice.reopened")) == 1
    ledger_clean(deps)


def test_an_expired_or_canceled_intent_is_renewed_for_the_payer(deps, invoices_client, payments,
                                                                  make_merchant, payer, deliver):
    """The hosted page's call (issue 10): a live intent is returned as is; an expired one (the
    due date is beyond the intents' 7 days) or one the merchant canceled is replaced by a fresh
    one, once; paying the fresh one pays the invoice."""
    from shared.payments import expiry
    from shared.platform.uow import run_unit
    m = make_merchant(("owner",))
    uid, ph = payer
    fund(deps, uid, 10_000)
    inv = draft(invoices_client, m.headers(), due_date=int(time.time()) + 30 * 86400)
    fin = finalize(invoices_client, m.headers(), inv["id"]).get_json()
    first = fin["payment_intent"]
    pid, secret = run_unit(deps, lambda uow: invoices.payable_intent(uow, inv["id"]))
    assert pid == first and secret.startswith(first + "_secret_")
    # time passes beyond the intent's 7 days: the timer expires it
    past = deps.clock.now().replace(year=2020)
    deps.db.collection("payment_intents").document(first).update({"expires_at": past})
    assert run_unit(deps, lambda uow: expiry.expire(uow, first)) == "expired"
    pid2, secret2 = run_unit(deps, lambda uow: invoices.payable_intent(uow, inv["id"]))
    assert pid2 != first and secret2.startswith(pid2 + "_secret_")
    assert run_unit(deps, lambda uow: invoices.payable_intent(uow, inv["id"])) == (pid2, secret2)
    got = doc_of(deps, inv["id"])
    assert got["payment_intent"] == pid2 and got["payment_intents"] == [first, pid2]
    # the merchant cancels that one through the intents API: renewed again
    assert payments.post(f"/v1/payment_intents/{pid2}/cancel", json={},
                         headers=m.headers()).status_code == 200
    pid3, secret3 = run_unit(deps, lambda uow: invoices.payable_intent(uow, inv["id"]))
    assert pid3 not in (first, pid2)
    new = payments.get(f"/v1/payment_intents/{pid3}", headers=m.headers()).get_json()
    assert new["amount"] == fin["total"] and new["metadata"]["invoice"] == inv["id"]
    r = payments.post(f"/v1/payment_intents/{pid3}/pay", json={"client_secret": secret3}, headers=ph)
    assert r.status_code == 200, r.get_json()
    deliver()
    paid = invoices_client.get(f"{INVOICES}/{inv['id']}", headers=m.headers()).get_json()
    assert paid["status"] == "paid" and paid["payment_intent"] == pid3
    # a paid (or draft, void) invoice has nothing to pay
    with pytest.raises(Conflict):
        run_unit(deps, lambda uow: invoices.payable_intent(uow, inv["id"]))
    with pytest.raises(NotFound):
        run_unit(deps, lambda uow: invoices.payable_intent(uow, "in_doesnotexist0000"))
    ledger_clean(deps)
