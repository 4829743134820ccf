"""``/v1/wallet``: balances, top-ups, P2P transfers, history, CSV statements, and the private
records endpoint for the app's backend. The card processor's webhook arrives through the inbox
(``/v1/inbound/stripe``; handlers in ``shared.wallet.inbound``)."""
from __future__ import annotations

import flask

from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Router
from shared.platform.pagination import ListResponse
from shared.wallet import service
from shared.wallet.models import (BalanceList, CaptureHold, CreateHold, CreateRecord,
                                  CreateTopUp, CreateTransfer, StatementQuery, TopUp,
                                  TransactionsQuery, WalletHold, WalletRecord, WalletTransaction,
                                  WalletTransfer)

USER = ("user",)


api = Router("wallet", public_prefix="wallet")


@api.get("/balances", response=BalanceList, scopes=["wallet:read"], auth=USER)
def get_balances(ctx: Context):
    """The caller's balance in every asset (available, posted, pending in/out)."""
    return service.balances(ctx.deps, ctx.principal)


@api.post("/topups", body=CreateTopUp, response=TopUp, status=201, scopes=["wallet:write"],
          auth=USER, rate_limits=[(Limit("wallet.topup", 30, 3600), "principal")], atomic=False)
def create_topup(ctx: Context):
    """Top up by card: a PaymentIntent; the wallet is credited when the provider confirms."""
    return service.create_topup(ctx.deps, ctx.principal, ctx.body, ctx.idempotency_key)


@api.post("/transfers", body=CreateTransfer, response=WalletTransfer, status=201,
          scopes=["wallet:write"], auth=USER,
          rate_limits=[(Limit("wallet.p2p", 60, 60), "principal")])
def create_transfer(ctx: Context):
    """Send money to another user by username, phone or wallet address."""
    return service.send_p2p(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@api.post("/holds", body=CreateHold, response=WalletHold, status=201, scopes=["wallet:write"],
          auth=USER, rate_limits=[(Limit("wallet.p2p", 60, 60), "principal")])
def create_hold(ctx: Context):
    """Hold funds for a payee (two-phase): captured by the payee, canceled, or expired."""
    return service.create_hold(ctx.uow, ctx.principal, ctx.body, ctx.idempotency_key)


@api.get("/holds/{hold_id}", response=WalletHold, scopes=["wallet:read"], auth=USER)
def get_hold(ctx: Context, hold_id: str):
    """A hold the caller pays or receives."""
    return service.get_hold(ctx.uow, ctx.principal, hold_id)


@api.post("/holds/{hold_id}/capture", body=CaptureHold, response=WalletHold,
          scopes=["wallet:write"], auth=USER)
def capture_hold(ctx: Context, hold_id: str):
    """The payee captures all or part of a hold; the rest goes back to the payer."""
    return service.capture_hold(ctx.uow, ctx.principal, hold_id, ctx.body, ctx.idempotency_key)


@api.post("/holds/{hold_id}/cancel", response=WalletHold, scopes=["wallet:write"], auth=USER)
def cancel_hold(ctx: Context, hold_id: str):
    """Either party releases the whole hold."""
    return service.cancel_hold(ctx.uow, ctx.principal, hold_id, ctx.idempotency_key)


@api.get("/transactions", query=TransactionsQuery, response=ListResponse[WalletTransaction],
         scopes=["wallet:read"], auth=USER)
def list_transactions(ctx: Context):
    """The caller's ledger entries, newest first, each with the balance after it."""
    return service.list_transactions(ctx.deps, ctx.principal, ctx.query)


@api.get("/statement.csv", query=StatementQuery, scopes=["wallet:read"], auth=USER)
def statement(ctx: Context):
    """A CSV statement of one asset between two dates (inclusive)."""
    filename, text = service.statement_csv(ctx.deps, ctx.principal, ctx.query)
    return flask.Response(text.encode("utf-8"), status=200, content_type="text/csv; charset=utf-8",
                          headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                   "Cache-Control": "no-store"})


@api.post("/records", body=CreateRecord, response=WalletRecord, status=201, auth=SERVICE)
def create_record(ctx: Context):
    """Private: the app's backend links its own record (tx hash, note) to a ledger entry."""
    return service.create_record(ctx.uow, ctx.body, ctx.idempotency_key)
