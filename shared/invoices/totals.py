"""Invoice arithmetic (pure, integer only): line amounts, discount allocation, tax, totals.

Order (Stripe's): each line's ``amount = quantity × unit_amount``; ``subtotal`` = Σ amounts; the
invoice discount is taken off the subtotal BEFORE tax and allocated to the lines in proportion
to their amounts (largest remainder, ties to the earlier line), so each line's tax is computed
on what the customer really pays for it; tax is exclusive (added on top).

Rounding, stated once:
- a percentage discount is ``subtotal × bps / 10000`` rounded half up;
- a fixed discount (``amount_off``) larger than the subtotal is capped at it (a total never
  goes negative, as Stripe);
- tax is rounded PER LINE, half up: ``(taxable × rate_bps + 5000) // 10000``; the invoice's tax
  is the sum of its lines' taxes (so every line on the invoice adds up exactly, which is what a
  customer can check; a per-invoice rounding could differ from the sum of the shown lines by a
  few minor units).
Everything stays within int64 (Firestore's integers): a bigger total is a 400.
"""
from __future__ import annotations

import dataclasses

from shared.ledger.assets import INT64_MAX
from shared.platform.errors import InvalidRequest

BPS = 10_000


def half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for non-negative integers."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclasses.dataclass(frozen=True)
class LineInput:
    quantity: int
    unit_amount: int
    tax_rate_bps: int | None = None      # None: the invoice's default rate


@dataclasses.dataclass(frozen=True)
class LineTotals:
    amount: int           # quantity × unit_amount
    discount_amount: int  # this line's share of the invoice discount
    taxable_amount: int   # amount − discount_amount
    tax_rate_bps: int
    tax_amount: int


@dataclasses.dataclass(frozen=True)
class Totals:
    lines: tuple[LineTotals, ...]
    subtotal: int
    total_discount: int
    total_tax: int
    total: int


def discount_for(subtotal: int, *, amount_off: int | None = None,
                 percent_off_bps: int | None = None) -> int:
    """The invoice discount in minor units, capped at the subtotal."""
    if amount_off is not None:
        return min(amount_off, subtotal)
    if percent_off_bps is not None:
        return min(half_up(subtotal * percent_off_bps, BPS), subtotal)
    return 0


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over ``weights`` in proportion (largest remainder; ties to the earlier
    index). The shares sum to ``total`` exactly and none exceeds its weight when
    ``total ≤ Σ weights``."""
    whole = sum(weights)
    if total == 0 or whole == 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in remainders[:total - sum(shares)]:
        shares[i] += 1
    return shares


def compute(lines: list[LineInput], *, default_tax_rate_bps: int = 0,
            amount_off: int | None = None, percent_off_bps: int | None = None) -> Totals:
    """Totals of an invoice (see the module docstring for the order and the rounding)."""
    amounts = [ln.quantity * ln.unit_amount for ln in lines]
    subtotal = sum(amounts)
    _fits(subtotal, "lines")
    discount = discount_for(subtotal, amount_off=amount_off, percent_off_bps=percent_off_bps)
    shares = allocate(discount, amounts)
    out = []
    for ln, amount, share in zip(lines, amounts, shares):
        rate = default_tax_rate_bps if ln.tax_rate_bps is None else ln.tax_rate_bps
        taxable = amount - share
        out.append(LineTotals(amount, share, taxable, rate, half_up(taxable * rate, BPS)))
    tax = sum(x.tax_amount for x in out)
    total = subtotal - discount + tax
    _fits(total, "lines")
    return Totals(tuple(out), subtotal, discount, tax, total)


def _fits(value: int, param: str) -> None:
    if value > INT64_MAX:
        raise InvalidRequest("The invoice's total exceeds the largest amount the ledger holds.",
                             code="amount_too_large", param=param)
