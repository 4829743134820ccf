"""The daily settlement report of a merchant in one mode: every ledger entry of its settlement
accounts (one per asset, ``shared.payments.settlement.settlement_template``) committed that UTC
day, with the opening and closing balance of each account.

What it reads, per asset whose settlement account exists (6 account ids, one ``get_all``):
- opening = Σ effects of the account's entries committed before the day (ONE aggregation query,
  as ``shared.ledger.history.balance_before``: no entry is read);
- the day's entries: one query (account_id ==, committed_at in [start, end)) served by the
  existing index (account_id, committed_at), ordered in memory by ledger order
  (committed_at, batch_id, leg: ``history.order_key``);
- closing = opening + Σ the day's effects, CHECKED against a second aggregation up to ``end``:
  both reads see the same set of entries because ``end`` is fixed before either runs and
  ``committed_at`` is the commit time (nothing can commit into the past). A mismatch is a 503
  ``report_inconsistent`` (never a wrong report);
- gross and fee of each payment (and reversal) line: the settlement account only receives the
  NET leg (ADR 0031: the fee leg goes to the platform's fee account in the same linked batch), so
  the line's transfer and the transfers linked with it are read (two ``get_all``s per report) and
  the fee is the signed amount of the batch's transfers touching the mode's fee account for the
  same intent (and receipt reference when both name one).

Balances are credit-normal views: ``posted = credits_posted − debits_posted`` (what the merchant
is owed), ``pending = credits_pending − debits_pending`` (holds in flight: a wallet payment's
hold and its capture are two entries; a future dispute hold is a pending debit). The identity
``opening + Σ line = closing`` holds for both (tested).

Size: at most ``MAX_LINES`` entries per account and day (a bigger day is a 422 that names the
limit: such a merchant needs the rollup-based export, ADR 0037).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.ledger import assets as assets_mod
from shared.ledger.accounts import account_ref
from shared.ledger.history import order_key
from shared.ledger.model import BALANCE_FIELDS, ENTRIES, PENDING, TRANSFERS, Balances
from shared.payments.settlement import fees_template, settlement_template
from shared.platform.clock import rfc3339
from shared.platform.errors import ServiceUnavailable, Unprocessable
from shared.reports import days
from shared.reports.models import (
    AssetReport,
    BalancePair,
    ReportLine,
    SettlementReport,
    Totals,
)

MAX_LINES = 20_000
GET_ALL_CHUNK = 300


# --- pure rules ----------------------------------------------------------------------------------
def category(entry: dict[str, Any]) -> str:
    """What a settlement-account entry is, from its transfer code and kind."""
    code = str(entry.get("code") or "")
    if code == "payment":
        return "payment"
    if code == "payment_reversal":
        return "reversal"
    for prefix in ("refund", "dispute", "payout"):
        if code.startswith(prefix):
            return prefix
    if entry.get("kind") == PENDING or code.endswith("_hold"):
        return "hold"
    return "other"


def effect(entry: dict[str, Any]) -> BalancePair:
    e = Balances.of(entry.get("effect"))
    return BalancePair(posted=e.credits_posted - e.debits_posted,
                       pending=e.credits_pending - e.debits_pending)


def pair(b: Balances) -> BalancePair:
    return BalancePair(posted=b.credits_posted - b.debits_posted,
                       pending=b.credits_pending - b.debits_pending)


def fee_of(entry: dict[str, Any], transfers: dict[str, dict[str, Any] | None],
           fees_account: str) -> int:
    """The signed fee that rode with ``entry``'s transfer: Σ over the transfers linked with it
    that touch the fee account for the same intent (and reference) — credit +, debit −."""
    own = transfers.get(entry["transfer_id"]) or {}
    meta = entry.get("metadata") or {}
    fee = 0
    for tid in own.get("linked_ids") or []:
        t = transfers.get(tid)
        if not t or t.get("kind") == PENDING:
            continue
        if fees_account not in (t.get("debit_account_id"), t.get("credit_account_id")):
            continue
        tm = t.get("metadata") or {}
        if tm.get("payment_intent") != meta.get("payment_intent"):
            continue
        if meta.get("reference") and tm.get("reference") and tm["reference"] != meta["reference"]:
            continue
        fee += int(t.get("amount") or 0) * (1 if t.get("credit_account_id") == fees_account else -1)
    return fee


def build(asset: str, account_id: str, opening: Balances, entries: list[dict[str, Any]],
          transfers: dict[str, dict[str, Any] | None], fees_account: str) -> AssetReport:
    """The asset's section (pure): lines in ledger order with running balances and totals."""
    entries = sorted(entries, key=order_key)
    bal, totals, lines = pair(opening), Totals(), []
    for e in entries:
        eff = effect(e)
        bal = BalancePair(posted=bal.posted + eff.posted, pending=bal.pending + eff.pending)
        cat = category(e)
        meta = e.get("metadata") or {}
        gross = fee = net = None
        if cat in ("payment", "reversal"):
            net = eff.posted
            fee = fee_of(e, transfers, fees_account)
            gross = net + fee
            totals.gross += gross
            totals.fees += fee
            totals.net += net
            if cat == "payment":
                totals.payments += 1
            else:
                totals.reversals += 1
                totals.reversed_net += net
        elif cat == "refund":
            totals.refunds += eff.posted
        elif cat == "dispute":
            totals.disputes_posted += eff.posted
            totals.disputes_pending += eff.pending
        elif cat == "payout":
            totals.payouts += eff.posted
        elif cat != "hold":
            totals.other += eff.posted
        totals.pending_change += eff.pending
        committed = e.get("committed_at")
        lines.append(ReportLine(
            entry_id=e["id"], committed_at=rfc3339(committed) if committed else "",
            transfer_id=e["transfer_id"], batch_id=e.get("batch_id"), category=cat,
            code=e.get("code"), kind=e.get("kind"), payment_intent=meta.get("payment_intent"),
            reference=meta.get("reference"), gross=gross, fee=fee, net=net,
            posted=eff.posted, pending=eff.pending, balance_after=bal))
    return AssetReport(asset=asset, account_id=account_id, opening=pair(opening), closing=bal,
                       totals=totals, lines=lines)


# --- reads -----------------------------------------------------------------------------------------
def sum_before(db, account_id: str, when: dt.datetime) -> Balances:
    """Σ effects of the account's entries committed strictly before ``when`` (one aggregation)."""
    q = (db.collection(ENTRIES).where(filter=FieldFilter("account_id", "==", account_id))
         .where(filter=FieldFilter("committed_at", "<", when)))
    agg = None
    for f in BALANCE_FIELDS:
        agg = (q if agg is None else agg).sum(f"effect.{f}", alias=f)
    total = Balances()
    for result in agg.get():
        values = {r.alias: int(r.value or 0) for r in result}
        total = Balances(**{f: values.get(f, 0) for f in BALANCE_FIELDS})
    return total


def day_entries(db, account_id: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    q = (db.collection(ENTRIES).where(filter=FieldFilter("account_id", "==", account_id))
         .where(filter=FieldFilter("committed_at", ">=", start))
         .where(filter=FieldFilter("committed_at", "<", end))
         .order_by("committed_at").limit(MAX_LINES + 1))
    out = [s.to_dict() for s in q.stream()]
    if len(out) > MAX_LINES:
        raise Unprocessable(f"This day has more than {MAX_LINES} entries in one asset; the JSON "
                            "and CSV reports stop there.", code="report_too_large", param="date")
    return out


def read_docs(db, collection: str, ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    ids = sorted({i for i in ids if i})
    out: dict[str, dict[str, Any] | None] = {}
    col = db.collection(collection)
    for k in range(0, len(ids), GET_ALL_CHUNK):
        for snap in db.get_all([col.document(i) for i in ids[k:k + GET_ALL_CHUNK]]):
            out[snap.id] = snap.to_dict() if snap.exists else None
    return out


def linked_transfers(db, entries: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """The transfers of payment/reversal lines and every transfer linked with them."""
    wanted = [e["transfer_id"] for e in entries if category(e) in ("payment", "reversal")]
    own = read_docs(db, TRANSFERS, wanted)
    more = {tid for t in own.values() if t for tid in (t.get("linked_ids") or [])} - set(own)
    return {**own, **read_docs(db, TRANSFERS, more)}


@dataclasses.dataclass(frozen=True)
class Period:
    day: dt.date
    start: dt.datetime
    end: dt.datetime
    complete: bool


def period(day: dt.date, now: dt.datetime) -> Period:
    days.not_future(day, now, param="date")
    start, day_end = days.bounds(day)
    return Period(day, start, min(day_end, now), day_end <= now)


def report(db, merchant_id: str, livemode: bool, day: dt.date, now: dt.datetime) -> SettlementReport:
    p = period(day, now)
    ids = {a: settlement_template(merchant_id, a, livemode).id for a in assets_mod.ASSETS}
    snaps = {s.id: s for s in db.get_all([account_ref(db, i) for i in ids.values()])}
    sections = []
    for asset, acc in ids.items():
        if acc not in snaps or not snaps[acc].exists:
            continue                               # never settled in this asset
        opening = sum_before(db, acc, p.start)
        entries = day_entries(db, acc, p.start, p.end)
        section = build(asset, acc, opening, entries, linked_transfers(db, entries),
                        fees_template(asset, livemode).id)
        closing = pair(sum_before(db, acc, p.end))
        if closing != section.closing:
            raise ServiceUnavailable("The ledger changed while the report was read; retry.",
                                     code="report_inconsistent")
        sections.append(section)
    return SettlementReport(merchant=merchant_id, livemode=livemode, date=day.isoformat(),
                            period_start=rfc3339(p.start), period_end=rfc3339(p.end),
                            complete=p.complete, assets=sections)


# --- CSV -----------------------------------------------------------------------------------------
CSV_COLUMNS = ("row", "asset", "account_id", "committed_at", "entry_id", "transfer_id",
               "category", "code", "payment_intent", "reference", "gross", "fee", "net",
               "posted", "pending", "balance_posted", "balance_pending")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s.startswith(_FORMULA_START) else s


def _amount(value: int | None, asset: str) -> str:
    return "" if value is None else assets_mod.format_decimal(value, asset)


def to_csv(rep: SettlementReport) -> str:
    """RFC 4180 (CRLF rows, quoted when needed); amounts as exact decimals of the asset."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for sec in rep.assets:
        a = sec.asset
        w.writerow(["opening", a, sec.account_id, rep.period_start, "", "", "", "", "", "", "",
                    "", "", "", "", _amount(sec.opening.posted, a), _amount(sec.opening.pending, a)])
        for ln in sec.lines:
            w.writerow(["entry", a, sec.account_id, ln.committed_at, _text(ln.entry_id),
                        _text(ln.transfer_id), ln.category, _text(ln.code),
                        _text(ln.payment_intent), _text(ln.reference), _amount(ln.gross, a),
                        _amount(ln.fee, a), _amount(ln.net, a), _amount(ln.posted, a),
                        _amount(ln.pending, a), _amount(ln.balance_after.posted, a),
                        _amount(ln.balance_after.pending, a)])
        w.writerow(["closing", a, sec.account_id, rep.period_end, "", "", "", "", "", "", "", "",
                    "", "", "", _amount(sec.closing.posted, a), _amount(sec.closing.pending, a)])
    return buf.getvalue()
