"""Sessions and rotating refresh tokens.

A session (``sessions/{ses_…}``) is one sign-in on one device: it holds the authentication
methods (``amr``), the IP and user agent it started from, its status and an absolute expiry.
Its refresh tokens form one *family*:

* A refresh token is opaque: ``rt_`` + 32 random bytes, base64url. Only its SHA-256 is stored
  (``refresh_tokens/{sha256}``); a database leak reveals no usable token.
* Every refresh rotates: inside one Firestore transaction the presented token is marked
  ``rotated`` and a successor is created. Each token is valid for ``refresh_token_ttl_seconds``
  (idle timeout), never beyond the session's absolute expiry.
* Reuse detection: presenting a token that was already rotated revokes the whole session (the
  family): its refresh tokens and its access tokens (checked on verify) stop working.
* Grace window (``refresh_reuse_grace_seconds``, 10 s): a client that double-submits the same
  token concurrently (two tabs, a retry after a lost response) must not be logged out. Within
  the window, and only while the successor is still the family's live token, the replay gets
  the *same* successor refresh token back (plus a fresh access token). We store no plaintext
  tokens, so the successor is kept sealed on the parent record with AES-256-GCM under a key
  derived (HKDF-SHA256) from the *parent's plaintext*: only someone presenting the parent token
  can open it; the stored SHA-256 of the parent does not. Outside the window, or once the
  successor itself was used, the replay counts as theft and revokes the family.

Cost (one unit of work each): start = 2 blind creates in the caller's commit. Refresh = 2 reads
(token, then its session) and 1 commit. Verify of an access token = 1 read of the session, served from a per-instance
cache for ``session_cache_seconds`` (default 5 s): a revocation is immediate on the instance that
made it and takes at most that long elsewhere.
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
import time
from typing import Any, Iterable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.cloud import firestore

from shared.identity.config import identity_settings
from shared.identity.opaque import new_token, token_hash
from shared.identity.sessions.tokens import issue_access_token
from shared.identity.resources import SESSION_REVOKED, Session
from shared.identity.responses import TokenPair
from shared.platform.clock import rfc3339
from shared.platform.errors import AuthenticationError, NotFound
from shared.platform.ids import new_id
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.uow import run_unit

SESSIONS = "sessions"
REFRESH_TOKENS = "refresh_tokens"
REFRESH_PREFIX = "rt_"
MAX_USER_AGENT = 512
# Revocations inside one transaction are capped to stay far below Firestore's 500 writes.
MAX_TXN_REVOCATIONS = 200


# --- refresh token primitives -----------------------------------------------------------------

def new_refresh_token() -> str:
    return new_token(REFRESH_PREFIX)


def _seal_key(parent_token: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"payloom refresh-token successor v1").derive(parent_token.encode())


def seal_successor(parent_token: str, successor: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_seal_key(parent_token)).encrypt(nonce, successor.encode(), b"rt-successor")
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_successor(parent_token: str, sealed: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(_seal_key(parent_token)).decrypt(raw[:12], raw[12:], b"rt-successor").decode()
    except Exception:  # noqa: BLE001 — any failure means "no grace"
        return None


# --- resources ---------------------------------------------------------------------------------

def to_resource(doc: dict[str, Any], current_session_id: str | None = None) -> Session:
    ts = lambda k: rfc3339(doc[k]) if doc.get(k) else None  # noqa: E731
    return Session(
        id=doc["id"], user_id=doc["user_id"], status=doc["status"],
        amr=list(doc.get("amr") or []), ip=doc.get("ip"), user_agent=doc.get("user_agent"),
        created=ts("created_at"), last_refreshed=ts("last_refreshed_at"),
        expires=ts("expires_at"), revoked=ts("revoked_at"),
        revoked_reason=doc.get("revoked_reason"),
        current=None if current_session_id is None else doc["id"] == current_session_id)


def _session_ref(db, session_id: str):
    return db.collection(SESSIONS).document(session_id)


def _token_ref(db, digest: str):
    return db.collection(REFRESH_TOKENS).document(digest)


def _token_response(deps, session: dict[str, Any], refresh_token: str) -> TokenPair:
    settings = identity_settings(deps)
    access = issue_access_token(deps, user_id=session["user_id"], session_id=session["id"],
                                scopes=session.get("scopes") or ("*",),
                                amr=session.get("amr") or ("pwd",),
                                client_id=session.get("client_id"))
    return TokenPair(access_token=access, expires_in=settings.access_token_ttl_seconds,
                     refresh_token=refresh_token, session=to_resource(session))


# --- the contract ------------------------------------------------------------------------------

def open_session(uow, *, user_id: str, amr: Iterable[str], ip: str | None,
                 user_agent: str | None, client_id: str | None = None) -> TokenPair:
    """Open a session for an authenticated user in ``uow``; returns its first token pair.

    Callers (password login, MFA, phone OTP, social login, SIWE) have already proven who the
    user is; ``amr`` names how (RFC 8176: "pwd", "otp", "mfa", "sms", "fed", "swk", ...).
    Two blind creates in the unit's commit: no read, no extra round trip.
    """
    deps, db, now = uow.deps, uow.db, uow.now
    settings = identity_settings(deps)
    session_id = new_id("ses")
    refresh = new_refresh_token()
    session = {
        "id": session_id, "user_id": user_id, "status": "active",
        "amr": list(dict.fromkeys(amr)) or ["pwd"], "scopes": ["*"],
        "client_id": client_id or settings.default_client_id,
        "ip": (ip or None) and str(ip)[:64],
        "user_agent": (user_agent or None) and str(user_agent)[:MAX_USER_AGENT],
        "created_at": now, "last_refreshed_at": None, "refresh_count": 0,
        "expires_at": now + dt.timedelta(seconds=settings.session_max_age_seconds),
        "revoked_at": None, "revoked_reason": None,
    }
    uow.create(_session_ref(db, session_id), session)
    uow.create(_token_ref(db, token_hash(refresh)), _token_doc(session, now, settings))
    return _token_response(deps, session, refresh)


def start_session(deps, *, user_id: str, amr: Iterable[str], ip: str | None,
                  user_agent: str | None) -> TokenPair:
    """``open_session`` in its own unit of work (outside HTTP: tests, tools, the bench)."""
    return run_unit(deps, lambda uow: open_session(uow, user_id=user_id, amr=amr, ip=ip,
                                                   user_agent=user_agent))


def _token_doc(session: dict[str, Any], now: dt.datetime, settings) -> dict[str, Any]:
    expires = min(now + dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
                  session["expires_at"])
    return {"session_id": session["id"], "user_id": session["user_id"], "status": "active",
            "generation": session.get("refresh_count", 0), "created_at": now,
            "expires_at": expires, "rotated_at": None, "successor_hash": None,
            "successor_sealed": None}


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError("The refresh token is invalid, expired or revoked.",
                               code="invalid_refresh_token")


def refresh_session(uow, refresh_token: str, *, ip: str | None = None,
                    user_agent: str | None = None) -> TokenPair:
    """Exchange a refresh token for a new pair (rotation with reuse detection), in ``uow``.

    Two concurrent uses of one token both read it active; the unit's precondition lets one
    commit and re-runs the other, which then finds it rotated within the grace window and gets
    the same successor.
    """
    deps, db, now = uow.deps, uow.db, uow.now
    settings = identity_settings(deps)
    if not isinstance(refresh_token, str) or not refresh_token.startswith(REFRESH_PREFIX) \
            or len(refresh_token) > 100:
        raise _invalid_refresh()
    parent_ref = _token_ref(db, token_hash(refresh_token))
    snap = uow.get(parent_ref)
    if not snap.exists:
        raise _invalid_refresh()
    tok = snap.to_dict()
    sref = _session_ref(db, tok["session_id"])
    ssnap = uow.get(sref)
    if not ssnap.exists:
        raise _invalid_refresh()
    session = ssnap.to_dict()
    if session["status"] != "active" or session["expires_at"] <= now:
        raise _invalid_refresh()
    if tok["status"] == "active":
        if tok["expires_at"] <= now:
            raise _invalid_refresh()
        child = new_refresh_token()
        child_hash = token_hash(child)
        uow.update(parent_ref, {"status": "rotated", "rotated_at": now,
                                "successor_hash": child_hash,
                                "successor_sealed": seal_successor(refresh_token, child)})
        session = {**session, "last_refreshed_at": now,
                   "refresh_count": session.get("refresh_count", 0) + 1}
        uow.create(_token_ref(db, child_hash), _token_doc(session, now, settings))
        update = {"last_refreshed_at": now, "refresh_count": session["refresh_count"]}
        if ip:
            update["ip"] = str(ip)[:64]
        if user_agent:
            update["user_agent"] = str(user_agent)[:MAX_USER_AGENT]
        uow.update(sref, update)
        return _token_response(deps, {**session, **update}, child)
    grace = dt.timedelta(seconds=settings.refresh_reuse_grace_seconds)
    if tok["status"] == "rotated" and tok.get("rotated_at") and now - tok["rotated_at"] <= grace:
        successor = open_successor(refresh_token, tok.get("successor_sealed") or "")
        if successor and token_hash(successor) == tok.get("successor_hash"):
            csnap = uow.get(_token_ref(db, tok["successor_hash"]))
            if csnap.exists and csnap.get("status") == "active":
                return _token_response(deps, session, successor)
    # An old token came back: treat it as stolen and revoke the family (committed on raise).
    _revoke_in_unit(uow, sref, session, "refresh_token_reused")
    uow.keep_writes_on_error = True
    forget_session(deps, session["id"])
    raise AuthenticationError("This refresh token was already used; the session has been "
                              "revoked. Sign in again.", code="refresh_token_reused")


# --- revocation --------------------------------------------------------------------------------

def _revoke_in_unit(uow, sref, session: dict[str, Any], reason: str) -> dict[str, Any]:
    """Mark the session revoked in ``uow`` with its ``session.revoked`` event; returns the doc."""
    now = uow.now
    uow.update(sref, {"status": "revoked", "revoked_at": now, "revoked_reason": reason})
    revoked = {**session, "status": "revoked", "revoked_at": now, "revoked_reason": reason}
    uow.emit(SESSION_REVOKED.name, tenant=session["user_id"],
             data={"object": to_resource(revoked).model_dump(mode="json"), "reason": reason})
    return revoked


def revoke_session(uow, *, user_id: str, session_id: str, reason: str = "user_revoked",
                   current_session_id: str | None = None) -> Session:
    """Revoke one of ``user_id``'s sessions (someone else's session is a 404)."""
    sref = _session_ref(uow.db, session_id)
    snap = uow.get(sref)
    if not snap.exists or snap.get("user_id") != user_id:
        raise NotFound(f"No such session: '{session_id}'", param="id")
    session = snap.to_dict()
    if session["status"] != "active":
        return to_resource(session, current_session_id)
    revoked = _revoke_in_unit(uow, sref, session, reason)
    forget_session(uow.deps, session_id)
    return to_resource(revoked, current_session_id)


def active_sessions_query(db, user_id: str):
    return (db.collection(SESSIONS)
            .where(filter=firestore.FieldFilter("user_id", "==", user_id))
            .where(filter=firestore.FieldFilter("status", "==", "active")))


def revoke_sessions_in_unit(uow, user_id: str, reason: str, *,
                            except_session_id: str | None = None) -> list[str]:
    """Revoke the user's active sessions (up to ``MAX_TXN_REVOCATIONS``) in ``uow``; returns
    their ids (drop them from the verify cache). Each revoked session was read by the query, so
    its write is conditional on it being unchanged."""
    ids = []
    for snap in uow.query(active_sessions_query(uow.db, user_id).limit(MAX_TXN_REVOCATIONS)):
        if snap.id == except_session_id:
            continue
        _revoke_in_unit(uow, snap.reference, snap.to_dict(), reason)
        ids.append(snap.id)
    return ids


def revoke_all_sessions(deps, user_id: str, *, reason: str,
                        except_session_id: str | None = None) -> int:
    """Revoke every active session of ``user_id``, one bounded unit of work at a time."""
    total = 0
    while True:
        ids = run_unit(deps, lambda uow: revoke_sessions_in_unit(
            uow, user_id, reason, except_session_id=except_session_id))
        for sid in ids:
            forget_session(deps, sid)
        total += len(ids)
        if len(ids) < MAX_TXN_REVOCATIONS - 1:
            return total


# --- reads ---------------------------------------------------------------------------------

def get_session(deps, *, user_id: str, session_id: str,
                current_session_id: str | None = None) -> Session:
    snap = _session_ref(deps.db, session_id).get()
    if not snap.exists or snap.get("user_id") != user_id:
        raise NotFound(f"No such session: '{session_id}'", param="id")
    return to_resource(snap.to_dict(), current_session_id)


def active_session_doc(deps, *, user_id: str, session_id: str) -> dict[str, Any] | None:
    """The session record if it is ``user_id``'s and still active (uncached: step-up checks
    read how it was opened, ``amr`` and ``created_at``)."""
    snap = _session_ref(deps.db, session_id).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc.get("user_id") != user_id or doc.get("status") != "active":
        return None
    return doc


def list_sessions(deps, *, user_id: str, params: ListQuery,
                  current_session_id: str | None = None) -> ListResponse[Session]:
    """The user's active sessions, newest first (index: user_id, status, created_at desc)."""
    col = deps.db.collection(SESSIONS)
    page = paginate(active_sessions_query(deps.db, user_id), col, params, url="/v1/me/sessions",
                    to_resource=lambda d: to_resource(d, current_session_id),
                    belongs=lambda d: d.get("user_id") == user_id)
    return ListResponse[Session](data=page.data, has_more=page.has_more, url=page.url)


# --- session status on access-token verify -------------------------------------------------

_cache: dict[tuple[str, str], tuple[float, bool, str, dt.datetime | None]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 50_000


def forget_session(deps, session_id: str) -> None:
    with _cache_lock:
        _cache.pop((deps.settings.project_id, session_id), None)


def session_is_active(deps, session_id: str, user_id: str) -> bool:
    """Is ``session_id`` an active, unexpired session of ``user_id``? One read, cached briefly."""
    ttl = identity_settings(deps).session_cache_seconds
    key = (deps.settings.project_id, session_id)
    now = deps.clock.now()
    if ttl > 0:
        with _cache_lock:
            hit = _cache.get(key)
        if hit and hit[0] > time.monotonic():
            _, active, owner, expires = hit
            return active and owner == user_id and (expires is None or expires > now)
    snap = _session_ref(deps.db, session_id).get()
    if not snap.exists:
        active, owner, expires = False, "", None
    else:
        doc = snap.to_dict()
        active, owner, expires = doc.get("status") == "active", doc.get("user_id", ""), doc.get("expires_at")
    if ttl > 0:
        with _cache_lock:
            if len(_cache) > _CACHE_MAX:
                _cache.clear()
            _cache[key] = (time.monotonic() + ttl, active, owner, expires)
    return active and owner == user_id and (expires is None or expires > now)
