"""Merchant analytics against a hand count, the rollup cache, isolation and hostile input."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.reports import analytics
from tests.ledger.conftest import fund
from tests.payments.conftest import err
from tests.payments.test_intents_api import URL, create
from tests.reports.conftest import REPORTS


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def rows_by_key(body):
    return {(r["date"], r["asset"], r["method"]): r for r in body["data"]}


def make(payments, m, amount, methods, currency="USD"):
    return create(payments, m.headers(), amount=amount, currency=currency,
                  payment_method_types=methods).get_json()


def pay(payments, pi, headers):
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]},
                      headers=headers)
    assert r.status_code == 200, r.get_json()


@pytest.fixture
def counted_shop(deps, payments, make_merchant, payer):
    """Six intents with a known outcome; the hand count is written next to each."""
    m = make_merchant(("owner", "viewer"))
    uid, ph = payer
    fund(deps, uid, 100_000)
    a = make(payments, m, 1000, ["wallet"])              # USD wallet  → paid
    b = make(payments, m, 2500, ["wallet", "crypto"])    # USD both    → paid by wallet
    make(payments, m, 700, ["crypto"])                   # USD crypto  → open
    c = make(payments, m, 300, ["wallet", "crypto"])     # USD both    → canceled
    payments.post(f"{URL}/{c['id']}/cancel", json={}, headers=m.headers())
    make(payments, m, 5000, ["wallet"], currency="KHR")  # KHR wallet  → open
    pay(payments, a, ph)
    pay(payments, b, ph)
    return m, ph


def test_numbers_match_a_hand_count(counted_shop, reports):
    m, _ = counted_shop
    r = reports.get(f"{REPORTS}/analytics?from={today()}&to={today()}", headers=m.headers("viewer"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["from"], body["to"], body["livemode"]) == (today(), today(), False)
    got = {(k[1], k[2]): (v["created"], v["succeeded"], v["volume"], v["conversion_rate"])
           for k, v in rows_by_key(body).items()}
    assert got == {
        ("USD", "all"): (4, 2, 3500, 0.5),
        ("USD", "wallet"): (3, 2, 3500, 0.6667),      # a, b, c offered wallet; a, b paid by it
        ("USD", "crypto"): (3, 0, 0, 0.0),            # b, open one, c offered crypto; none paid by it
        ("KHR", "all"): (1, 0, 0, 0.0),
        ("KHR", "wallet"): (1, 0, 0, 0.0),
    }


def test_rollups_are_reused_then_refreshed(deps, counted_shop, reports, payments):
    m, ph = counted_shop
    url = f"{REPORTS}/analytics?from={today()}&to={today()}"
    first = reports.get(url, headers=m.headers()).get_json()
    stored = deps.db.collection(analytics.COLLECTION).document(
        analytics.rollup_id(m.id, False, dt.date.fromisoformat(today()))).get().to_dict()
    assert stored["final"] is False and stored["version"] == analytics.VERSION
    # a new paid intent: within the refresh interval the rollup answers (no intent is read)
    d = make(payments, m, 400, ["wallet"])
    pay(payments, d, ph)
    cached = reports.get(url, headers=m.headers()).get_json()
    assert cached["data"] == first["data"] and cached["computed_at"] == first["computed_at"]
    # once stale it is recomputed
    deps.extras["reports.analytics_refresh"] = dt.timedelta(0)
    try:
        fresh = rows_by_key(reports.get(url, headers=m.headers()).get_json())
    finally:
        deps.extras.pop("reports.analytics_refresh")
    assert fresh[(today(), "USD", "all")]["succeeded"] == 3
    assert fresh[(today(), "USD", "all")]["volume"] == 3900


def test_range_of_days_and_empty_days(counted_shop, reports):
    m, _ = counted_shop
    first = (dt.date.fromisoformat(today()) - dt.timedelta(days=2)).isoformat()
    body = reports.get(f"{REPORTS}/analytics?from={first}&to={today()}",
                       headers=m.headers()).get_json()
    assert len(body["computed_at"]) == 3
    assert {r["date"] for r in body["data"]} == {today()}


def test_tenant_and_mode_isolation(counted_shop, reports, make_merchant):
    m, _ = counted_shop
    url = f"{REPORTS}/analytics?from={today()}&to={today()}"
    other = make_merchant(("owner",))
    assert reports.get(url, headers=other.headers()).get_json()["data"] == []
    assert reports.get(url, headers=m.headers(live=True)).get_json()["data"] == []


def test_pure_rules():
    docs = [{"currency": "USD", "status": "overpaid", "method": "crypto", "amount_received": 12,
             "payment_method_types": ["crypto"]},
            {"currency": "USD", "status": "processing", "method": "crypto", "amount_received": 0,
             "payment_method_types": ["crypto", "card"]}]
    rows = {(r["asset"], r["method"]): r for r in analytics.rollup(docs)}
    assert rows[("USD", "crypto")] == {"asset": "USD", "method": "crypto", "created": 2,
                                       "succeeded": 1, "volume": 12}
    assert rows[("USD", "card")]["succeeded"] == 0
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    assert analytics.refresh_after(now.date(), now) == analytics.MIN_REFRESH
    assert analytics.refresh_after(dt.date(2026, 11, 1), now) == analytics.MAX_REFRESH
    assert not analytics.is_final(dt.date(2026, 11, 1), now)
    assert analytics.is_final(dt.date(2026, 10, 1), now)
    assert analytics.conversion(0, 0) is None


def test_hostile_input(reports, make_merchant):
    m = make_merchant(("owner",))
    h = m.headers()
    old = (dt.date.fromisoformat(today()) - dt.timedelta(days=100)).isoformat()
    cases = {
        f"?from={today()}": "parameter_missing",
        f"?to={today()}": "parameter_missing",
        f"?from={today()}&to=2020-01-01": "date_range_invalid",
        f"?from={old}&to={today()}": "date_range_too_long",
        "?from=2026-02-31&to=2026-03-01": "date_invalid",
        "?from=yesterday&to=today": "parameter_invalid",
        f"?from={today()}&to={today()}&tenant=mch_x": "parameter_unknown",
        "?from=2099-01-01&to=2099-01-02": "date_in_future",
    }
    for q, code in cases.items():
        r = reports.get(f"{REPORTS}/analytics{q}", headers=h)
        assert r.status_code == 400, (q, r.get_json())
        assert err(r)["code"] == code, (q, err(r))
