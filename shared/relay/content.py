"""Content checks on a client's text: spam score, URL shorteners, phishing patterns (ADR 0044).

Why a data file: spam words and scam shapes change weekly; ``data/spam_rules.json`` holds the
Khmer and English terms with weights, the shortener hosts and the phishing patterns, and is
reloaded when it changes (its mtime), so trust-and-safety edits it without touching code.

Matching: the text is NFKC-normalised and case-folded, zero-width characters dropped. English
terms match whole words, in the text and in a copy with look-alike digits undone (``fr33`` →
``free``). Khmer terms match anywhere in a copy without spaces (Khmer writes no spaces between
words; senders insert zero-width spaces to dodge filters). Each distinct term counts once.
A message is refused with one reason code, checked in this order (the most specific first):
``content_phishing``, ``content_url_shortener``, ``content_spam``.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import threading
import unicodedata

from shared.platform.errors import Unprocessable

DATA_FILE = pathlib.Path(__file__).resolve().parent / "data" / "spam_rules.json"
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
LOOKALIKE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                           "$": "s", "@": "a"})
_URL = re.compile(r"(https?://|www\.)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})"
                  r"(?::\d{1,5})?(?:/[^\s]*)?", re.IGNORECASE)
# A bare ``name.tld`` (no scheme, no www) counts as a link only with a top-level domain that
# links use, so "Mr.Smith" or "e.g." is not one.
LINK_TLDS = frozenset("com net org info io co me ly gd gy id at in cc tk ml ga cf gq xyz top "
                      "site online click link live shop app kh asia biz vip club win".split())
_SPACES = re.compile(r"\s+")
REASONS = ("content_phishing", "content_url_shortener", "content_spam")


class ContentBlocked(Unprocessable):
    """The text is refused by a content rule; ``code`` is the reason."""


@dataclasses.dataclass(frozen=True)
class Term:
    text: str
    weight: int
    lang: str
    pattern: re.Pattern | None   # whole-word pattern for spaced languages, None for Khmer


@dataclasses.dataclass(frozen=True)
class Rules:
    version: str
    block_score: int
    url_weight: int
    terms: tuple[Term, ...]
    shorteners: frozenset[str]
    phishing: tuple[tuple[str, re.Pattern], ...]


@dataclasses.dataclass(frozen=True)
class Verdict:
    score: int
    matched: tuple[str, ...]       # terms and pattern names that matched
    urls: tuple[str, ...]          # hosts linked to
    reason: str | None             # None: allowed

    @property
    def blocked(self) -> bool:
        return self.reason is not None


# Ideographic and halfwidth full stops separate domain labels like "." (IDNA/UTS 46).
DOTS = str.maketrans({"\u3002": ".", "\uff61": "."})


def normalize(text: str) -> str:
    text = "".join(ch for ch in unicodedata.normalize("NFKC", text)
                   if unicodedata.category(ch) != "Cf")      # every zero-width/format character
    return _SPACES.sub(" ", text.translate(ZERO_WIDTH).translate(DOTS).casefold()).strip()


def _term(raw: dict) -> Term:
    text, weight, lang = normalize(str(raw["text"])), int(raw["weight"]), str(raw.get("lang", "en"))
    if not text or weight < 0:
        raise ValueError(f"term {raw!r}: text must be non-empty and weight >= 0")
    compact = lang == "km"
    pattern = None if compact else re.compile(r"(?<!\w)" + re.escape(text) + r"(?!\w)")
    return Term(text.replace(" ", "") if compact else text, weight, lang, pattern)


def parse_rules(raw: dict) -> Rules:
    """Validate and compile a rules document (ValueError naming what is wrong)."""
    try:
        phishing = tuple((str(p["name"]), re.compile(p["pattern"], re.IGNORECASE))
                         for p in raw.get("phishing", ()))
        return Rules(version=str(raw.get("version", "")),
                     block_score=int(raw["thresholds"]["block"]),
                     url_weight=int(raw.get("url_weight", 0)),
                     terms=tuple(_term(t) for t in raw.get("terms", ())),
                     shorteners=frozenset(h.lower().strip(".") for h in raw.get("url_shorteners", ())),
                     phishing=phishing)
    except (KeyError, TypeError, re.error) as exc:
        raise ValueError(f"invalid spam rules: {type(exc).__name__}: {exc}") from None


_cache: dict[str, tuple[int, Rules]] = {}
_lock = threading.Lock()


def load_rules(path: pathlib.Path | str = DATA_FILE) -> Rules:
    """The rules in ``path``, parsed again only when the file changed (mtime)."""
    path = pathlib.Path(path)
    mtime = path.stat().st_mtime_ns
    with _lock:
        cached = _cache.get(str(path))
        if cached and cached[0] == mtime:
            return cached[1]
    rules = parse_rules(json.loads(path.read_text(encoding="utf-8")))
    with _lock:
        _cache[str(path)] = (mtime, rules)
    return rules


def _is_shortener(host: str, shorteners: frozenset[str]) -> bool:
    host = host.lower().strip(".")
    return any(host == s or host.endswith("." + s) for s in shorteners)


def assess(text: str, rules: Rules | None = None) -> Verdict:
    """Score ``text`` and say whether (and why) it is refused. Pure."""
    rules = rules or load_rules()
    norm = normalize(text)
    alt = norm.translate(LOOKALIKE)
    compact = norm.replace(" ", "")
    matched: list[str] = []
    score = 0
    for term in rules.terms:
        hit = (term.text in compact) if term.pattern is None else bool(
            term.pattern.search(norm) or term.pattern.search(alt))
        if hit:
            matched.append(term.text)
            score += term.weight
    hosts = tuple(dict.fromkeys(m.group(2).lower() for m in _URL.finditer(norm)
                                if m.group(1) or m.group(2).rsplit(".", 1)[-1].lower() in LINK_TLDS))
    score += rules.url_weight * len(hosts)
    phish = [name for name, pattern in rules.phishing if pattern.search(norm)]
    reason = None
    if phish:
        reason = "content_phishing"
    elif any(_is_shortener(h, rules.shorteners) for h in hosts):
        reason = "content_url_shortener"
    elif score >= rules.block_score:
        reason = "content_spam"
    return Verdict(score, tuple(matched + phish), hosts, reason)


MESSAGES = {
    "content_phishing": "The text looks like phishing (it asks for credentials or links to a "
                        "disguised address); it was not sent.",
    "content_url_shortener": "The text links to a URL shortener; link to your own domain instead.",
    "content_spam": "The text scored as spam against the content rules; it was not sent.",
}


def check(text: str, rules: Rules | None = None) -> Verdict:
    """``assess`` that raises ``ContentBlocked`` (422, code = the reason) when refused."""
    verdict = assess(text, rules)
    if verdict.blocked:
        raise ContentBlocked(MESSAGES[verdict.reason], code=verdict.reason, param="text")
    return verdict
