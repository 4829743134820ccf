"""How much a refund may take and how it splits (pure: no I/O; property-tested).

Refundable is what the merchant was SETTLED for: the intent's settled receipts (a receipt a
reorg took away is not settled, so it is not refundable). For them the intent keeps:

- ``C`` captured, in the intent's currency minor units (Σ receipt ``amount``);
- ``G`` gross, in the ledger asset's units (Σ ``ledger_amount``: a USD intent paid in USDC is
  settled in USDC at the rate locked on the intent);
- ``F`` the platform's fee taken from ``G``; the merchant got ``G − F``.

Running totals of the refunds not failed live on the intent (``refund_totals``, read and
written in the unit that creates a refund, so concurrent refunds serialise on that document and
their sum can never pass ``C``): ``amount`` (intent units), ``ledger``, ``fee``, ``net``.

Fee rule (ADR 0035): the fee is returned IN PROPORTION. A refund of ``L`` ledger units takes
``fee_part`` from the platform's fee account and ``L − fee_part`` from the merchant's
settlement account, so the payer always gets the whole refund, the merchant never gives back
more than it received (``G − F``) and the platform never keeps a fee on money it returned.
Parts are CUMULATIVE floors (``F × (refunded + L) // G − fee refunded``), so any sequence of
partial refunds that adds up to the whole returns exactly ``F`` and ``G − F``, with no rounding
drift; clamps keep both shares inside what is left even after a failed refund released its
part out of order. The ledger amount of an intent-currency amount is cumulative the same way
(``G × (refunded + r) // C``), and the last refund takes exactly what is left of ``G``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from shared.platform.errors import Conflict, InvalidRequest


@dataclasses.dataclass(frozen=True)
class Captured:
    amount: int          # C, intent currency minor units
    gross: int           # G, ledger units of ``asset``
    fee: int             # F, part of G the platform took
    asset: str
    method: str


@dataclasses.dataclass(frozen=True)
class Totals:
    amount: int = 0      # intent units reserved by refunds not failed
    ledger: int = 0
    fee: int = 0
    net: int = 0

    @classmethod
    def of(cls, doc: dict[str, Any] | None) -> Totals:
        doc = doc or {}
        return cls(*(int(doc.get(f) or 0) for f in ("amount", "ledger", "fee", "net")))

    def plus(self, s: Split) -> Totals:
        return Totals(self.amount + s.amount, self.ledger + s.ledger, self.fee + s.fee,
                      self.net + s.net)

    def minus(self, s: Split) -> Totals:
        return Totals(self.amount - s.amount, self.ledger - s.ledger, self.fee - s.fee,
                      self.net - s.net)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Split:
    amount: int          # intent units
    ledger: int          # ledger units returned to the payer
    fee: int             # from the platform's fee account
    net: int             # from the merchant's settlement account

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Split:
        return cls(*(int(doc.get(f) or 0) for f in ("amount", "ledger", "fee", "net")))


def captured(doc: dict[str, Any]) -> Captured | None:
    """What an intent document settled to its merchant, or None when nothing is settled. Mixed
    ledger assets or methods cannot be refunded as one (409: never expected, one method and one
    asset capture an intent)."""
    settled = [r for r in doc.get("receipts") or [] if r.get("settled") and not r.get("reorged")]
    if not settled:
        return None
    asset_set = {r.get("ledger_asset") or doc["currency"] for r in settled}
    methods = {r.get("method") or doc.get("method") for r in settled}
    if len(asset_set) != 1 or len(methods) != 1:
        raise Conflict("This payment intent was settled in several assets or by several "
                       "methods; refund it through support.", code="refund_mixed_settlement")
    return Captured(amount=sum(int(r["amount"]) for r in settled),
                    gross=sum(int(r.get("ledger_amount") or r["amount"]) for r in settled),
                    fee=sum(int(r.get("fee") or 0) for r in settled),
                    asset=asset_set.pop(), method=methods.pop())


def split(cap: Captured, totals: Totals, amount: int | None) -> Split:
    """The refund of ``amount`` intent units (None: the rest) given what earlier refunds took.
    400 ``amount_too_large`` beyond what is left, 409 ``charge_already_refunded`` when nothing
    is, 400 ``amount_too_small`` when it is worth no ledger unit."""
    left = cap.amount - totals.amount
    if left <= 0:
        raise Conflict("This payment intent has already been refunded in full.",
                       code="charge_already_refunded")
    if amount is None:
        amount = left
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidRequest("A refund amount is a positive integer.", code="amount_invalid",
                             param="amount")
    if amount > left:
        raise InvalidRequest(f"The refund ({amount}) is greater than what is left to refund "
                             f"on this payment intent ({left}).", code="amount_too_large",
                             param="amount")
    gross_left = cap.gross - totals.ledger
    if totals.amount + amount == cap.amount:
        ledger = gross_left                                  # the last refund takes the rest
    else:
        ledger = cap.gross * (totals.amount + amount) // cap.amount - totals.ledger
        ledger = max(0, min(gross_left, ledger))
    if ledger <= 0:
        raise InvalidRequest("The refund is worth less than one unit of the settled asset.",
                             code="amount_too_small", param="amount")
    fee_left, net_left = cap.fee - totals.fee, (cap.gross - cap.fee) - totals.net
    if ledger == gross_left:
        fee = fee_left
    else:
        fee = cap.fee * (totals.ledger + ledger) // cap.gross - totals.fee if cap.gross else 0
    fee = max(ledger - net_left, 0, min(fee, fee_left, ledger))
    return Split(amount=amount, ledger=ledger, fee=fee, net=ledger - fee)


def distribute(amount: int, legs: list[tuple[str, int]], taken: dict[str, int]) -> list[tuple[str, int]]:
    """Spread ``amount`` over ``legs`` ``[(transfer id, amount)]`` in order, each up to what
    earlier refunds have not ``taken`` yet. Returns ``[(transfer id, part)]`` (parts > 0)."""
    out, rest = [], amount
    for tid, leg_amount in legs:
        if rest <= 0:
            break
        room = leg_amount - int(taken.get(tid) or 0)
        part = min(room, rest)
        if part > 0:
            out.append((tid, part))
            rest -= part
    if rest > 0:
        raise Conflict("The payment's ledger legs cannot carry this refund.",
                       code="refund_exceeds_legs")
    return out
