"""A signed-in user's own wallet (``/v1/wallet``): user access tokens only, not API keys."""
from __future__ import annotations

from payloom.objects import register
from payloom.resources._base import Listable


@register
class Balance(Listable):
    """One asset's balance (available, pending), in integer minor units:
    ``Balance.list()`` answers every asset."""
    OBJECT_NAME = "balance"
    PATH = "/v1/wallet/balances"


@register
class WalletTransaction(Listable):
    """The user's ledger entries, newest first, each with the balance after it (filters:
    ``asset``, ``created={"gte": unix, "lt": unix}``)."""
    OBJECT_NAME = "wallet_transaction"
    PATH = "/v1/wallet/transactions"
