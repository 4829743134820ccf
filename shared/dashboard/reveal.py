"""A new or rolled API key's secret, shown once on a GET after the POST that made it.

Why: a secret rendered on the POST's answer is re-POSTed by a reload (the browser asks, people
click "continue") and makes another key. So the POST makes the key and redirects (303,
POST-redirect-GET) to ``/keys/secret``, which shows the secret once:

* the key's unit of work also writes ``dashboard_key_reveals/{rvl_…}``: the secret sealed with
  AES-256-GCM under a random key made for this one reveal, plus the key's public metadata and
  who may see it (user, merchant, mode); TTL ``expires_at`` after ``TTL`` (5 minutes);
* the browser gets the record id and that random key in an HttpOnly, SameSite=Strict cookie on
  ``/dashboard`` (``__Secure-`` in production) living as long as the record. Neither half alone
  reveals anything: the database never holds a readable secret, the cookie never holds the
  secret;
* ``take`` reads and deletes the record in one unit (two tabs racing: one wins), checks it is
  this member's (the same user, merchant and mode) and unexpired, and opens it. A reload finds
  nothing and says the secret was already shown.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.platform.auth import Principal
from shared.platform.ids import new_id
from shared.platform.uow import run_unit

COLLECTION = "dashboard_key_reveals"      # TTL on expires_at
COOKIE = "dash_reveal"
TTL = dt.timedelta(minutes=5)
_COOKIE_RE = re.compile(r"^(rvl_[A-Za-z0-9]{16,40})\.([A-Za-z0-9_-]{43})$")


@dataclasses.dataclass(frozen=True)
class Revealed:
    key_id: str
    secret: str
    name: str | None
    scopes: list[str]
    rolled: bool
    rolled_from: str | None


def _ref(db, reveal_id: str):
    return db.collection(COLLECTION).document(reveal_id)


def _aad(reveal_id: str, principal: Principal) -> bytes:
    return f"{reveal_id}|{principal.actor_id}|{principal.tenant_id}|{principal.livemode}".encode()


def keep(uow, principal: Principal, key, *, rolled: bool) -> str:
    """Record ``key``'s secret for one reveal in ``uow``; returns the cookie's value."""
    reveal_id = new_id("rvl", 24)
    cipher_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(cipher_key).encrypt(nonce, key.secret.encode(), _aad(reveal_id, principal))
    uow.create(_ref(uow.db, reveal_id), {
        "user_id": principal.actor_id, "merchant_id": principal.tenant_id,
        "livemode": principal.livemode, "key_id": key.id, "name": key.name,
        "scopes": list(key.scopes), "rolled": rolled,
        "rolled_from": getattr(key, "rolled_from", None), "sealed": sealed,
        "created_at": uow.now, "expires_at": uow.now + TTL})
    return f"{reveal_id}.{base64.urlsafe_b64encode(cipher_key).decode().rstrip('=')}"


def take(deps, principal: Principal, cookie_value: str) -> Revealed | None:
    """The secret the cookie points at, once; None when it was shown, expired, is another
    member's, or the cookie is not ours."""
    m = _COOKIE_RE.match(cookie_value or "")
    if not m:
        return None
    reveal_id = m.group(1)
    try:
        cipher_key = base64.urlsafe_b64decode(m.group(2) + "=")
    except (binascii.Error, ValueError):
        return None

    def unit(uow):
        ref = _ref(uow.db, reveal_id)
        snap = uow.get(ref)
        if not snap.exists:
            return None
        doc = snap.to_dict()
        if (doc.get("user_id"), doc.get("merchant_id"), doc.get("livemode")) != \
                (principal.actor_id, principal.tenant_id, principal.livemode):
            return None                      # not this member's: leave it alone
        uow.delete(ref)
        return doc if doc["expires_at"] > uow.now else None

    doc = run_unit(deps, unit)
    if doc is None:
        return None
    sealed = bytes(doc["sealed"])
    try:
        secret = AESGCM(cipher_key).decrypt(sealed[:12], sealed[12:], _aad(reveal_id, principal))
    except (InvalidTag, ValueError):
        return None
    return Revealed(key_id=doc["key_id"], secret=secret.decode(), name=doc.get("name"),
                    scopes=list(doc.get("scopes") or []), rolled=bool(doc.get("rolled")),
                    rolled_from=doc.get("rolled_from"))
