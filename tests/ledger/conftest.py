"""Helpers for ledger tests (real emulators through ``deps``); the wallet tests import them too
(``tests/wallet/conftest.py`` holds the wallet's own fixtures)."""
from __future__ import annotations

from shared.ledger import accounts, service
from shared.ledger.model import TransferSpec
from shared.platform.ids import new_id
from shared.platform.uow import run_unit

__all__ = ["fund", "new_user_id", "unit"]


def unit(deps, fn, *args, **kw):
    """Run a uow-taking service function in its own unit of work (commit + publish)."""
    return run_unit(deps, lambda uow: fn(uow, *args, **kw))


def new_user_id() -> str:
    return new_id("usr")


def fund(deps, user_id: str, amount: int, asset: str = "USD") -> str:
    """Credit a user's wallet from top-up clearing (what a succeeded top-up does)."""
    clearing = accounts.ensure_system_account(deps.db, "topup_clearing", asset, deps.clock.now())
    tmpl = accounts.wallet_template(user_id, asset)
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=clearing,
                                               credit_account_id=tmpl.id, amount=amount,
                                               asset=asset, code="topup"), templates=[tmpl])
    return tmpl.id
