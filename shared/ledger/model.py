"""Ledger model: accounts, balances and transfer specifications (TigerBeetle's shapes).

Firestore layout
----------------
``ledger_accounts/{acc_…}``           the account: owner, asset, flags, and (for ordinary
                                      accounts) the four balances + ``entry_count``.
``ledger_accounts/{acc_…}/balance_shards/{k}``
                                      hot accounts only: partial balances written with blind
                                      ``Increment``; the balance is main document + Σ shards.
``ledger_transfers/{txf_…}``          one immutable transfer: debit account, credit account,
                                      amount, kind, balances after. Annotations that record a
                                      later event (``pending_status`` of a pending transfer,
                                      ``reversed_amount`` of a reversed one) are the only fields
                                      ever updated, each at most once per resolving transfer.
``ledger_entries/{ent_…}``            one line per (transfer, account): the history index users
                                      page through, with that account's balance after.
"""
from __future__ import annotations

import dataclasses
from typing import Any

ACCOUNTS = "ledger_accounts"
SHARDS = "balance_shards"
TRANSFERS = "ledger_transfers"
ENTRIES = "ledger_entries"

BALANCE_FIELDS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")

# Transfer kinds (``kind``): how the transfer moves balances.
SINGLE, PENDING, POST, VOID, EXPIRE = "single", "pending", "post_pending", "void_pending", "expire_pending"
RESOLUTIONS = (POST, VOID, EXPIRE)


@dataclasses.dataclass
class Balances:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @classmethod
    def of(cls, doc: dict[str, Any] | None) -> "Balances":
        doc = doc or {}
        return cls(*(int(doc.get(f, 0) or 0) for f in BALANCE_FIELDS))

    def __add__(self, other: "Balances") -> "Balances":
        return Balances(*(getattr(self, f) + getattr(other, f) for f in BALANCE_FIELDS))

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in BALANCE_FIELDS}

    def is_zero(self) -> bool:
        return not any(getattr(self, f) for f in BALANCE_FIELDS)

    # Views for a credit-normal account (a user's wallet is a liability of ours).
    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def pending_out(self) -> int:
        return self.debits_pending

    @property
    def pending_in(self) -> int:
        return self.credits_pending

    @property
    def available(self) -> int:
        """What ``debits_must_not_exceed_credits`` lets the owner still spend."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def summary(self) -> dict[str, int]:
        return {**self.as_dict(), "posted": self.posted, "available": self.available,
                "pending_in": self.pending_in, "pending_out": self.pending_out}


@dataclasses.dataclass(frozen=True)
class AccountFlags:
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    hot: bool = False

    def as_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AccountTemplate:
    """What ``open_account`` (or a transfer's ``templates``) creates if the account is missing."""
    id: str
    asset: str
    owner_type: str          # "user" | "system"
    owner_id: str            # user id, or the system kind ("fees", "topup_clearing", …)
    kind: str                # "wallet" | system kind
    flags: AccountFlags
    shard_count: int = 1     # balance shards taking blind writes (16 for hot accounts)
    label: str = ""

    def document(self, now) -> dict[str, Any]:
        if self.flags.hot and self.flags.credits_must_not_exceed_debits:
            raise ValueError("hot accounts cannot carry credits_must_not_exceed_debits")
        return {"id": self.id, "object": "ledger_account", "asset": self.asset,
                "owner_type": self.owner_type, "owner_id": self.owner_id, "kind": self.kind,
                "flags": self.flags.as_dict(),
                "shard_count": max(1, self.shard_count),
                "label": self.label, "closed": False, **Balances().as_dict(), "entry_count": 0,
                "created_at": now, "updated_at": now}


@dataclasses.dataclass
class TransferSpec:
    """One transfer the client asks for. ``id`` is its idempotency key (``txf_…``).

    - single-phase: ``debit_account_id``, ``credit_account_id``, ``amount``, ``asset``.
    - pending (a hold): the same with ``pending=True`` and optionally ``timeout_seconds``.
    - post: ``post_pending_id`` (+ optional ``amount`` ≤ the pending amount; None = all of it).
    - void: ``void_pending_id``.
    - reversal: ``reverses`` names a posted transfer; accounts swapped, amount ≤ what is left.
    Accounts and asset may be omitted on post/void/reversal; if given they must match.
    """
    id: str
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    amount: int | None = None
    asset: str | None = None
    pending: bool = False
    timeout_seconds: int | None = None
    post_pending_id: str | None = None
    void_pending_id: str | None = None
    reverses: str | None = None
    code: str = "transfer"
    description: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    # internal: set only by expire_pending()
    expire_pending_id: str | None = None

    @property
    def kind(self) -> str:
        if self.post_pending_id:
            return POST
        if self.void_pending_id:
            return VOID
        if self.expire_pending_id:
            return EXPIRE
        return PENDING if self.pending else SINGLE

    @property
    def pending_id(self) -> str | None:
        return self.post_pending_id or self.void_pending_id or self.expire_pending_id

    def request_fields(self) -> dict[str, Any]:
        """The client-supplied fields a retry must repeat exactly (TigerBeetle ``exists_with_different_*``)."""
        return {"kind": self.kind, "debit_account_id": self.debit_account_id,
                "credit_account_id": self.credit_account_id, "amount": self.amount,
                "asset": self.asset, "timeout_seconds": self.timeout_seconds,
                "pending_id": self.pending_id, "reverses": self.reverses, "code": self.code,
                "description": self.description, "metadata": dict(self.metadata or {})}


@dataclasses.dataclass
class TransferResult:
    id: str
    status: str              # "created" | "exists"
    transfer: dict[str, Any]
