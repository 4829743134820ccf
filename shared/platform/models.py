"""Base pydantic models for request and response bodies.

Requests forbid unknown fields (a typo is a 400, not silently ignored); responses are
Stripe-shaped resources with ``id``, ``object`` and ``created``.
"""
from __future__ import annotations

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


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResourceModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
