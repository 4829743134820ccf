"""Posting a captured payment to the merchant: one linked set of ledger transfers per receipt.

For each receipt being settled (a chain transfer, a wallet hold) the ledger gets two legs,
linked in ONE ``engine.execute`` batch so they land together or not at all:

    source → merchant settlement account   amount − fee
    source → platform fee account          fee

where ``source`` is where the money came from: the payer's wallet (a hold posted in the same
batch, see ``wallet_method``), the ``external`` system account for on-chain money, or the card
clearing account. Debiting the source twice (net and fee) instead of moving the gross into the
settlement account and taking the fee out again means the merchant's settlement account is only
ever CREDITED by payments: credits are blind shard increments, so thousands of payments to one
merchant never contend (ADR 0020, hot accounts).

Accounts: settlement per (merchant, asset, mode) — ``system_account_id("settlement", asset,
"<mch>")`` in live mode and ``"<mch>:test"`` in test mode; fees per (asset, mode) likewise
(``fees`` / key ``test``). Test-mode money never meets live money.

Idempotency: transfer ids are ``derived_id("txf", "pay", intent, reference, generation)``; a
retried unit re-finds them and posts nothing twice. ``generation`` grows when a receipt is
reversed (a chain reorg), so a re-confirmation posts again exactly once.

Fee: ``amount × percent_bps // 10000`` (rounded down: never more than the schedule) plus the
method's fixed fee for the asset on the intent's FIRST settled receipt only, capped at the
amount. The schedule is copied onto the intent at creation, so a later change of the merchant's
prices does not reprice an intent in flight.
"""
from __future__ import annotations

from typing import Any

from shared.ledger import accounts, engine
from shared.ledger.model import AccountTemplate, TransferSpec
from shared.platform.ids import derived_id


def mode_key(merchant_id: str, livemode: bool) -> str:
    return merchant_id if livemode else f"{merchant_id}:test"


def settlement_template(merchant_id: str, asset: str, livemode: bool) -> AccountTemplate:
    return accounts.system_template("settlement", asset, mode_key(merchant_id, livemode))


def fees_template(asset: str, livemode: bool) -> AccountTemplate:
    return accounts.system_template("fees", asset, "" if livemode else "test")


def compute_fee(amount: int, schedule: dict[str, Any] | None, asset: str, *,
                first: bool) -> int:
    """The platform's fee on ``amount`` (pure). ``schedule``: {percent_bps, fixed: {asset: n}}."""
    schedule = schedule or {}
    bps = int(schedule.get("percent_bps") or 0)
    fixed = int((schedule.get("fixed") or {}).get(asset) or 0) if first else 0
    return max(0, min(amount, amount * bps // 10_000 + fixed))


def transfer_ids(intent_id: str, reference: str, generation: int = 0) -> tuple[str, str]:
    """(net, fee) transfer ids of one receipt's settlement."""
    base = (intent_id, reference, str(generation))
    return derived_id("txf", "pay", *base), derived_id("txf", "payfee", *base)


def legs(doc: dict[str, Any], receipt: dict[str, Any], *, source: AccountTemplate,
         first: bool) -> tuple[list[TransferSpec], dict[str, Any]]:
    """The two transfer specs settling ``receipt`` (pure), and the settlement record."""
    asset = receipt.get("ledger_asset") or doc["currency"]
    amount = int(receipt.get("ledger_amount") or receipt["amount"])
    schedule = (doc.get("fees") or {}).get(receipt.get("method") or doc.get("method") or "")
    fee = compute_fee(amount, schedule, asset, first=first)
    net_id, fee_id = transfer_ids(doc["id"], receipt["reference"], int(receipt.get("generation") or 0))
    dest = settlement_template(doc["tenant"], asset, doc["livemode"])
    fees = fees_template(asset, doc["livemode"])
    meta = {"payment_intent": doc["id"], "merchant": doc["tenant"],
            "reference": receipt["reference"][:200]}
    specs = []
    if amount - fee:
        specs.append(TransferSpec(id=net_id, debit_account_id=source.id,
                                  credit_account_id=dest.id, amount=amount - fee, asset=asset,
                                  code="payment", description="Payment", metadata=meta))
    if fee:
        specs.append(TransferSpec(id=fee_id, debit_account_id=source.id,
                                  credit_account_id=fees.id, amount=fee, asset=asset,
                                  code="payment_fee", description="Payment fee", metadata=meta))
    record = {"transfer_ids": [s.id for s in specs], "amount": amount, "fee": fee,
              "net": amount - fee, "asset": asset, "account_id": dest.id}
    return specs, record


def source_for(doc: dict[str, Any], receipt: dict[str, Any]) -> AccountTemplate:
    """Where a non-wallet receipt's money is booked from."""
    asset = receipt.get("ledger_asset") or doc["currency"]
    kind = "topup_clearing" if receipt.get("method") == "card" else "external"
    return accounts.system_template(kind, asset, "" if doc["livemode"] else "test")


def settle(uow, doc: dict[str, Any], receipts: list[dict[str, Any]], *,
           hold: bool = False, source: AccountTemplate | None = None) -> dict[str, Any]:
    """Post every receipt in ``receipts`` in ONE linked ledger batch and return the intent's
    updated ``settlement`` summary (the caller writes it with the intent, in the same unit).

    ``hold``: each leg becomes a pending transfer (a hold on ``source``) and its post, in the
    same batch (the wallet method's two-phase hold, captured at once)."""
    summary = dict(doc.get("settlement") or {"transfer_ids": [], "amount": 0, "fee": 0, "net": 0})
    summary["transfer_ids"] = list(summary.get("transfer_ids") or [])
    specs: list[TransferSpec] = []
    templates: dict[str, AccountTemplate] = {}
    first = not summary["transfer_ids"]
    for r in receipts:
        src = source or source_for(doc, r)
        leg_specs, rec = legs(doc, r, source=src, first=first)
        first = False
        templates[src.id] = src
        templates[rec["account_id"]] = settlement_template(doc["tenant"], rec["asset"], doc["livemode"])
        fees = fees_template(rec["asset"], doc["livemode"])
        templates[fees.id] = fees
        specs += leg_specs
        r.update(settled=True, transfer_ids=rec["transfer_ids"], fee=rec["fee"])
        summary.update(amount=summary["amount"] + rec["amount"], fee=summary["fee"] + rec["fee"],
                       net=summary["net"] + rec["net"], asset=rec["asset"],
                       account_id=rec["account_id"])
        summary["transfer_ids"] += rec["transfer_ids"]
    if hold:
        specs = _through_holds(specs)
    if specs:
        engine.execute(uow, specs, templates=list(templates.values()))
    return summary


def _through_holds(specs: list[TransferSpec]) -> list[TransferSpec]:
    """Each leg becomes a pending transfer (the hold on the payer's wallet) and its post."""
    out: list[TransferSpec] = []
    for s in specs:
        hold = TransferSpec(id=derived_id("txf", "hold", s.id), debit_account_id=s.debit_account_id,
                            credit_account_id=s.credit_account_id, amount=s.amount, asset=s.asset,
                            pending=True, code=f"{s.code}_hold",
                            description=s.description, metadata=s.metadata)
        out += [hold, TransferSpec(id=s.id, post_pending_id=hold.id, code=s.code,
                                   description=s.description, metadata=s.metadata)]
    return out


def reverse(uow, doc: dict[str, Any], receipt: dict[str, Any]) -> list[str]:
    """Reverse a settled receipt's legs once (a chain reorg): reversal ids derive from the
    reversed transfers, so a retry posts nothing twice. Returns the reversal ids. The caller
    bumps the receipt's ``generation`` so a re-confirmation settles again under new ids."""
    specs = [TransferSpec(id=derived_id("txf", "payrev", tid), reverses=tid, code="payment_reversal",
                          description="Payment reversed (chain reorganisation)",
                          metadata={"payment_intent": doc["id"]})
             for tid in receipt.get("transfer_ids") or []]
    if specs:
        engine.execute(uow, specs)
    return [s.id for s in specs]
