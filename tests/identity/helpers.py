"""Helpers and constants shared by the identity tests (fixtures are in conftest.py)."""
from __future__ import annotations

import re

TOKEN_RE = re.compile(r"((?:vfy|pwr)_[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
CODE_RE = re.compile(r"\b(\d{6})\b")
PASSWORD = "correct horse battery staple"
SIWE_DOMAIN = "app.payloom.test"
ANVIL_CHAIN_ID = 31337


def token_from(message: dict) -> str:
    match = TOKEN_RE.search(message["text"])
    assert match, message["text"]
    return match.group(1)


_ip_counter = [0]


def fresh_ip() -> str:
    """A client IP no other test of this session used (per-instance rate limits outlive a test)."""
    _ip_counter[0] += 1
    n = _ip_counter[0]
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response is the error envelope with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "code", "message", "param"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def events_of(deps, type_: str) -> list[dict]:
    from google.cloud import firestore
    q = deps.db.collection("events").where(filter=firestore.FieldFilter("type", "==", type_))
    return [s.to_dict() for s in q.stream()]
