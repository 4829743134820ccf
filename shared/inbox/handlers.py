"""Which code applies a verified provider event: ``on(provider, pattern)(fn)``.

``fn(uow, event) -> str | None`` runs inside the unit of work that marks the inbox document
processed, so its writes and that mark commit together or not at all: an event is applied
once even when its task runs twice or the function dies mid-way. It may run more than once
before a commit succeeds (a conflict re-runs the unit), so it has no side effect but through
``uow``. What it returns is stored as the event's ``result``.

``pattern`` is an exact type (``payment_intent.succeeded``), a family (``payment_intent.*``) or
``*``; the most specific registration wins. Raise ``PermanentFailure`` (or a 4xx
``PayloomError``) when retrying cannot help; anything else is retried with back-off.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any, dict[str, Any]], "str | None"]
_HANDLERS: dict[tuple[str, str], Handler] = {}


class PermanentFailure(Exception):
    """The event can never be applied (malformed for us): dead-letter it without retrying."""


def on(provider: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register the handler of ``provider``'s events matching ``pattern`` (one per pattern)."""
    if pattern != "*" and (not pattern or "*" in pattern.removesuffix(".*")):
        raise ValueError(f"pattern {pattern!r}: an exact type, 'family.*' or '*'")

    def register(fn: Handler) -> Handler:
        current = _HANDLERS.get((provider, pattern))
        if current is not None and _qualified(current) != _qualified(fn):
            raise ValueError(f"{provider} {pattern} already has a handler: {_qualified(current)}")
        _HANDLERS[(provider, pattern)] = fn
        return fn
    return register


def off(provider: str, pattern: str) -> None:
    """Forget a registration (tests)."""
    _HANDLERS.pop((provider, pattern), None)


def handler_for(provider: str, event_type: str | None) -> Handler | None:
    """The most specific handler: the exact type, then the longest family, then ``*``."""
    if event_type:
        if (provider, event_type) in _HANDLERS:
            return _HANDLERS[(provider, event_type)]
        parts = event_type.split(".")
        for n in range(len(parts) - 1, 0, -1):
            fn = _HANDLERS.get((provider, ".".join(parts[:n]) + ".*"))
            if fn is not None:
                return fn
    return _HANDLERS.get((provider, "*"))


def _qualified(fn: Handler) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
