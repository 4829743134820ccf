"""QR codes of payment URIs (PNG and SVG) with the ``qrcode`` library; PNG through ``pypng``.

Pure Python (no Pillow): ``qrcode``'s ``PyPNGImage`` writes 1-bit PNGs, ``SvgPathImage`` one
``<path>`` (small, scales without blur, safe to inline in the hosted page). Error correction M
(15 %) survives a phone camera on a screen; an EIP-681 URI of an ERC-20 request (~150 chars)
gives a version 8 symbol, ~50 modules wide. A few milliseconds per code: the hosted page
may ask for it on every view, so callers can cache by URI if it ever matters.
"""
from __future__ import annotations

import io

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg

MAX_TEXT = 1024  # far above any payment URI; a 40-L symbol holds 2,953 bytes

_LEVELS = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
           "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}


def qr_code(text: str, *, error_correction: str = "M", box_size: int = 8,
            border: int = 4) -> qrcode.QRCode:
    """The fitted QR symbol for ``text`` (its ``get_matrix()`` is the module grid)."""
    if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
        raise ValueError(f"QR text must be a non-empty string of at most {MAX_TEXT} characters")
    if not 1 <= box_size <= 40 or not 0 <= border <= 16:
        raise ValueError("box_size must be 1..40 and border 0..16")
    code = qrcode.QRCode(error_correction=_LEVELS[error_correction], box_size=box_size,
                         border=border)
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_png(text: str, *, box_size: int = 8, border: int = 4, error_correction: str = "M") -> bytes:
    """A black-on-white PNG (``image/png``) of ``text``."""
    image = qr_code(text, error_correction=error_correction, box_size=box_size,
                    border=border).make_image(image_factory=qrcode.image.pure.PyPNGImage)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def qr_svg(text: str, *, box_size: int = 8, border: int = 4, error_correction: str = "M") -> str:
    """An SVG document (``image/svg+xml``) of ``text``: one path, sized in mm by ``qrcode``."""
    image = qr_code(text, error_correction=error_correction, box_size=box_size,
                    border=border).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")
