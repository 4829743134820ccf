"""API keys for merchants and API clients (Stripe-style secret keys).

* Secret: ``sk_test_`` / ``sk_live_`` + 43 base62 characters (about 256 bits), shown once.
* Stored: ``api_keys/{key_…}`` with ``secret_hash`` = SHA-256 hex of the secret. A fast hash is
  right here: the secret is random with 256 bits of entropy, so there is nothing to brute-force
  and a slow KDF would only add latency to every API call (ADR 0010).
* Lookup: one query on ``secret_hash`` (single-field index), then a constant-time comparison of
  the stored and computed hash, then status, expiry and mode checks.
* ``last_used`` is written at most once per ``api_key_last_used_resolution_seconds`` (60 s) per
  key, so a busy key costs one extra write a minute, not one per request.
* Roll (like Stripe): a new key with the same name, scopes and mode; the old one keeps working
  for ``expires_in_seconds`` (0 = revoked now), then stops.
* The owner (``owner_id``: a user id, or a merchant id ``mch_…`` for a merchant's keys) is the
  tenant: a key only ever sees its owner's data. A merchant's key may belong to one of its
  projects (``project_id``, stored on the document and carried by the principal, so services and
  logs can tell which integration acted); keys without a project behave exactly as before.
"""
from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
import secrets
import string
from collections.abc import Iterable
from typing import Any

from google.cloud import firestore

from shared.identity.apikeys.scopes import invalid_scopes
from shared.identity.config import identity_settings
from shared.identity.opaque import token_hash
from shared.identity.resources import (
    API_KEY_CREATED,
    API_KEY_REVOKED,
    ApiKey,
    ApiKeyWithSecret,
)
from shared.platform.auth import Principal
from shared.platform.clock import rfc3339
from shared.platform.errors import AuthenticationError, InvalidRequest, NotFound
from shared.platform.ids import new_id
from shared.platform.logs import get_logger, log
from shared.platform.pagination import ListQuery, ListResponse, paginate

COLLECTION = "api_keys"
_ALPHABET = string.ascii_letters + string.digits
SECRET_BODY_LENGTH = 43
PREFIX_LENGTH = 12
_SECRET_RE = re.compile(r"^sk_(test|live)_[A-Za-z0-9]{%d}$" % SECRET_BODY_LENGTH)
_log = get_logger(__name__)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(("sk_test_", "sk_live_"))


def new_secret(livemode: bool) -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_BODY_LENGTH))
    return ("sk_live_" if livemode else "sk_test_") + body




def _status(doc: dict[str, Any], now: dt.datetime) -> str:
    if doc.get("status") == "revoked":
        return "revoked"
    if doc.get("expires_at") and doc["expires_at"] <= now:
        return "expired"
    return "active"


def to_resource(doc: dict[str, Any], now: dt.datetime) -> ApiKey:
    ts = lambda k: rfc3339(doc[k]) if doc.get(k) else None
    return ApiKey(id=doc["id"], name=doc.get("name"), prefix=doc["prefix"],
                  scopes=list(doc.get("scopes") or []), livemode=bool(doc.get("livemode")),
                  status=_status(doc, now), created=ts("created_at"),
                  last_used=ts("last_used_at"), expires_at=ts("expires_at"),
                  revoked=ts("revoked_at"), rolled_from=doc.get("rolled_from"),
                  rolled_to=doc.get("rolled_to"))


def with_secret(doc: dict[str, Any], now: dt.datetime, secret: str) -> ApiKeyWithSecret:
    """The creation/roll answer: the only place the secret appears (never stored or logged)."""
    return ApiKeyWithSecret(**dict(to_resource(doc, now)), secret=secret)


def _event_object(doc: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return to_resource(doc, now).model_dump(mode="json")  # no secret, no hash


def _validate_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    if not scopes:
        raise InvalidRequest("An API key needs at least one scope.", param="scopes",
                             code="parameter_invalid")
    bad = invalid_scopes(scopes)
    if bad:
        raise InvalidRequest(f"Unknown scope: {bad[0]!r}.", param="scopes", code="invalid_scope")
    return scopes


def _new_doc(*, owner_id: str, name: str | None, scopes: list[str], livemode: bool,
             now: dt.datetime, expires_at: dt.datetime | None,
             rolled_from: str | None = None,
             project_id: str | None = None) -> tuple[dict[str, Any], str]:
    secret = new_secret(livemode)
    doc = {"id": new_id("key"), "owner_id": owner_id, "project_id": project_id,
           "name": name, "prefix": secret[:PREFIX_LENGTH],
           "secret_hash": token_hash(secret), "scopes": scopes, "livemode": livemode,
           "status": "active", "created_at": now, "last_used_at": None, "expires_at": expires_at,
           "revoked_at": None, "rolled_from": rolled_from, "rolled_to": None}
    return doc, secret


def create_api_key(uow, *, owner_id: str, name: str | None, scopes: Iterable[str],
                   livemode: bool = False, expires_in_seconds: int | None = None,
                   project_id: str | None = None) -> ApiKeyWithSecret:
    """A new key; the response is the only place its secret ever appears (the route declares
    ``secret`` a secret field: never stored under an Idempotency-Key, never replayed).
    ``project_id``: the merchant project the key belongs to (the caller checked it exists)."""
    now = uow.now
    scopes = _validate_scopes(scopes)
    expires_at = now + dt.timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
    doc, secret = _new_doc(owner_id=owner_id, name=name, scopes=scopes, livemode=livemode, now=now,
                           expires_at=expires_at, project_id=project_id)
    uow.create(uow.db.collection(COLLECTION).document(doc["id"]), doc)
    uow.emit(API_KEY_CREATED.name, tenant=owner_id, livemode=livemode,
             data={"object": _event_object(doc, now)})
    return with_secret(doc, now, secret)


def _owned(snap, owner_id: str, key_id: str) -> dict[str, Any]:
    if not snap.exists or snap.get("owner_id") != owner_id:
        raise NotFound(f"No such API key: '{key_id}'", param="id")
    return snap.to_dict()


def get_api_key(deps, *, owner_id: str, key_id: str) -> ApiKey:
    snap = deps.db.collection(COLLECTION).document(key_id).get()
    return to_resource(_owned(snap, owner_id, key_id), deps.clock.now())


def get_api_key_doc(deps, *, owner_id: str, key_id: str) -> dict[str, Any]:
    """The owner's key document (404 for another owner's key or a missing id)."""
    return _owned(deps.db.collection(COLLECTION).document(key_id).get(), owner_id, key_id)


def list_api_keys(deps, *, owner_id: str, params: ListQuery, project_id: str | None = None,
                  livemode: bool | None = None, url: str = "/v1/me/api_keys",
                  resource=None) -> ListResponse[Any]:
    """The owner's keys, newest first (index: owner_id, created_at desc). A merchant's list
    may be narrowed to one mode and one project (indexes: owner_id, livemode, created_at desc;
    owner_id, project_id, livemode, created_at desc); ``resource(doc, now)`` renders each."""
    col, now = deps.db.collection(COLLECTION), deps.clock.now()
    render = resource or to_resource
    q = col.where(filter=firestore.FieldFilter("owner_id", "==", owner_id))
    if project_id is not None:
        q = q.where(filter=firestore.FieldFilter("project_id", "==", project_id))
    if livemode is not None:
        q = q.where(filter=firestore.FieldFilter("livemode", "==", bool(livemode)))

    def belongs(d: dict[str, Any]) -> bool:
        return (d.get("owner_id") == owner_id
                and (project_id is None or d.get("project_id") == project_id)
                and (livemode is None or bool(d.get("livemode")) == bool(livemode)))
    page = paginate(q, col, params, url=url, to_resource=lambda d: render(d, now), belongs=belongs)
    model = ListResponse[ApiKey] if resource is None else ListResponse[Any]
    return model(data=page.data, has_more=page.has_more, url=page.url)


def revoke_api_key(uow, *, owner_id: str, key_id: str, livemode: bool | None = None) -> ApiKey:
    """Revoke now. ``livemode`` given: a key of the other mode does not exist (404)."""
    now = uow.now
    ref = uow.db.collection(COLLECTION).document(key_id)
    doc = _owned(uow.get(ref), owner_id, key_id)
    _same_mode(doc, livemode, key_id)
    if doc["status"] == "revoked":
        return to_resource(doc, now)
    doc = {**doc, "status": "revoked", "revoked_at": now}
    uow.update(ref, {"status": "revoked", "revoked_at": now})
    uow.emit(API_KEY_REVOKED.name, tenant=owner_id, livemode=bool(doc.get("livemode")),
             data={"object": _event_object(doc, now)})
    return to_resource(doc, now)


def _same_mode(doc: dict[str, Any], livemode: bool | None, key_id: str) -> None:
    if livemode is not None and bool(doc.get("livemode")) != bool(livemode):
        raise NotFound(f"No such API key: '{key_id}'", param="id")


def roll_api_key(uow, *, owner_id: str, key_id: str, expires_in_seconds: int = 0,
                 livemode: bool | None = None) -> ApiKeyWithSecret:
    """Replace a key by a new secret; the old one works ``expires_in_seconds`` more. The new
    key keeps the old one's project. ``livemode`` given: a key of the other mode is a 404."""
    settings = identity_settings(uow.deps)
    db, now = uow.db, uow.now
    if not 0 <= expires_in_seconds <= settings.api_key_max_roll_grace_seconds:
        raise InvalidRequest(
            f"expires_in_seconds must be between 0 and {settings.api_key_max_roll_grace_seconds}.",
            param="expires_in_seconds", code="parameter_invalid")
    ref = db.collection(COLLECTION).document(key_id)
    old = _owned(uow.get(ref), owner_id, key_id)
    _same_mode(old, livemode, key_id)
    if _status(old, now) != "active":
        raise InvalidRequest("Only an active API key can be rolled.", param="id",
                             code="api_key_not_active")
    new, secret = _new_doc(owner_id=owner_id, name=old.get("name"), scopes=list(old["scopes"]),
                           livemode=bool(old.get("livemode")), now=now,
                           expires_at=old.get("expires_at"), rolled_from=key_id,
                           project_id=old.get("project_id"))
    uow.create(db.collection(COLLECTION).document(new["id"]), new)
    mode = bool(old.get("livemode"))
    uow.emit(API_KEY_CREATED.name, tenant=owner_id, livemode=mode,
             data={"object": _event_object(new, now)})
    if expires_in_seconds == 0:
        update = {"status": "revoked", "revoked_at": now, "rolled_to": new["id"]}
        uow.emit(API_KEY_REVOKED.name, tenant=owner_id, livemode=mode,
                 data={"object": _event_object({**old, **update}, now)})
    else:
        grace_end = now + dt.timedelta(seconds=expires_in_seconds)
        expires = min(grace_end, old["expires_at"]) if old.get("expires_at") else grace_end
        update = {"expires_at": expires, "rolled_to": new["id"]}
    uow.update(ref, update)
    return with_secret(new, now, secret)


def _invalid_key(message: str = "Invalid API key provided.") -> AuthenticationError:
    return AuthenticationError(message, code="invalid_api_key")


def authenticate_api_key(deps, secret: str) -> Principal:
    """Resolve a secret key to its principal, or raise 401. One query, rarely one write."""
    if not _SECRET_RE.match(secret):
        raise _invalid_key()
    digest = token_hash(secret)
    db, now = deps.db, deps.clock.now()
    snaps = list(db.collection(COLLECTION)
                 .where(filter=firestore.FieldFilter("secret_hash", "==", digest)).limit(1).stream())
    doc = snaps[0].to_dict() if snaps else None
    stored = (doc or {}).get("secret_hash") or ""
    if doc is None or not hmac.compare_digest(stored.encode(), digest.encode()):
        raise _invalid_key()
    status = _status(doc, now)
    if status != "active":
        raise _invalid_key(f"This API key is {status}.")
    livemode = secret.startswith("sk_live_")
    if bool(doc.get("livemode")) != livemode:
        raise _invalid_key()
    last = doc.get("last_used_at")
    resolution = identity_settings(deps).api_key_last_used_resolution_seconds
    if last is None or (now - last).total_seconds() >= resolution:
        try:
            snaps[0].reference.update({"last_used_at": now})
        except Exception as exc:  # noqa: BLE001 — bookkeeping must not fail the request
            log(_log, logging.WARNING, "api key last_used update failed", key_id=doc["id"],
                error=type(exc).__name__)
    return Principal(kind="api_key", id=doc["id"], tenant_id=doc["owner_id"],
                     scopes=frozenset(doc.get("scopes") or ()), livemode=livemode,
                     project_id=doc.get("project_id"))
