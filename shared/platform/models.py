"""Base pydantic models for request and response bodies.

Requests forbid unknown fields (a typo is a 400, not silently ignored); responses are
Stripe-shaped resources with ``id``, ``object`` and ``created``.
"""
from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def is_doc_id(value: str) -> bool:
    """Whether Firestore can name a document ``value``: 1..256 printable characters, no '/',
    not '.' or '..', not ``__x__`` (reserved). Anything else makes the client raise (a 500)."""
    return (isinstance(value, str) and 0 < len(value) <= 256 and "/" not in value
            and value not in (".", "..") and value.isprintable()
            and not (value.startswith("__") and value.endswith("__")))


def _doc_id(value: str) -> str:
    if not is_doc_id(value):
        raise ValueError("not a valid object id")
    return value


# A string that ends up as a Firestore document id (cursors, challenge ids, pending ids): use
# it on every request, query or task field that is looked up by id, so bad ids are a 400.
DocId = Annotated[str, AfterValidator(_doc_id)]


# Bidirectional overrides, embeddings and isolates reorder what a reader sees (an RTL override
# shows "321cba/yl.tib" as "bit.ly/abc123", "Coffee\u202egnp.exe" as "Coffeeexe.png").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# Characters that draw nothing though they are neither spaces nor format characters: Hangul
# fillers, the braille blank, Khmer's invisible inherent vowels, the object replacement char.
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\ufffc")


def has_visible(text: str) -> bool:
    """Whether ``text`` would show anything: one character that is not a space, a format
    character (zero-width, bidi marks, tags), a combining mark on its own (variation
    selectors, the grapheme joiner) or a blank (``BLANK_CHARACTERS``)."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Mn", "Me")
               and ch not in BLANK_CHARACTERS for ch in text)


def _display_text(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS for ch in value):
        raise ValueError("must not hold control characters or bidirectional overrides")
    if value and not has_visible(value):
        raise ValueError("must hold visible characters")
    return value


# A name shown to other people (a merchant's business or brand name on the payment page, in
# emails): no control characters, no bidi overrides, not only invisible characters.
DisplayText = Annotated[str, AfterValidator(_display_text)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResourceModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Stripe's metadata limits, for every resource that carries metadata.
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 50, 40, 500


def check_metadata(value: dict[str, str] | None, *, allow_empty_values: bool) -> dict[str, str] | None:
    """Metadata limits: at most 50 keys, keys up to 40 characters, values up to 500."""
    if value is None:
        return None
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_KEYS} keys")
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"metadata keys have 1 to {MAX_METADATA_KEY} characters")
        if key.startswith("__") and key.endswith("__"):  # Firestore reserves these names
            raise ValueError("metadata keys must not look like __reserved__")
        if len(item) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata values have at most {MAX_METADATA_VALUE} characters")
        if not item and not allow_empty_values:
            raise ValueError("metadata values must not be empty")
    return value


class StatusEntry(BaseModel):
    """One step of a resource's status history, oldest first (a payment intent's ``timeline``,
    a message's ``status_history``): the status entered, when (unix seconds) and why."""
    status: str
    at: int
    reason: str | None = None
