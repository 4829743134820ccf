"""Settlement reports (a day's page, and the same report to download as CSV or JSON) and the
analytics page (volume and conversion per day, drawn by Chart.js from our own static files).

Merchant and mode come from the member's principal only, as in ``/v1/reports``; the same
per-merchant read limit applies (reports read many documents)."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import flask

from shared.dashboard import fmt, guard, limits
from shared.dashboard.members import Member
from shared.platform.errors import PayloomError
from shared.platform.ratelimit import enforce
from shared.reports import analytics, days, settlements
from shared.web.pages import Page

DEFAULT_DAYS = 30


def _today(ctx) -> dt.date:
    return ctx.now.astimezone(dt.UTC).date()


def _report(ctx, member: Member, value: str | None):
    enforce(ctx.deps.db, limits.REPORTS_READ, member.principal.tenant_id, ctx.now)
    day = days.parse_day(value or fmt.day(_today(ctx)), param="date")
    return settlements.report(ctx.deps.db, member.principal.tenant_id, member.principal.livemode,
                              day, ctx.now)


@guard.member_page("GET", "/reports", section="reports")
def report_page(ctx, member: Member):
    wanted = ctx.request.args.get("date") or fmt.day(_today(ctx))
    try:
        rep, error = _report(ctx, member, wanted), None
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 429:
            raise
        rep, error = None, exc.message
    return Page("dashboard/reports.html", {"report": rep, "date": wanted[:10], "error": error},
                status=400 if error else 200)


def _download(rep, kind: str, body: str, mimetype: str) -> flask.Response:
    mode = "live" if rep.livemode else "test"
    name = f"settlements-{rep.merchant}-{mode}-{rep.date}.{kind}"
    return flask.Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


@guard.member_page("GET", "/reports/settlements.csv", section="reports")
def report_csv(ctx, member: Member):
    rep = _report(ctx, member, ctx.request.args.get("date"))
    return _download(rep, "csv", settlements.to_csv(rep), "text/csv")


@guard.member_page("GET", "/reports/settlements.json", section="reports")
def report_json(ctx, member: Member):
    rep = _report(ctx, member, ctx.request.args.get("date"))
    return _download(rep, "json", rep.model_dump_json(indent=2), "application/json")


def chart_data(result, dates: list[str]) -> dict:
    """Per asset, for every day of ``dates``: the volume (decimal strings at the asset's scale:
    exact; the chart parses them), the conversion rate in % (None: nothing created), the counts;
    from the ``method == "all"`` rows."""
    series: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in result.data:
        if row.method == "all":
            series[row.asset][row.date] = row
    out = {"dates": dates, "assets": []}
    for asset, by_day in sorted(series.items()):
        out["assets"].append({
            "asset": asset,
            "volume": [fmt.decimal(by_day[d].volume, asset) if d in by_day else "0" for d in dates],
            "conversion": [round(100 * by_day[d].conversion_rate, 1)
                           if d in by_day and by_day[d].conversion_rate is not None else None
                           for d in dates],
            "created": [by_day[d].created if d in by_day else 0 for d in dates],
            "succeeded": [by_day[d].succeeded if d in by_day else 0 for d in dates]})
    return out


@guard.member_page("GET", "/analytics", section="analytics")
def analytics_page(ctx, member: Member):
    today = _today(ctx)
    first = ctx.request.args.get("from") or fmt.day(today - dt.timedelta(days=DEFAULT_DAYS - 1))
    last = ctx.request.args.get("to") or fmt.day(today)
    result, error, dates = None, None, []
    try:
        enforce(ctx.deps.db, limits.REPORTS_READ, member.principal.tenant_id, ctx.now)
        start, end = days.parse_day(first, param="from"), days.parse_day(last, param="to")
        result = analytics.analytics(ctx.deps, member.principal.tenant_id,
                                     member.principal.livemode, start, end, ctx.now)
        dates = [fmt.day(d) for d in days.day_range(start, end, ctx.now)]
    except PayloomError as exc:
        if exc.status >= 500 or exc.status == 429:
            raise
        error = exc.message
    rows = [r for r in result.data if r.method == "all"] if result else []
    return Page("dashboard/analytics.html", {
        "first": first[:10], "last": last[:10], "error": error, "rows": rows,
        "chart": chart_data(result, dates) if result else {"dates": [], "assets": []}},
        status=400 if error else 200)
