"""The daily settlement report on real wallet payments: every entry of the day, gross/fee/net
per payment, opening + Σ = closing (checked against the live balance and against a boundary
inside the day), CSV well-formed, tenant/mode/role isolation, hostile input."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from shared.ledger import accounts
from shared.payments import settlement
from shared.reports import settlements
from tests.ledger.conftest import fund
from tests.payments.conftest import err
from tests.payments.test_intents_api import URL, create
from tests.reports.conftest import REPORTS

FEES = {"fee_schedule": {"wallet": {"percent_bps": 250, "fixed": {"USD": 30}}}}


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def pay(payments, m, payer_headers, amount):
    pi = create(payments, m.headers(), amount=amount, payment_method_types=["wallet"]).get_json()
    r = payments.post(f"{URL}/{pi['id']}/pay", json={"client_secret": pi["client_secret"]},
                      headers=payer_headers)
    assert r.status_code == 200, r.get_json()
    return pi["id"]


def shop_with_payments(deps, payments, make_merchant, payer, amounts=(1000, 2500)):
    m = make_merchant(("owner", "viewer"), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 100_000)
    ids = [pay(payments, m, ph, a) for a in amounts]
    return m, ids


def test_report_reconciles_with_the_ledger_after_wallet_payments(deps, payments, reports,
                                                                 make_merchant, payer):
    m, (pi1, pi2) = shop_with_payments(deps, payments, make_merchant, payer)
    r = reports.get(f"{REPORTS}/settlements?date={today()}", headers=m.headers("viewer"))
    assert r.status_code == 200, r.get_json()
    rep = r.get_json()
    assert rep["merchant"] == m.id and rep["livemode"] is False and rep["complete"] is False
    [usd] = rep["assets"]
    acc = settlement.settlement_template(m.id, "USD", False).id
    assert usd["asset"] == "USD" and usd["account_id"] == acc
    assert usd["opening"] == {"posted": 0, "pending": 0}
    # each wallet payment: its hold (pending) then its capture (posted), in ledger order
    assert [ln["category"] for ln in usd["lines"]] == ["hold", "payment", "hold", "payment"]
    pays = [ln for ln in usd["lines"] if ln["category"] == "payment"]
    # fee: 2.5 % rounded down + 30 fixed on the intent's first receipt
    assert [(p["payment_intent"], p["gross"], p["fee"], p["net"]) for p in pays] == \
        [(pi1, 1000, 55, 945), (pi2, 2500, 92, 2408)]
    t = usd["totals"]
    assert (t["payments"], t["gross"], t["fees"], t["net"], t["pending_change"]) == \
        (2, 3500, 147, 3353, 0)
    # opening + Σ lines = closing, field by field, and the running balance ends at closing
    for field in ("posted", "pending"):
        assert usd["opening"][field] + sum(ln[field] for ln in usd["lines"]) == \
            usd["closing"][field]
    assert usd["lines"][-1]["balance_after"] == usd["closing"]
    # closing is what the ledger holds now (main document + every shard)
    live = accounts.balance(deps.db, acc)
    assert usd["closing"] == {"posted": live.posted, "pending": live.credits_pending - live.debits_pending}
    assert usd["closing"]["posted"] == 3353
    # the same numbers as the intents' settlement summaries
    for pid, p in zip((pi1, pi2), pays):
        s = payments.get(f"{URL}/{pid}", headers=m.headers()).get_json()["settlement"]
        assert (s["amount"], s["fee"], s["net"]) == (p["gross"], p["fee"], p["net"])


def test_opening_balance_inside_a_day_is_exact(deps, payments, make_merchant, payer):
    """A boundary between two payments: opening(t) + Σ entries in [t, end) = closing."""
    m, _ = shop_with_payments(deps, payments, make_merchant, payer, amounts=(1000,))
    acc = settlement.settlement_template(m.id, "USD", False).id
    entries = sorted(settlements.day_entries(deps.db, acc, dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                                             dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)),
                     key=lambda e: e["committed_at"])
    boundary = entries[-1]["committed_at"] + dt.timedelta(microseconds=1)
    _uid, ph = payer
    pay(payments, m, ph, 4000)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    opening = settlements.sum_before(deps.db, acc, boundary)
    assert opening.credits_posted - opening.debits_posted == 945
    later = settlements.day_entries(deps.db, acc, boundary, end)
    section = settlements.build("USD", acc, opening, later,
                                settlements.linked_transfers(deps.db, later),
                                settlement.fees_template("USD", False).id)
    assert section.opening.posted == 945 and len(section.lines) == 2
    assert section.lines[-1].gross == 4000 and section.lines[-1].fee == 130
    closing = settlements.sum_before(deps.db, acc, end)
    assert section.closing.posted == closing.credits_posted - closing.debits_posted == 945 + 3870


def test_csv_is_well_formed_and_adds_up(deps, payments, reports, make_merchant, payer):
    m, _ = shop_with_payments(deps, payments, make_merchant, payer)
    r = reports.get(f"{REPORTS}/settlements.csv?date={today()}", headers=m.headers())
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == \
        f'attachment; filename="settlements-{m.id}-test-{today()}.csv"'
    text = r.get_data(as_text=True)
    assert text.endswith("\r\n") and "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0].keys()) == list(settlements.CSV_COLUMNS)
    assert [x["row"] for x in rows] == ["opening", "entry", "entry", "entry", "entry", "closing"]
    opening, closing = Decimal(rows[0]["balance_posted"]), Decimal(rows[-1]["balance_posted"])
    assert opening + sum(Decimal(x["posted"]) for x in rows[1:-1]) == closing == Decimal("33.53")
    assert sum(Decimal(x["fee"]) for x in rows if x["category"] == "payment") == Decimal("1.47")
    assert all(Decimal(x["gross"]) == Decimal(x["fee"]) + Decimal(x["net"])
               for x in rows if x["category"] == "payment")


def test_csv_cells_never_start_a_formula():
    assert settlements._text("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert settlements._text("@SUM(1)") == "'@SUM(1)"
    assert settlements._text("wallet:usr_1") == "wallet:usr_1"


def test_isolation_by_merchant_mode_and_role(deps, payments, reports, make_merchant, payer,
                                             api_key):
    m, _ = shop_with_payments(deps, payments, make_merchant, payer)
    other = make_merchant(("owner",))
    url = f"{REPORTS}/settlements?date={today()}"
    assert reports.get(url, headers=other.headers()).get_json()["assets"] == []
    live = reports.get(url, headers=m.headers(live=True)).get_json()
    assert live["livemode"] is True and live["assets"] == []
    # a key of the merchant reads it; a key of the other merchant sees its own (nothing)
    key = api_key(m.id, scopes=("payments:read",))
    got = reports.get(url, headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200 and got.get_json()["assets"][0]["totals"]["net"] == 3353
    wkey = api_key(m.id, scopes=("payments:write",))
    denied = reports.get(url, headers={"Authorization": f"Bearer {wkey}"})
    assert denied.status_code == 403 and err(denied)["code"] == "missing_scope"
    # a user outside a merchant context; a user who is not a member of the merchant
    from tests.support.identity import auth_headers
    plain = reports.get(url, headers=auth_headers(m.users["owner"][1]))
    assert plain.status_code == 403 and err(plain)["code"] == "merchant_required"
    stranger = reports.get(url, headers=auth_headers(other.users["owner"][1],
                                                     **{"Payloom-Merchant": m.id}))
    assert stranger.status_code in (403, 404)
    assert reports.get(url).status_code == 401


def test_hostile_input_is_a_clear_4xx(deps, reports, make_merchant):
    m = make_merchant(("owner",))
    h = m.headers()
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    cases = {
        "": "parameter_missing",
        "?date=2026-13-01": "date_invalid",
        "?date=2026-02-30": "date_invalid",
        f"?date={tomorrow}": "date_in_future",
        "?date=1999-12-31": "date_out_of_range",
        "?date=2026-12-01T00:00": "parameter_invalid",
        "?date=%27%20OR%201%3D1": "parameter_invalid",
        f"?date={today()}&account=acc_x": "parameter_unknown",
        "?date=" + "9" * 5000: "parameter_invalid",
    }
    for suffix in ("", ".csv"):
        for q, code in cases.items():
            r = reports.get(f"{REPORTS}/settlements{suffix}{q}", headers=h)
            assert r.status_code == 400, (q, r.status_code)
            assert err(r)["code"] == code, (q, err(r))
    assert reports.post(f"{REPORTS}/settlements?date={today()}", headers=h).status_code == 405


def test_build_categorises_refunds_disputes_payouts_and_reversals():
    """Pure: the entry shapes later capabilities will post (codes refund*, dispute*, payout*)
    and a reorg reversal with its fee reversal, from a non-zero opening."""
    from shared.ledger.model import Balances
    t0 = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)

    def entry(i, code, kind="single", **effect):
        return {"id": f"ent_{i}", "transfer_id": f"txf_{i}", "batch_id": f"txf_{i}", "leg": 1,
                "committed_at": t0 + dt.timedelta(seconds=i), "code": code, "kind": kind,
                "effect": effect, "metadata": {"payment_intent": "pi_1"}}
    entries = [entry(4, "payout", debits_posted=100), entry(1, "refund", debits_posted=200),
               entry(2, "dispute_hold", "pending", debits_pending=300),
               entry(3, "payment_reversal", debits_posted=90)]
    transfers = {"txf_3": {"linked_ids": ["txf_3", "txf_3f"]},
                 "txf_3f": {"kind": "single", "amount": 10, "debit_account_id": "acc_fees",
                            "credit_account_id": "acc_ext", "metadata": {"payment_intent": "pi_1"}}}
    sec = settlements.build("USD", "acc_s", Balances(credits_posted=1000), entries, transfers,
                            "acc_fees")
    assert [ln.category for ln in sec.lines] == ["refund", "dispute", "reversal", "payout"]
    rev = sec.lines[2]
    assert (rev.net, rev.fee, rev.gross) == (-90, -10, -100)
    t = sec.totals
    assert (t.refunds, t.disputes_pending, t.payouts, t.reversals, t.reversed_net) == \
        (-200, -300, -100, 1, -90)
    assert sec.closing.posted == 1000 - 200 - 90 - 100 and sec.closing.pending == -300
    assert t.pending_change == sec.closing.pending - sec.opening.pending
