"""``/v1/reports`` (function ``reports``, merchant context) and the hourly reconciliation job
(function ``reconciliation``, Cloud Scheduler, ``auth=SERVICE``).

Merchant routes take a member (viewer or higher: reports are read-only) in a merchant context
(``Payloom-Merchant``, optionally ``Payloom-Mode: live``) or one of the merchant's API keys with
``payments:read``. The merchant and mode come only from the principal, never from the query:
another merchant's or the other mode's ledger is unreachable by construction.
"""
from __future__ import annotations

import flask

from shared.chain.networks import chain_networks
from shared.merchants.roles import require
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Router
from shared.reports import analytics as analytics_mod
from shared.reports import days, reconcile, settlements
from shared.reports.models import (
    Analytics,
    AnalyticsQuery,
    ReconcileRequest,
    ReconciliationRun,
    SettlementQuery,
    SettlementReport,
)

MERCHANT = ("user", "api_key")
LIMITS = [(Limit("reports.read", 60, 60), "tenant")]   # reports read many documents

api = Router("reports", public_prefix="reports", tags=["reports"])
reconcile_job = Router("reconciliation")


def _settlement(ctx: Context) -> SettlementReport:
    require(ctx.principal, "read")
    day = days.parse_day(ctx.query.date, param="date")
    return settlements.report(ctx.deps.db, ctx.principal.tenant_id, ctx.principal.livemode, day,
                              ctx.now)


@api.get("/settlements", query=SettlementQuery, response=SettlementReport,
         scopes=["payments:read"], auth=MERCHANT, rate_limits=LIMITS)
def settlement_report(ctx: Context):
    """The day's settlement report: every entry of the merchant's settlement accounts, with
    opening and closing balances per asset."""
    return _settlement(ctx)


@api.get("/settlements.csv", query=SettlementQuery, scopes=["payments:read"], auth=MERCHANT,
         rate_limits=LIMITS)
def settlement_report_csv(ctx: Context):
    """The same report as CSV (RFC 4180, exact decimal amounts)."""
    rep = _settlement(ctx)
    mode = "live" if rep.livemode else "test"
    name = f"settlements-{rep.merchant}-{mode}-{rep.date}.csv"
    return flask.Response(settlements.to_csv(rep), mimetype="text/csv",
                          headers={"Content-Disposition": f'attachment; filename="{name}"',
                                   "Cache-Control": "no-store"})


@api.get("/analytics", query=AnalyticsQuery, response=Analytics, scopes=["payments:read"],
         auth=MERCHANT, rate_limits=LIMITS)
def payment_analytics(ctx: Context):
    """Per UTC day, asset and method: intents created, succeeded, volume, conversion."""
    require(ctx.principal, "read")
    first = days.parse_day(ctx.query.from_, param="from")
    last = days.parse_day(ctx.query.to, param="to")
    return analytics_mod.analytics(ctx.deps, ctx.principal.tenant_id, ctx.principal.livemode,
                                   first, last, ctx.now)


@reconcile_job.post("/", body=ReconcileRequest, response=ReconciliationRun, auth=SERVICE,
                    idempotent=False, atomic=False)
def run_reconciliation(ctx: Context):
    """Cloud Scheduler target (hourly): reconcile every configured network (or one)."""
    nets = chain_networks(ctx.deps).networks
    if ctx.body is not None and ctx.body.network:
        nets = tuple(n for n in nets if n.name == ctx.body.network)
        if not nets:
            from shared.platform.errors import InvalidRequest
            raise InvalidRequest(f"Unknown network {ctx.body.network!r}.",
                                 code="network_unknown", param="network")
    runs = [reconcile.run_network(ctx.deps, n) for n in nets]
    key = ctx.now.strftime("%Y-%m-%dT%H")
    return ReconciliationRun(id=f"reconciliation:{key}", networks=runs)
