"""The relay sweeper's extension point: the one scheduled route (``POST /`` of ``relay_sweeper``,
every minute, in ``supply_routes``) runs the supply pass, then every hook registered here.

A hook is ``fn(deps, now) -> int`` (how many things it handled, reported by name in the
sweep's answer). Dispatch registers its own periodic pass (scheduled messages that fell due,
stuck jobs) with ``register`` at import time; a hook's exception is logged and does not stop
the others. Hooks must be idempotent: Cloud Scheduler may fire twice.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

Hook = Callable[[Any, dt.datetime], int]
HOOKS: list[Hook] = []


def register(fn: Hook) -> Hook:
    """Add ``fn`` once (usable as a decorator)."""
    if fn not in HOOKS:
        HOOKS.append(fn)
    return fn
