"""Keep libraries from changing process-wide interpreter settings.

``py_ecc`` (pulled in by ``eth_account`` and ``web3``) raises the recursion limit to 100,000 when
it is imported. With that limit a deeply nested input recurses in C until the thread's stack
overflows and the worker dies with SIGSEGV, instead of raising ``RecursionError``. Importing it
here once, under the platform's limit, makes every later ``import eth_account`` harmless (the
module is cached, its top level never runs again). ``restore_recursion_limit`` is the backstop
the router calls on each request, for any other library that tries the same.
"""
from __future__ import annotations

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


def _import_py_ecc() -> None:
    try:
        import py_ecc  # noqa: F401  (its top level calls sys.setrecursionlimit(100000))
    except ImportError:  # not installed in this function's build
        pass
    finally:
        sys.setrecursionlimit(RECURSION_LIMIT)


_import_py_ecc()
