"""How many SMS a text costs: GSM-7 or UCS-2, characters and parts (3GPP TS 23.038 / 23.040).

Why exact: the client pays per part and a phone sends what it is given, so a miscount either
overcharges or makes the phone split differently from what we promised. Rules:

* GSM-7 when every character is in the default alphabet or its extension table; an extension
  character (``{ } [ ] ~ \\ | ^ €`` and form feed) takes two septets (escape + character) and is
  never split across two parts. One part holds 160 septets; a multipart message 153 per part
  (the user data header takes the rest).
* Otherwise UCS-2 (Khmer, emoji, most accents): UTF-16 code units, 70 in one part, 67 per part
  of a multipart message; a surrogate pair (an emoji) is never split.
* Refused (400): empty text, a lone surrogate, control characters other than LF, CR and the form
  feed of the extension table, and more than ``max_parts`` parts.
"""
from __future__ import annotations

import dataclasses
import unicodedata

from shared.platform.errors import InvalidRequest
from shared.platform.models import BIDI_CONTROLS, has_visible

# The GSM 03.38 default alphabet (basic character set), as Unicode.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# The extension table: each costs two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7, UCS2 = "GSM-7", "UCS-2"
SINGLE = {GSM7: 160, UCS2: 70}
MULTI = {GSM7: 153, UCS2: 67}
DEFAULT_MAX_PARTS = 10
_ALLOWED_CONTROLS = frozenset("\n\r\f")


@dataclasses.dataclass(frozen=True)
class Encoded:
    encoding: str        # GSM-7 | UCS-2
    units: int           # septets (GSM-7) or UTF-16 code units (UCS-2)
    characters: int      # Unicode code points
    parts: int


def _check_characters(text: str) -> None:
    for ch in text:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidRequest("text holds an unpaired surrogate; send valid UTF-8.",
                                 code="text_invalid", param="text")
        if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS:
            raise InvalidRequest("text holds a control character an SMS cannot carry.",
                                 code="text_invalid", param="text")
        if ch in BIDI_CONTROLS:   # they reorder what the recipient sees: no SMS needs them
            raise InvalidRequest("text holds a bidirectional override or isolate character.",
                                 code="text_invalid", param="text")


def _units(ch: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def encoding_of(text: str) -> str:
    return GSM7 if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text) else UCS2


def count_parts(text: str, encoding: str) -> tuple[int, int]:
    """(units, parts): one part if everything fits a single SMS; otherwise greedy filling of
    multipart segments where a two-unit character never straddles a boundary."""
    units = [_units(ch, encoding) for ch in text]
    total = sum(units)
    if total <= SINGLE[encoding]:
        return total, 1
    size, parts, used = MULTI[encoding], 1, 0
    for u in units:
        if used + u > size:
            parts, used = parts + 1, 0
        used += u
    return total, parts


def encode(text: str, *, max_parts: int = DEFAULT_MAX_PARTS) -> Encoded:
    """Classify and count ``text``; 400 ``text_invalid``/``text_too_long`` when unusable."""
    if not isinstance(text, str) or not has_visible(text):
        raise InvalidRequest("text must not be empty.", code="text_empty", param="text")
    _check_characters(text)
    enc = encoding_of(text)
    units, parts = count_parts(text, enc)
    if parts > max_parts:
        raise InvalidRequest(
            f"text needs {parts} SMS parts ({enc}, {units} units); at most {max_parts} are allowed "
            f"({MULTI[enc] * max_parts} {'septets' if enc == GSM7 else 'UCS-2 units'}).",
            code="text_too_long", param="text")
    return Encoded(enc, units, len(text), parts)
