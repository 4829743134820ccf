"""Keep libraries from changing process-wide interpreter settings.

``py_ecc`` (pulled in by ``eth_account`` and ``web3``) raises the recursion limit to 100,000 when
it is imported. With that limit a deeply nested input recurses in C until the thread's stack
overflows and the worker dies with SIGSEGV, instead of raising ``RecursionError``. Those
libraries are imported lazily (they cost up to a second of cold start), always inside
``pinned_recursion_limit()``, so the limit is put back as soon as their top level has run.
``restore_recursion_limit`` is the backstop the router calls on each request, for any other
library that tries the same.
"""
from __future__ import annotations

import contextlib
import logging
import sys

# The interpreter's default (1000) unless py_ecc got in first and raised it already.
RECURSION_LIMIT = 1000 if "py_ecc" in sys.modules else sys.getrecursionlimit()
_log = logging.getLogger(__name__)


def restore_recursion_limit() -> None:
    """Put the recursion limit back if anything raised it since start-up (cheap: two C calls)."""
    current = sys.getrecursionlimit()
    if current != RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
        _log.warning("recursion limit changed to %s by a library; restored %s", current, RECURSION_LIMIT)


@contextlib.contextmanager
def pinned_recursion_limit():
    """Run imports of eth_account / web3 / py_ecc inside this: whatever their top level sets,
    the platform's limit is back when the block ends."""
    try:
        yield
    finally:
        sys.setrecursionlimit(RECURSION_LIMIT)
