"""A merchant's logo: PNG, WebP or SVG of at most 16 KiB, recognised and checked by its bytes.

Never by what the caller claims (a ``data:`` URI's type or a file name is ignored). The logo is
shown on the hosted payment page and the dashboard as a ``data:`` URI (no request to anyone,
``img-src data:``), so what we store is what every payer's browser will decode:

* **PNG**: the signature, then every chunk walked with its CRC; ``IHDR`` first with a sane
  size (at most 1024 × 1024) and a valid bit depth / colour type, ``IDAT`` data inflated with a
  bound (a "zip bomb" stops at the size the header implies) and required to be exactly that size,
  ``IEND`` last.
* **WebP**: the RIFF container's size equals the data, its chunks are walked, and the image
  chunk (``VP8 ``, ``VP8L`` or ``VP8X``) yields sane dimensions; animated WebP is refused (a
  logo on a payment page does not move).
* **SVG** is sanitised, not trusted (``svg.sanitise``): parsed without any DTD, only an
  allowlist of drawing elements and presentation attributes survives, references may only
  point inside the document, and the tree is re-serialised by us. Scripts, event handlers,
  ``foreignObject``, external or ``javascript:``/``data:`` references, ``<style>`` sheets and
  animations are removed, so the stored SVG cannot run script even when opened on its own.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import struct
import zlib

from shared.merchants import branding_svg
from shared.platform.errors import InvalidRequest

MAX_LOGO_BYTES = 16 * 1024
MAX_SIDE = 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> channels, and the bit depths each allows (PNG spec, table 11.1)
PNG_TYPES = {0: (1, {1, 2, 4, 8, 16}), 2: (3, {8, 16}), 3: (1, {1, 2, 4, 8}),
             4: (2, {8, 16}), 6: (4, {8, 16})}
DATA_URI_RE = re.compile(r"^data:[\w.+/-]{0,64}(?:;[\w.+=-]{0,64})*;base64,", re.ASCII)
TYPES = ("image/png", "image/webp", "image/svg+xml")


@dataclasses.dataclass(frozen=True)
class Logo:
    content_type: str
    data: bytes
    width: int | None = None
    height: int | None = None

    @property
    def data_uri(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="logo_invalid", param="logo")


def _too_large(detail: str = "") -> InvalidRequest:
    return InvalidRequest(f"The logo must be at most {MAX_LOGO_BYTES // 1024} KiB{detail}.",
                          code="logo_too_large", param="logo")


def decode_input(value: str) -> bytes:
    """The bytes of ``value``: base64, or a ``data:…;base64,`` URI (its claimed type ignored)."""
    text = value.strip()
    match = DATA_URI_RE.match(text)
    if match:
        text = text[match.end():]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("logo must be base64 (or a data: URI with base64) of the image.") from None


# --- PNG ---------------------------------------------------------------------------------------
def _png(data: bytes) -> Logo:
    pos, chunks, idat = len(PNG_SIGNATURE), [], []
    header: tuple[int, ...] | None = None
    while pos < len(data):
        if pos + 12 > len(data):
            raise _refuse("The PNG is truncated.")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise _refuse("The PNG is truncated.")
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + body) != crc:
            raise _refuse("The PNG is damaged (a chunk's checksum is wrong).")
        if not chunks and kind != b"IHDR":
            raise _refuse("The PNG does not start with its header.")
        chunks.append(kind)
        if kind == b"IHDR":
            if length != 13 or len(chunks) != 1:
                raise _refuse("The PNG header is malformed.")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
        if kind == b"IEND":
            break
    if header is None or chunks[-1] != b"IEND" or pos != len(data) or not idat:
        raise _refuse("The PNG is incomplete (no image data or no end).")
    width, height, depth, colour, compression, filtering, interlace = header
    if colour not in PNG_TYPES or depth not in PNG_TYPES[colour][1] or compression or filtering \
            or interlace not in (0, 1):
        raise _refuse("The PNG header names an unknown format.")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise _refuse(f"The logo must be at most {MAX_SIDE} × {MAX_SIDE} pixels.")
    if colour == 3 and b"PLTE" not in chunks:
        raise _refuse("The PNG has no palette.")
    expected = _png_raw_size(width, height, depth * PNG_TYPES[colour][0], interlace)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat), expected + 1)
    except zlib.error:
        raise _refuse("The PNG's image data cannot be decoded.") from None
    if len(raw) != expected or not inflater.eof:
        raise _refuse("The PNG's image data does not match its size.")
    return Logo("image/png", data, width, height)


def _png_raw_size(width: int, height: int, bits: int, interlace: int) -> int:
    """Bytes of the filtered scanlines (each row: a filter byte + its pixels)."""
    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)
    if not interlace:
        return rows(width, height)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2))      # Adam7: x0, y0, dx, dy
    return sum(rows((width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy)
               for x0, y0, dx, dy in passes)


# --- WebP --------------------------------------------------------------------------------------
def _webp(data: bytes) -> Logo:
    if len(data) < 20 or struct.unpack("<I", data[4:8])[0] + 8 != len(data):
        raise _refuse("The WebP's container size does not match its data.")
    pos, size = 12, None
    first = True
    while pos < len(data):
        if pos + 8 > len(data):
            raise _refuse("The WebP is truncated.")
        kind, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise _refuse("The WebP is truncated.")
        if first and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
            raise _refuse("The WebP has no image.")
        if kind == b"VP8X":
            if not first or length < 10:
                raise _refuse("The WebP's extended header is malformed.")
            if body[0] & 0x02:
                raise _refuse("Animated logos are not accepted.")
            size = (1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"))
        elif kind == b"VP8 ":
            if length < 10 or body[3:6] != b"\x9d\x01\x2a":
                raise _refuse("The WebP's image data is malformed.")
            w, h = struct.unpack("<HH", body[6:10])
            size = size or (w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L":
            if length < 5 or body[0] != 0x2F:
                raise _refuse("The WebP's image data is malformed.")
            bits = int.from_bytes(body[1:5], "little")
            size = size or (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        elif kind in (b"ANIM", b"ANMF"):
            raise _refuse("Animated logos are not accepted.")
        first = False
        pos += 8 + length + (length & 1)         # chunks are padded to an even size
    if size is None or not all(1 <= s <= MAX_SIDE for s in size):
        raise _refuse(f"The logo must be at most {MAX_SIDE} × {MAX_SIDE} pixels.")
    return Logo("image/webp", data, *size)


# --- any -------------------------------------------------------------------------------------------
def check_logo(data: bytes) -> Logo:
    """The logo ``data`` as it will be stored (SVG sanitised), or a 400 ``logo_invalid``."""
    if not data:
        raise _refuse("The logo is empty.")
    if len(data) > MAX_LOGO_BYTES:
        raise _too_large(f" (this one is {len(data):,} bytes)")
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if branding_svg.looks_like_svg(data):
        try:
            clean = branding_svg.sanitise(data)
        except branding_svg.Refused as exc:
            raise _refuse(f"The SVG logo was refused: {exc}") from None
        if len(clean) > MAX_LOGO_BYTES:
            raise _too_large()
        return Logo("image/svg+xml", clean)
    raise _refuse("The logo must be a PNG, WebP or SVG image.")


def stored_logo(content_type: object, data: object) -> Logo | None:
    """A stored logo back (None when absent or not one of ours)."""
    if content_type not in TYPES or not data:
        return None
    return Logo(str(content_type), bytes(data))
