"""UTC calendar days as the API names them (``YYYY-MM-DD``): parsing, bounds, ranges (pure).

Reports and analytics use UTC days: a ledger entry's ``committed_at`` and an intent's
``created_at`` are UTC instants, and one fixed calendar keeps a report identical whoever asks.
(A merchant time zone would shift the bounds only; see ADR 0037.)
"""
from __future__ import annotations

import datetime as dt
import re

from shared.platform.errors import InvalidRequest

UTC = dt.UTC
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_DAY_RE = re.compile(DAY_PATTERN)
EARLIEST = dt.date(2020, 1, 1)       # before Payloom existed: nothing to report
MAX_RANGE_DAYS = 92                  # analytics: a quarter per request


def parse_day(value: str | None, *, param: str) -> dt.date:
    """A strict ``YYYY-MM-DD`` (no time, no offset, a real calendar day) or a 400."""
    if not isinstance(value, str) or not _DAY_RE.match(value):
        raise InvalidRequest(f"{param} must be a date as YYYY-MM-DD.", code="date_invalid",
                             param=param)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{value!r} is not a calendar date.", code="date_invalid",
                             param=param) from None
    if day < EARLIEST:
        raise InvalidRequest(f"{param} must be on or after {EARLIEST.isoformat()}.",
                             code="date_out_of_range", param=param)
    return day


def bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a UTC day."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


def not_future(day: dt.date, now: dt.datetime, *, param: str) -> dt.date:
    if day > now.astimezone(UTC).date():
        raise InvalidRequest(f"{param} is in the future.", code="date_in_future", param=param)
    return day


def day_range(first: dt.date, last: dt.date, now: dt.datetime, *,
              max_days: int = MAX_RANGE_DAYS) -> list[dt.date]:
    """Every day from ``first`` to ``last`` inclusive (``last`` capped at today)."""
    today = now.astimezone(UTC).date()
    not_future(first, now, param="from")
    last = min(last, today)
    if last < first:
        raise InvalidRequest("to must not be before from.", code="date_range_invalid", param="to")
    n = (last - first).days + 1
    if n > max_days:
        raise InvalidRequest(f"A range covers at most {max_days} days.", code="date_range_too_long",
                             param="to")
    return [first + dt.timedelta(days=i) for i in range(n)]
