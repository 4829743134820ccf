"""JSON request bodies with a bounded nesting depth.

``json.loads`` recurses once per ``[``/``{``: a 1 MB body of brackets exhausts the recursion
limit (a 500) or, if a library raised that limit, the C stack (SIGSEGV, the worker dies). The
depth is therefore measured before parsing with C-speed passes only (a regex drops string
literals, ``translate`` keeps the brackets, ``accumulate`` runs the depth), linear in the size.
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any

MAX_DEPTH = 64  # far beyond any request model; Stripe-shaped bodies nest 3-4 levels

# A string literal up to its closing quote, or to the end of input when it is never closed
# (then the body is invalid anyway); possessive, so it never backtracks.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)
_BRACKETS = b"[]{}"
_SIGNS = bytes.maketrans(_BRACKETS, b"\x01\xff\x01\xff")  # +1 opens, -1 (0xff signed) closes
_OTHERS = bytes(b for b in range(256) if b not in _BRACKETS)


class TooDeep(ValueError):
    """The JSON nests deeper than allowed."""


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting outside string literals (an upper bound for invalid JSON)."""
    signs = _STRING.sub(b"", raw).translate(_SIGNS, _OTHERS)
    return max(itertools.accumulate(memoryview(signs).cast("b")), default=0)


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` before parsing.

    Raises ``TooDeep`` (a ValueError), or what json.loads raises for invalid JSON."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if nesting_depth(data) > max_depth:
        raise TooDeep(f"JSON nests deeper than {max_depth} levels")
    return json.loads(raw)
