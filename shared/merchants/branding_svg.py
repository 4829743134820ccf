"""Sanitising an SVG logo: keep the drawing, drop everything that could act.

An SVG is a document, not a picture: it can carry ``<script>``, ``onload=``, ``<foreignObject>``
with HTML, links (``<a href="javascript:…">``), external references (``<image href=…>``,
``<use href="https://…">``, ``url(https://…)`` in CSS) and entity bombs. Inside ``<img>`` a
browser runs none of it, but the stored file must be harmless anywhere (opened on its own, or
someday served from a URL), so we keep only what draws:

* the text is parsed without a DTD (a ``<!DOCTYPE``/``<!ENTITY`` is refused before parsing:
  no entity expansion, no external entity) and must be UTF-8 with an ``<svg>`` root in the SVG
  namespace, at most ``MAX_ELEMENTS`` elements ``MAX_DEPTH`` deep;
* elements outside ``ELEMENTS`` are removed with their content (``script``, ``style``,
  ``foreignObject``, ``image``, ``a``, animations, other namespaces such as Inkscape's);
* attributes outside ``ATTRIBUTES`` are removed (every ``on*`` handler among them), ``href`` is
  kept only as an in-document ``#id`` reference, and a value that mentions ``javascript:``,
  ``data:``, ``url(`` other than ``url(#id)``, ``expression(`` or ``@import`` is removed;
* a ``style`` attribute keeps only presentation properties with such safe values;
* comments and processing instructions are dropped, and the tree is serialised by us.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_ELEMENTS = 2000
MAX_DEPTH = 32

ELEMENTS = frozenset({
    "svg", "g", "defs", "title", "desc", "symbol", "use", "path", "rect", "circle", "ellipse",
    "line", "polyline", "polygon", "text", "tspan", "linearGradient", "radialGradient", "stop",
    "clipPath", "mask"})
PRESENTATION = frozenset({
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
    "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray",
    "stroke-dashoffset", "opacity", "clip-path", "clip-rule", "mask", "stop-color",
    "stop-opacity", "font-family", "font-size", "font-weight", "font-style", "text-anchor",
    "dominant-baseline", "letter-spacing", "visibility", "display", "color",
    "vector-effect", "paint-order", "transform"})
ATTRIBUTES = PRESENTATION | frozenset({
    "id", "viewBox", "width", "height", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx",
    "ry", "d", "points", "offset", "gradientUnits", "gradientTransform", "spreadMethod", "fx",
    "fy", "fr", "preserveAspectRatio", "dx", "dy", "version", "style", "href",
    "clipPathUnits", "maskUnits", "maskContentUnits", "pathLength"})
UNSAFE_VALUE = re.compile(r"javascript:|vbscript:|data:|expression\(|@import|\\|&#|<",
                          re.IGNORECASE)
URL_REF = re.compile(r"url\(\s*([^)]*)\)", re.IGNORECASE)
LOCAL_REF = re.compile(r"^['\"]?#[A-Za-z_][\w.-]{0,100}['\"]?$")
STYLE_VALUE = re.compile(r"^[#\w\s.,%()'\"+-]{1,200}$")


class Refused(ValueError):
    """The SVG cannot be made safe (not SVG, a DTD, too big or too deep)."""


def looks_like_svg(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<") and b"<svg" in data[:4096].lower()


def _safe_value(value: str) -> bool:
    if UNSAFE_VALUE.search(value):
        return False
    return all(LOCAL_REF.match(ref.strip()) for ref in URL_REF.findall(value))


def _clean_style(style: str) -> str | None:
    kept = []
    for declaration in style.split(";"):
        name, sep, value = declaration.partition(":")
        name, value = name.strip().lower(), value.strip()
        if sep and name in PRESENTATION and STYLE_VALUE.match(value) and _safe_value(value):
            kept.append(f"{name}:{value}")
    return ";".join(kept) or None


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _clean_attributes(el: ET.Element) -> None:
    for key in list(el.attrib):
        value = el.attrib.pop(key)
        ns, name = _local(key)
        if name == "href" and ns in (None, XLINK_NS):
            if LOCAL_REF.match(value.strip()):
                el.set("href", value.strip())        # SVG 2's plain href, no xlink needed
            continue
        if ns is not None or name not in ATTRIBUTES or name.lower().startswith("on"):
            continue
        if name == "style":
            value = _clean_style(value) or ""
            if value:
                el.set("style", value)
            continue
        if len(value) <= 10_000 and _safe_value(value):
            el.set(name, value)


def _walk(el: ET.Element, depth: int, count: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise Refused(f"it nests deeper than {MAX_DEPTH} levels")
    _clean_attributes(el)
    for child in list(el):
        ns, name = _local(child.tag) if isinstance(child.tag, str) else (None, "")
        if ns != SVG_NS or name not in ELEMENTS:
            el.remove(child)
            continue
        count[0] += 1
        if count[0] > MAX_ELEMENTS:
            raise Refused(f"it has more than {MAX_ELEMENTS} elements")
        _walk(child, depth + 1, count)


def sanitise(data: bytes) -> bytes:
    """The SVG ``data`` with only its drawing left, serialised by us; ``Refused`` otherwise."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused("it is not UTF-8 text") from None
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise Refused("it declares a DTD or entities")
    parser = ET.XMLParser()           # the default TreeBuilder drops comments and PIs
    try:
        parser.feed(text)
        root = parser.close()
    except ET.ParseError:
        raise Refused("it is not well-formed XML") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise Refused('its root must be <svg xmlns="http://www.w3.org/2000/svg">')
    _walk(root, 1, [1])
    out: list[str] = []
    _write(root, out, top=True)
    return "".join(out).encode()


def _write(el: ET.Element, out: list[str], *, top: bool = False) -> None:
    """Our own serialisation: SVG elements only, every attribute and text escaped."""
    name = _local(el.tag)[1]
    attrs = ([("xmlns", SVG_NS)] if top else []) + sorted(el.attrib.items())
    out.append("<" + name + "".join(f" {k}={quoteattr(v)}" for k, v in attrs))
    if not len(el) and not el.text:
        out.append("/>")
    else:
        out.append(">" + escape(el.text or ""))
        for child in el:
            _write(child, out)
        out.append(f"</{name}>")
    if not top and el.tail:
        out.append(escape(el.tail))
