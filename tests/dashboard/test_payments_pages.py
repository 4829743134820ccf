"""Payments and refunds in the dashboard: filters, the detail with its timeline, the refund with
its confirmation step (idempotent, ledger balanced, a concurrent double submit refunds once),
the role matrix (shown AND enforced), tenant and mode isolation, the merchant and mode switches."""
from __future__ import annotations

import re
import threading

from shared.ledger import audit
from shared.refunds import service as refunds
from shared.refunds.models import RefundListQuery
from tests.dashboard.conftest import (
    ROOT,
    email_of,
    open_intent,
    owner_principal,
    paid_intent,
    text,
)


def refunds_of(deps, m, intent_id):
    return refunds.list_refunds(deps, owner_principal(m),
                                RefundListQuery(payment_intent=intent_id, limit=100)).data


def assert_ledger_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == [], violations[:3]


def test_payments_list_filters_and_finds_a_payment_by_id(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1234, email="ana@example.com", description="Coffee")
    waiting = open_intent(wiring, shop, 500)
    b = member("viewer")
    page = text(b.get("/payments"))
    assert paid.id in page and waiting.id in page and "12.34 USD" in page and "Coffee" in page
    only_paid = text(b.get("/payments?status=succeeded"))
    assert paid.id in only_paid and waiting.id not in only_paid
    by_email = text(b.get("/payments?email=ANA@example.com"))
    assert paid.id in by_email and waiting.id not in by_email
    assert paid.id not in text(b.get("/payments?from=2020-01-01&to=2020-01-02"))
    bad = b.get("/payments?from=2026-13-45")
    assert bad.status_code == 400 and "date" in text(bad)
    r = b.get(f"/payments?id={paid.id}")
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/payments/{paid.id}"
    assert b.get("/payments?id=../../etc").status_code == 404


def test_payments_list_pages_with_a_cursor(wiring, member, shop):
    made = [open_intent(wiring, shop, 100 + i) for i in range(27)]
    b = member("viewer")
    first = text(b.get("/payments"))
    assert made[-1].id in first and made[0].id not in first
    older = re.search(r'href="/dashboard/payments\?after=(pi_\w+)"', first)
    assert older, "a link to the older page"
    second = text(b.get(f"/payments?after={older.group(1)}"))
    assert made[0].id in second and made[-1].id not in second


def test_detail_shows_amounts_history_and_events(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 2500)
    page = text(member("viewer").get(f"/payments/{paid.id}"))
    assert "25.00 USD" in page and "payment_intent.succeeded" in page
    assert "payment_intent.created" in page and "No webhook attempts for this event." in page


def test_refund_asks_for_confirmation_then_refunds_once(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1000)
    b = member("support")
    detail = text(b.get(f"/payments/{paid.id}"))
    assert 'id="refund-start"' in detail
    idem = re.search(r'name="idem" value="([^"]+)"', detail).group(1)
    ask = b.post(f"/payments/{paid.id}/refund", {"idem": idem, "amount": "4.00",
                                                  "reason": "requested_by_customer"})
    assert ask.status_code == 200 and "Refund 4.00 USD?" in text(ask)
    assert refunds_of(wiring, shop, paid.id) == []            # nothing before confirming
    form = {"idem": idem, "amount": "4.00", "reason": "requested_by_customer", "confirm": "yes"}
    done = b.post(f"/payments/{paid.id}/refund", form)
    assert done.status_code == 303 and "done=refunded" in done.headers["Location"]
    again = b.post(f"/payments/{paid.id}/refund", form)      # resubmitted: the same refund
    assert again.status_code == 303 and again.headers["Location"] == done.headers["Location"]
    [made] = refunds_of(wiring, shop, paid.id)
    assert made.amount == 400 and made.status == "succeeded" and made.reason == "requested_by_customer"
    after = text(b.get(done.headers["Location"].removeprefix(ROOT)))
    assert f"Refund {made.id} created." in after and "4.00 USD" in after and "refund.succeeded" in after
    spoof = text(b.get(f"/payments/{paid.id}?done=refunded&ref=Call+0123+to+claim"))
    assert "Call 0123" not in spoof and 'role="status"' not in spoof   # no text from a link
    assert_ledger_clean(wiring)


def test_refund_errors_are_shown_on_the_payment_page(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1000)
    b = member("support")
    idem = "k" * 24
    for amount, status, words in (("10.01", 400, "amount"), ("1.001", 400, "decimal"),
                                  ("-1", 400, "amount"), ("abc", 400, "amount")):
        r = b.post(f"/payments/{paid.id}/refund", {"idem": idem, "amount": amount, "confirm": "yes"})
        assert r.status_code == status, (amount, text(r)[:300])
        assert 'role="alert"' in text(r) and "Traceback" not in text(r)
    expired = b.post(f"/payments/{paid.id}/refund", {"idem": "short", "confirm": "yes"})
    assert expired.status_code == 400 and "The form expired" in text(expired)
    unpaid = open_intent(wiring, shop, 300)
    r = b.post(f"/payments/{unpaid.id}/refund", {"idem": idem, "confirm": "yes"})
    assert r.status_code == 409
    assert refunds_of(wiring, shop, paid.id) == [] and refunds_of(wiring, shop, unpaid.id) == []


def test_two_tabs_confirming_the_same_refund_at_once_refund_once(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1000)
    tabs = [member("support") for _ in range(2)]
    form = {"idem": "same-form-" + "x" * 16, "amount": "10.00", "confirm": "yes"}
    for t in tabs:
        t.get(f"/payments/{paid.id}")
    results = []

    def submit(t):
        results.append(t.post(f"/payments/{paid.id}/refund", form).status_code)
    threads = [threading.Thread(target=submit, args=(t,)) for t in tabs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [303, 303]
    [made] = refunds_of(wiring, shop, paid.id)
    assert made.amount == 1000
    assert_ledger_clean(wiring)


def test_full_refund_with_different_forms_cannot_exceed_the_payment(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1000)
    b = member("support")
    codes = [b.post(f"/payments/{paid.id}/refund", {"idem": f"form-{i}-" + "y" * 16, "amount": "6.00",
                                                     "confirm": "yes"}).status_code for i in range(2)]
    assert codes == [303, 400]
    assert sum(r.amount for r in refunds_of(wiring, shop, paid.id)) == 600
    assert_ledger_clean(wiring)


def test_a_viewer_sees_no_refund_control_and_cannot_post_one(wiring, member, shop, payer):
    paid = paid_intent(wiring, shop, payer, 1000)
    b = member("viewer")
    page = text(b.get(f"/payments/{paid.id}"))
    assert "refund-start" not in page and f"/payments/{paid.id}/refund" not in page
    r = b.post(f"/payments/{paid.id}/refund", {"idem": "v" * 24, "confirm": "yes"})
    assert r.status_code == 403 and "support" in text(r)
    assert refunds_of(wiring, shop, paid.id) == []
    nav = text(b.get("/payments"))
    assert f'{ROOT}/keys"' not in nav   # a viewer cannot manage keys: no link either
    assert b.get("/keys").status_code == 403


def test_another_merchants_payment_is_a_404(wiring, member, make_merchant, shop, payer):
    other = make_merchant(("owner",))
    theirs = paid_intent(wiring, other, payer, 700)
    b = member("owner")
    r = b.get(f"/payments/{theirs.id}")
    assert r.status_code == 404 and "No such payment intent." in text(r) and "700" not in text(r)
    r = b.post(f"/payments/{theirs.id}/refund", {"idem": "o" * 24, "confirm": "yes"})
    assert r.status_code == 404
    assert refunds_of(wiring, other, theirs.id) == []
    assert theirs.id not in text(b.get("/payments"))


def test_mode_switch_shows_and_acts_in_that_mode_only(wiring, member, shop, payer):
    test_pi = paid_intent(wiring, shop, payer, 1000)
    live_pi = paid_intent(wiring, shop, payer, 2000, livemode=True)
    b = member("support")
    page = text(b.get("/payments"))
    assert test_pi.id in page and live_pi.id not in page and "Test mode" in page
    assert b.get(f"/payments/{live_pi.id}").status_code == 404
    r = b.post("/mode", {"mode": "live", "section": "refunds"})
    assert r.status_code == 303 and r.headers["Location"] == f"{ROOT}/refunds"
    page = text(b.get("/payments"))
    assert live_pi.id in page and test_pi.id not in page and "Live mode" in page
    assert b.get(f"/payments/{test_pi.id}").status_code == 404
    r = b.post(f"/payments/{test_pi.id}/refund", {"idem": "m" * 24, "confirm": "yes"})
    assert r.status_code == 404
    assert b.post("/mode", {"mode": "sideways"}).status_code == 400
    b.post("/mode", {"mode": "test", "section": "../evil"})
    assert test_pi.id in text(b.get("/payments"))


def test_merchant_switcher_lists_memberships_and_refuses_others(wiring, member, make_merchant,
                                                               shop, payer):
    from tests.payments.conftest import _member
    second = make_merchant(("owner",))
    _member(wiring, second.id, shop.users["viewer"][0], "support")
    stranger = make_merchant(("owner",))
    theirs = paid_intent(wiring, second, payer, 900)
    b = member("viewer")
    page = text(b.get("/payments"))
    assert shop.id in page and second.id in page and stranger.id not in page
    r = b.post("/merchant", {"merchant": stranger.id})
    assert r.status_code == 403 and "not a member" in text(r)
    r = b.post("/merchant", {"merchant": second.id})
    assert r.status_code == 303
    page = text(b.get("/payments"))
    assert theirs.id in page
    detail = text(b.get(f"/payments/{theirs.id}"))
    assert "refund-start" in detail      # support in the second merchant
    assert b.post("/merchant", {"merchant": "mch_../../x"}).status_code == 403


def test_a_user_without_merchants_is_told_so(wiring, browser):
    from tests.support.identity import create_user_with_token
    uid, _ = create_user_with_token(wiring)
    b = browser()
    b.sign_in(email_of(wiring, uid))
    r = b.get("/payments")
    assert r.status_code == 200 and "not a member of any merchant" in text(r)
