"""Languages: English and Khmer, from gettext catalogues, never strings in code.

Each page capability keeps ``locale/<lang>/LC_MESSAGES/messages.po`` beside its templates
(extract with ``pybabel extract -F shared/web/babel.cfg``). The ``.po`` files are compiled in
memory at first use (Babel's ``write_mo``), so no binary ``.mo`` is committed or can drift.

The language is, in order: ``?lang=`` (the page's switch, remembered in a cookie), the ``lang``
cookie, then the best match of ``Accept-Language``; English otherwise.
"""
from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

import flask
from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANG_COOKIE = "lang"
DEFAULT = "en"


def negotiate(request: flask.Request, languages: tuple[str, ...]) -> str:
    for candidate in (request.args.get("lang", ""), request.cookies.get(LANG_COOKIE, "")):
        if candidate in languages:
            return candidate
    for value, _quality in request.accept_languages:  # sorted by quality
        primary = value.split("-")[0].split("_")[0].lower()
        if primary in languages:
            return primary
    return DEFAULT if DEFAULT in languages else languages[0]


@functools.lru_cache(maxsize=64)
def translations(locale_dir: str, lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` under ``locale_dir`` (NullTranslations for English or
    a missing catalogue: the msgids are the English text)."""
    po = Path(locale_dir) / lang / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT)
