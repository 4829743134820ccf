"""How the dashboard shows values (templates get this module as ``fmt``) and where it may send
a browser back to.

Amounts are integers in the asset's minor units everywhere; they are shown with exactly the
asset's scale (``assets.format_decimal``), never through a float. Times are UTC, as in the
reports.
"""
from __future__ import annotations

import datetime as dt
import re

from shared.ledger import assets

_REF_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_NEXT_RE = re.compile(r"^/dashboard(/[A-Za-z0-9_\-./]*)?(\?[A-Za-z0-9_\-.=&%\[\]]*)?$")


def money(units: int | None, currency: str | None) -> str:
    """``1234, "USD"`` → ``"12.34 USD"``; an unknown currency shows its integer units."""
    if units is None:
        return "—"
    code = (currency or "").upper()
    if code in assets.ASSETS:
        return f"{assets.format_decimal(int(units), code)} {code}"
    return f"{int(units)} {code}".strip()


def decimal(units: int | None, currency: str | None) -> str:
    """The amount alone, as a form field shows it (``"12.34"``)."""
    if units is None:
        return ""
    code = (currency or "").upper()
    return assets.format_decimal(int(units), code) if code in assets.ASSETS else str(int(units))


def when(value) -> str:
    """Unix seconds, an RFC 3339 string or a datetime → ``2026-07-01 09:00:05 UTC``."""
    if value in (None, ""):
        return "—"
    try:
        if isinstance(value, (int, float)):
            moment = dt.datetime.fromtimestamp(value, dt.UTC)
        elif isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)   # 3.11 reads a trailing Z
        else:
            moment = value
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError, AttributeError):
        return str(value)


def day(value: dt.date | dt.datetime) -> str:
    return value.strftime("%Y-%m-%d")


def safe_next(value: str | None, root: str = "/dashboard") -> str:
    """A path of this dashboard to return to after signing in, or ``""`` (no open redirect:
    only ``/dashboard/...`` with plain characters; no scheme, host, ``//`` or ``..``)."""
    value = (value or "").strip()
    if (len(value) > 300 or not value.startswith(root) or "//" in value or ".." in value
            or not _NEXT_RE.match(value)):
        return ""
    return value


def is_ref(value: str | None) -> bool:
    """Whether a ``?ref=`` echoed in a notice is an id or a number, not text someone wrote
    into a link to make our page say it."""
    return value is None or bool(_REF_RE.match(value))
