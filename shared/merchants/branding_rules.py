"""Rules for what a merchant's branding and its payers' return URLs may hold (pure functions).

**Return URLs** (``success_url``/``cancel_url`` of the merchant's branding, of an intent, an
invoice or a payment link): the payer's browser is sent there, so they must be absolute,
printable, without spaces or credentials (``https://user:pw@…`` phishes), at most 2000
characters; ``https`` always, and ``http`` only on a loopback host (``localhost``,
``127.0.0.0/8``, ``::1``), i.e. a developer's own machine. A live-mode object never sends a
payer to plain ``http`` (``check_return_url(..., livemode=True)``); the merchant's defaults are
shared by both modes, so an ``http`` default serves test mode only.

**Brand colour**: ``#rrggbb`` (normalised to lower case; nothing else can reach CSS). It
colours the page's buttons and monogram, whose text is white or black, whichever contrasts
more (WCAG 2 relative luminance; the better of the two is always ≥ 4.5:1). The colour must
itself stand out from the white card it sits on by 3:1 (WCAG 1.4.11, non-text contrast), so a
pale colour that would make the pay button vanish is refused.
"""
from __future__ import annotations

import ipaddress
import re
import urllib.parse

from shared.platform.errors import InvalidRequest

MAX_URL = 2000
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MIN_SURFACE_CONTRAST = 3.0      # against the white card (non-text contrast)
MIN_TEXT_CONTRAST = 4.5         # the button's label against the colour (AA, normal text)
WHITE, BLACK = "#ffffff", "#000000"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, *, livemode: bool) -> str | None:
    """Why ``url`` cannot receive a payer (None when it can)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return f"an absolute URL of at most {MAX_URL} characters"
    if not url.isprintable() or any(c.isspace() for c in url):
        return "an absolute URL without spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        host, _port = parts.hostname, parts.port      # .port raises on a malformed port
    except ValueError:
        return "a well-formed absolute URL"
    if parts.scheme not in ("https", "http") or not host:
        return "an absolute https URL"
    if parts.username is not None or parts.password is not None:
        return "a URL without credentials"
    if parts.scheme == "http" and (livemode or not is_loopback(host)):
        return ("an https URL (live mode)" if livemode
                else "an https URL (http is allowed only for localhost, in test mode)")
    return None


def check_return_url(url: str | None, *, livemode: bool, param: str) -> str | None:
    """``url`` if a payer may be sent there (None stays None); a 400 naming ``param``."""
    if url is None or url == "":
        return None
    problem = url_problem(url, livemode=livemode)
    if problem:
        raise InvalidRequest(f"{param} must be {problem}.", code="url_invalid", param=param)
    return url


def return_urls(body, given, *, livemode: bool) -> dict[str, str | None]:
    """``success_url``/``cancel_url`` of a request ``body`` that are in ``given``, each checked
    for the mode of the object it lands on (intents, invoices, payment links)."""
    return {name: check_return_url(getattr(body, name), livemode=livemode, param=name)
            for name in ("success_url", "cancel_url") if name in given}


# --- colour ---------------------------------------------------------------------------------------
def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(color: str) -> str:
    """White or black, whichever reads better on ``color`` (white when both pass AA)."""
    return WHITE if contrast(color, WHITE) >= MIN_TEXT_CONTRAST or \
        contrast(color, WHITE) >= contrast(color, BLACK) else BLACK


def check_brand_color(color: str | None, *, param: str = "brand_color") -> str | None:
    """``#rrggbb`` in lower case, or None; 400 for another syntax or too little contrast."""
    if color is None or color == "":
        return None
    if not isinstance(color, str) or not COLOR_RE.match(color):
        raise InvalidRequest(f"{param} must be a hex colour like #1f3a93.", code="color_invalid",
                             param=param)
    color = color.lower()
    against_white = contrast(color, WHITE)
    if against_white < MIN_SURFACE_CONTRAST:
        raise InvalidRequest(
            f"{param} {color} is too light: its contrast with the page's white background is "
            f"{against_white:.2f}:1 and buttons need at least {MIN_SURFACE_CONTRAST:.0f}:1. "
            "Choose a darker shade.", code="color_contrast_too_low", param=param)
    return color
