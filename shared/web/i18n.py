"""Languages: English and Khmer, from gettext catalogues, never strings in code.

Each page capability keeps ``locale/<lang>/LC_MESSAGES/messages.po`` beside its templates
(extract with ``pybabel extract -F shared/web/babel.cfg``). The ``.po`` files are compiled in
memory at first use (Babel's ``write_mo``), so no binary ``.mo`` is committed or can drift.
``shared/web`` has its own catalogue (``WEB_LOCALE``: the error page, the CSRF refusal, "this
page does not exist"), the fallback of every capability's (``chain``): a capability need not
copy those strings, and may still word them its own way.

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
WEB_LOCALE = str(Path(__file__).resolve().parent / "locale")


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
    return _compile(locale_dir, lang)


def _compile(locale_dir: str, lang: str) -> gettext.NullTranslations:
    po = Path(locale_dir) / lang / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


@functools.lru_cache(maxsize=64)
def chain(locale_dirs: tuple[str, ...], lang: str) -> gettext.NullTranslations:
    """The catalogues of ``locale_dirs`` for ``lang``, the first one answering first (each
    compiled afresh: the cached single catalogues are never given fallbacks)."""
    first, *rest = [_compile(d, lang) for d in dict.fromkeys(locale_dirs)]
    for more in rest:
        first.add_fallback(more)
    return first


def locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT)
