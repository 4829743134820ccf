"""Branding's pure rules: return URLs per mode, the brand colour's contrast, and logos checked
by their bytes (PNG and WebP structure, SVG sanitised until nothing in it can act)."""
from __future__ import annotations

import base64
import struct
import time
import xml.etree.ElementTree as ET
import zlib

import pytest

from shared.merchants import branding_images as images
from shared.merchants import branding_rules as rules
from shared.merchants import branding_svg as svg
from shared.platform.errors import InvalidRequest


# --- images made here, byte by byte -----------------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 4, height: int = 3, *, idat: bytes | None = None, ihdr: bytes | None = None) -> bytes:
    raw = b"".join(b"\x00" + b"\x1f\x3a\x93\xff" * width for _ in range(height))
    header = ihdr or struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (images.PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw) if idat is None else idat) + _chunk(b"IEND", b""))


def webp_lossless(width: int = 16, height: int = 16, *, extra: bytes = b"") -> bytes:
    bits = (width - 1) | (height - 1) << 14 | 1 << 28
    body = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 7
    chunks = extra + b"VP8L" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def vp8x(animated: bool) -> bytes:
    body = bytes([0x02 if animated else 0x00, 0, 0, 0]) + (15).to_bytes(3, "little") * 2
    return b"VP8X" + struct.pack("<I", len(body)) + body


HOSTILE_SVG = b"""<?xml version="1.0"?><!-- made by a tool -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" viewBox="0 0 40 40"
     onload="alert(1)" inkscape:version="1.3">
  <script>alert(document.cookie)</script>
  <style>@import url(https://evil.example/x.css); rect{fill:url(https://evil.example/t)}</style>
  <a href="javascript:alert(1)"><circle r="4"/></a>
  <foreignObject width="40" height="40"><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject>
  <image href="https://evil.example/track.png" width="1" height="1"/>
  <use xlink:href="#mark"/><use href="https://evil.example/s.svg#x"/>
  <linearGradient id="g"><stop offset="0" stop-color="#1f3a93"/></linearGradient>
  <rect id="mark" width="40" height="40" fill="url(#g)" onclick="steal()"
        style="fill:#1f3a93;background-image:url(https://evil.example/s);stroke:u\\rl(x)"/>
  <circle r="3" fill="url(https://evil.example/f)" stroke="JavaScript:alert(1)"/>
  <animate attributeName="href" to="javascript:alert(1)"/>
  <set attributeName="onmouseover" to="alert(1)"/>
  <text x="2" y="30">Angkor &amp; Co</text>
</svg>"""


# --- return URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "https://shop.example/thanks?order={PAYMENT_INTENT_ID}", "https://shop.example:8443/x#y",
    "https://xn--80ak6aa92e.com/", "https://203.0.113.7/ok"])
def test_https_urls_are_accepted_in_both_modes(url):
    for live in (False, True):
        assert rules.check_return_url(url, livemode=live, param="success_url") == url


@pytest.mark.parametrize("url", ["http://localhost:3000/ok", "http://127.0.0.1/ok",
                                 "http://127.9.8.7:80/", "http://[::1]:8000/done",
                                 "http://shop.localhost/ok"])
def test_http_is_for_loopback_in_test_mode_only(url):
    assert rules.check_return_url(url, livemode=False, param="success_url") == url
    with pytest.raises(InvalidRequest) as live:
        rules.check_return_url(url, livemode=True, param="success_url")
    assert live.value.code == "url_invalid" and live.value.param == "success_url"
    assert "live mode" in live.value.message


@pytest.mark.parametrize("url", [
    "http://shop.example/ok", "http://localhost.evil.example/", "http://10.0.0.1/",
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "ftp://shop.example/",
    "https://user:pw@shop.example/", "https://user@shop.example/", "https:///nohost",
    "//shop.example/x", "/relative/path", "https://shop.example/a b", "https://shop.example/\x00",
    "https://shop.example/\u2028", "https://shop.example:99999/", "https://[::1/", "x" * 3000,
    "https://" + "a" * 2000 + ".example/"])
def test_hostile_urls_are_refused_in_both_modes(url):
    for live in (False, True):
        with pytest.raises(InvalidRequest) as exc:
            rules.check_return_url(url, livemode=live, param="cancel_url")
        assert exc.value.code == "url_invalid" and exc.value.param == "cancel_url"


def test_empty_url_means_none():
    assert rules.check_return_url(None, livemode=True, param="u") is None
    assert rules.check_return_url("", livemode=True, param="u") is None


# --- colour --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("color,text", [("#1F3A93", "#ffffff"), ("#000000", "#ffffff"),
                                        ("#888888", "#000000"), ("#b3261e", "#ffffff")])
def test_accepted_colours_get_a_readable_label(color, text):
    stored = rules.check_brand_color(color)
    assert stored == color.lower() and rules.text_on(stored) == text
    assert rules.contrast(stored, text) >= rules.MIN_TEXT_CONTRAST
    assert rules.contrast(stored, rules.WHITE) >= rules.MIN_SURFACE_CONTRAST


@pytest.mark.parametrize("color", ["#ffffff", "#ffd700", "#f0f0f0", "#a0c4ff"])
def test_colours_that_vanish_on_white_are_refused(color):
    with pytest.raises(InvalidRequest) as exc:
        rules.check_brand_color(color)
    assert exc.value.code == "color_contrast_too_low" and ":1" in exc.value.message


@pytest.mark.parametrize("color", ["red", "#12345", "#1234567", "#12345g", "1f3a93",
                                   "#1f3a93;}body{display:none", "url(x)", "#1f3a9\n"])
def test_only_hex_colours_reach_css(color):
    with pytest.raises(InvalidRequest) as exc:
        rules.check_brand_color(color)
    assert exc.value.code == "color_invalid"


def test_contrast_matches_wcag():
    assert rules.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert rules.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


# --- PNG and WebP ----------------------------------------------------------------------------------------
def test_a_png_is_accepted_with_its_size():
    logo = images.check_logo(png(4, 3))
    assert (logo.content_type, logo.width, logo.height) == ("image/png", 4, 3)
    assert logo.data_uri.startswith("data:image/png;base64,")


def test_damaged_pngs_are_refused():
    good = png()
    flipped = bytearray(good)
    flipped[40] ^= 0xFF                                           # inside IDAT: CRC mismatch
    for bad in (bytes(flipped), good[:-6], good[:30], good + b"junk",
                png(idat=zlib.compress(b"\x00" * 5)),             # too little pixel data
                png(idat=b"not zlib at all"),
                png(ihdr=struct.pack(">IIBBBBB", 4, 3, 7, 6, 0, 0, 0)),      # bit depth 7
                png(ihdr=struct.pack(">IIBBBBB", 4, 3, 8, 3, 0, 0, 0)),      # palette, no PLTE
                images.PNG_SIGNATURE + _chunk(b"IEND", b"")):
        with pytest.raises(InvalidRequest) as exc:
            images.check_logo(bad)
        assert exc.value.code == "logo_invalid" and exc.value.param == "logo"


def test_a_png_bomb_stops_at_the_size_its_header_claims():
    bomb = png(1, 1, idat=zlib.compress(b"\x00" * 20_000_000, 9))   # ~20 KB → 20 MB
    bomb = bomb if len(bomb) <= images.MAX_LOGO_BYTES else png(1, 1, idat=zlib.compress(b"\x00" * 10_000_000, 9))
    started = time.perf_counter()
    with pytest.raises(InvalidRequest):
        images.check_logo(bomb)
    assert time.perf_counter() - started < 1.0                   # nothing close to 10 MB inflated
    with pytest.raises(InvalidRequest, match="1024"):
        images.check_logo(png(1025, 1))


def test_webp_is_read_from_its_container():
    logo = images.check_logo(webp_lossless(16, 9))
    assert (logo.content_type, logo.width, logo.height) == ("image/webp", 16, 9)
    assert images.check_logo(webp_lossless(extra=vp8x(False))).width == 16
    with pytest.raises(InvalidRequest, match="Animated"):
        images.check_logo(webp_lossless(extra=vp8x(True)))
    wrong_size = bytearray(webp_lossless())
    wrong_size[4] += 1
    for bad in (bytes(wrong_size), webp_lossless()[:-3], b"RIFF\x04\x00\x00\x00WEBP"):
        with pytest.raises(InvalidRequest):
            images.check_logo(bad)


def test_other_formats_and_sizes_are_refused():
    for data in (b"\xff\xd8\xff\xe0" + b"\0" * 100, b"GIF89a" + b"\0" * 20, b"%PDF-1.7", b"",
                 b"<html><body>hi</body></html>"):
        with pytest.raises(InvalidRequest) as exc:
            images.check_logo(data)
        assert exc.value.code == "logo_invalid"
    with pytest.raises(InvalidRequest) as exc:
        images.check_logo(png() + b"\0" * images.MAX_LOGO_BYTES)
    assert exc.value.code == "logo_too_large"


def test_input_is_base64_or_a_data_uri_whose_claimed_type_is_ignored():
    raw = png()
    assert images.decode_input(base64.b64encode(raw).decode()) == raw
    claimed = "data:image/png;base64," + base64.b64encode(HOSTILE_SVG).decode()
    assert images.check_logo(images.decode_input(claimed)).content_type == "image/svg+xml"
    for bad in ("not base64!", "data:image/png,<svg/>", "%%%"):
        with pytest.raises(InvalidRequest):
            images.decode_input(bad)


# --- SVG ------------------------------------------------------------------------------------------------
def _everything(tree: ET.Element):
    for el in tree.iter():
        yield el.tag, dict(el.attrib), el.text or ""


def test_an_svg_keeps_its_drawing_and_loses_everything_that_acts():
    clean = images.check_logo(HOSTILE_SVG)
    assert clean.content_type == "image/svg+xml"
    text = clean.data.decode()
    lowered = text.lower()
    for gone in ("script", "onload", "onclick", "foreignobject", "javascript", "evil.example",
                 "<style", "<a ", "<image", "<animate", "<set", "inkscape", "xlink", "cookie",
                 "background", "\\"):
        assert gone not in lowered, gone
    tree = ET.fromstring(text)                                   # still a well-formed SVG
    tags = [t.split("}")[1] for t, _a, _t in _everything(tree)]
    assert tags[0] == "svg" and {"rect", "linearGradient", "stop", "text", "use"} <= set(tags)
    rect = tree.find("{http://www.w3.org/2000/svg}rect")
    assert rect.get("fill") == "url(#g)" and rect.get("style") == "fill:#1f3a93"
    assert [u.get("href") for u in tree.iter("{http://www.w3.org/2000/svg}use")] == ["#mark", None]
    assert "Angkor &amp; Co" in text
    assert svg.sanitise(clean.data) == clean.data                 # stable: nothing left to remove


@pytest.mark.parametrize("data,why", [
    (b'<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
     b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>', "DTD"),
    (b'<!DOCTYPE svg SYSTEM "file:///etc/passwd"><svg xmlns="http://www.w3.org/2000/svg"/>', "DTD"),
    (b"<svg><rect/></svg>", "root"),                               # no SVG namespace
    (b'<svg xmlns="http://www.w3.org/2000/svg"><g>', "well-formed"),
    (b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 40 + b"</g>" * 40 + b"</svg>", "deeper"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><text>é</text></svg>'.encode("latin-1"), "UTF-8"),
])
def test_svgs_that_cannot_be_made_safe_are_refused(data, why):
    with pytest.raises(InvalidRequest) as exc:
        images.check_logo(data)
    assert exc.value.code == "logo_invalid" and why in exc.value.message
