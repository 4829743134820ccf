"""Pure rules: invoice totals and tax rounding (property-tested against Decimal), discount
allocation, numbering, the button snippet's escaping, request model bounds. No emulator."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.invoices import button, numbering, totals
from shared.invoices.models import CreateInvoice, CreateLink, StartCheckout
from shared.ledger.assets import INT64_MAX
from shared.platform.errors import InvalidRequest

lines_st = st.lists(st.builds(totals.LineInput,
                              quantity=st.integers(1, 10_000),
                              unit_amount=st.integers(0, 10**9),
                              tax_rate_bps=st.one_of(st.none(), st.integers(0, 10_000))),
                    min_size=0, max_size=30)


def decimal_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@settings(max_examples=400, deadline=None)
@given(lines=lines_st, default=st.integers(0, 10_000),
       discount=st.one_of(st.none(), st.tuples(st.just("amount"), st.integers(1, 10**12)),
                          st.tuples(st.just("percent"), st.integers(1, 10_000))))
def test_totals_add_up_and_tax_is_half_up_per_line(lines, default, discount):
    kw = {}
    if discount and discount[0] == "amount":
        kw["amount_off"] = discount[1]
    elif discount:
        kw["percent_off_bps"] = discount[1]
    t = totals.compute(lines, default_tax_rate_bps=default, **kw)
    amounts = [ln.quantity * ln.unit_amount for ln in lines]
    assert t.subtotal == sum(amounts)
    # the discount: capped at the subtotal, percent rounded half up, allocated exactly
    if "amount_off" in kw:
        assert t.total_discount == min(kw["amount_off"], t.subtotal)
    elif "percent_off_bps" in kw:
        assert t.total_discount == min(
            decimal_half_up(Decimal(t.subtotal) * kw["percent_off_bps"] / 10_000), t.subtotal)
    else:
        assert t.total_discount == 0
    assert sum(x.discount_amount for x in t.lines) == t.total_discount
    for ln, x, amount in zip(lines, t.lines, amounts):
        assert x.amount == amount and 0 <= x.discount_amount <= amount
        assert x.taxable_amount == amount - x.discount_amount
        rate = default if ln.tax_rate_bps is None else ln.tax_rate_bps
        assert x.tax_rate_bps == rate
        assert x.tax_amount == decimal_half_up(Decimal(x.taxable_amount) * rate / 10_000)
    assert t.total_tax == sum(x.tax_amount for x in t.lines)
    assert t.total == t.subtotal - t.total_discount + t.total_tax >= 0


@settings(max_examples=300, deadline=None)
@given(weights=st.lists(st.integers(0, 10**9), min_size=1, max_size=40), data=st.data())
def test_allocation_is_exact_and_proportional(weights, data):
    whole = sum(weights)
    total = data.draw(st.integers(0, whole))
    shares = totals.allocate(total, weights)
    assert sum(shares) == total
    for w, s in zip(weights, shares):
        assert 0 <= s <= w
        if whole:  # within one unit of the exact proportional share
            assert abs(Decimal(s) - Decimal(total) * w / whole) < 1


def test_rounding_examples():
    # three lines of 3.33 at 7.5 %: each line's tax 0.24975 → 0.25 (per line, half up)
    t = totals.compute([totals.LineInput(1, 333)] * 3, default_tax_rate_bps=750)
    assert [x.tax_amount for x in t.lines] == [25, 25, 25] and t.total_tax == 75
    assert t.total == 999 + 75        # a per-invoice rounding would give 74.925 → 75 too
    # per line differs from per invoice here: 0.005 × 3 lines
    t = totals.compute([totals.LineInput(1, 5)] * 3, default_tax_rate_bps=1000)
    assert t.total_tax == 3           # each 0.5 → 1; invoice-level would be 1.5 → 2
    # half up, not banker's: 0.5 → 1, 2.5 → 3
    assert totals.half_up(5, 10) == 1 and totals.half_up(25, 10) == 3 and totals.half_up(24, 10) == 2
    # percent discount half up: 10.05 × 50 % = 5.025 → 5.03 (503)
    assert totals.discount_for(1005, percent_off_bps=5000) == 503
    # a fixed discount bigger than the subtotal is capped; nothing goes negative
    t = totals.compute([totals.LineInput(2, 100, 1000)], amount_off=10_000)
    assert (t.total_discount, t.total_tax, t.total) == (200, 0, 0)
    # discount allocated before tax, by line amount (largest remainder)
    t = totals.compute([totals.LineInput(1, 100, 0), totals.LineInput(1, 200, 1000)],
                       amount_off=100)
    assert [x.discount_amount for x in t.lines] == [33, 67]
    assert t.lines[1].tax_amount == 13 and t.total == 300 - 100 + 13


def test_overflowing_totals_are_a_400():
    with pytest.raises(InvalidRequest) as e:
        totals.compute([totals.LineInput(1_000_000, INT64_MAX)])
    assert e.value.code == "amount_too_large"
    with pytest.raises(InvalidRequest):   # the subtotal fits, the tax pushes it over
        totals.compute([totals.LineInput(1, INT64_MAX - 10)], default_tax_rate_bps=100)


def test_numbers_are_per_mode_and_readable():
    assert numbering.format_number("mch_abcdefghXYZ", True, 7) == "ABCDEFGH-0007"
    assert numbering.format_number("mch_abcdefghXYZ", False, 12345) == "TEST-ABCDEFGH-12345"


HOSTILE = '"><script>alert(1)</script><a href="javascript:x'


def test_button_escapes_everything_and_runs_no_script():
    html = button.snippet('https://pay.example/pay/link/plink_x?a=1&b="2"', HOSTILE,
                          title="Tea & <b>cake</b>")
    assert "<script" not in html.lower() and "javascript:x\"" not in html
    assert html.count("<a ") == 1 and html.endswith("</a>") and html.count("</a>") == 1
    assert "&quot;&gt;&lt;script&gt;" in html and "&amp;b=&quot;2&quot;" in html
    assert 'rel="noopener noreferrer"' in html and 'target="_blank"' in html
    assert "Tea &amp; &lt;b&gt;cake&lt;/b&gt;" in html
    # every attribute value is one quoted string: no quote escapes its attribute
    attrs = re.findall(r'(\w+)="([^"]*)"', html[:html.index(">")])
    assert [a for a, _ in attrs] == ["href", "target", "rel", "class", "style", "title"]
    assert button.default_label({"amount": 1234, "currency": "USD"}) == "Pay 12.34 USD"
    assert button.default_label({"amount": 5000, "currency": "KHR"}) == "Pay 5000 KHR"
    assert button.default_label({"amount": None, "currency": "USD"}) == "Pay"


@pytest.mark.parametrize("body", [
    {"customer": {"email": "a@b.co"}, "currency": "USD", "lines": [
        {"description": "x", "quantity": 1.5, "unit_amount": 1}]},                 # float qty
    {"customer": {"email": "a@b.co"}, "currency": "USD", "lines": [
        {"description": "x", "quantity": True, "unit_amount": 1}]},                # bool qty
    {"customer": {"email": "a@b.co"}, "currency": "USD", "lines": [
        {"description": "x", "quantity": 1, "unit_amount": -1}]},                  # negative
    {"customer": {"email": "a@b.co"}, "currency": "USD", "lines": [
        {"description": "x", "quantity": 1, "unit_amount": "100"}]},               # string
    {"customer": {"email": "a@b.co"}, "currency": "USD", "default_tax_rate_bps": 10_001},
    {"customer": {"email": "a@b.co"}, "currency": "USD",
     "discount": {"amount_off": 1, "percent_off_bps": 1}},                          # both
    {"customer": {"email": "a@b.co"}, "currency": "USD", "discount": {}},          # neither
    {"customer": {"email": "not-an-email"}, "currency": "USD"},
    {"customer": {"email": "a@b.co", "admin": True}, "currency": "USD"},           # unknown
    {"customer": {"email": "a@b.co"}, "currency": "USD", "lines": [
        {"description": "x", "quantity": 1, "unit_amount": 1}] * 101},             # too many
    {"customer": {"email": "a@b.co"}, "currency": "USD",
     "metadata": {f"k{i}": "v" * 200 for i in range(30)}},                         # too big
])
def test_invoice_bodies_refused(body):
    with pytest.raises(ValidationError):
        CreateInvoice.model_validate(body)


@pytest.mark.parametrize("body", [
    {"currency": "USD"},                                                # no price
    {"currency": "USD", "amount": 100, "custom_amount": {"minimum": 1, "maximum": 2}},
    {"currency": "USD", "custom_amount": {"minimum": 5, "maximum": 2}},
    {"currency": "USD", "custom_amount": {"minimum": 1, "maximum": 9, "preset": 10}},
    {"currency": "USD", "amount": 0},
    {"currency": "USD", "line_items": []},
    {"currency": "USD", "amount": 100, "active": "yes"},
])
def test_link_bodies_refused(body):
    with pytest.raises(ValidationError):
        CreateLink.model_validate(body)


@pytest.mark.parametrize("key", ["short", "x" * 129, "has space in it xx", "../../etc/passwd0000"])
def test_client_keys_refused(key):
    with pytest.raises(ValidationError):
        StartCheckout.model_validate({"client_key": key})
