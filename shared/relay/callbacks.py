"""The per-message ``callback_url``: every status change POSTed there, signed like webhooks.

Why not the webhooks capability itself: its deliveries belong to registered endpoints (with
their own secrets, subscriptions and health); a callback URL is chosen per message. What is
reused: the event body (``shared.webhooks.deliveries.event_body``), Standard Webhooks signing
(``shared.webhooks.signing``: ``webhook-id`` = the event id, verifiable with the
``standardwebhooks`` library), the SSRF guard at creation (``check_destination``) and again at
delivery (``ssrf.post_pinned``, pinned to the address it checked).

The signing secret is the client's CALLBACK SECRET, one per client and mode:
``relay_callback_secrets/{tenant}:{mode}``, created or rotated by
``POST /v1/messages/callback_secret`` (shown once; the previous one keeps signing for
``callback_secret_grace_seconds``), stored sealed (``secrets_at_rest``, context
``relay_callback_secrets/<doc>#secret:<id>``). A message may name a callback URL only once its
client has one.

Delivery: ``relay_callbacks/{rcb_…}`` per (event) — attempt n claims it in one commit (it must
wait for attempt n) and schedules attempt n+1 in that same commit, then POSTs, then records the
outcome; a success turns the already queued next attempt into a no-op, a crash between claim
and record is retried by it. After ``len(callback_retry_seconds) + 1`` failures the callback is
``dead_lettered``. At least once; receivers de-duplicate by ``webhook-id``.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from shared.platform import logs, secrets_at_rest
from shared.platform.auth import Principal
from shared.platform.ids import derived_id, new_id
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.uow import UnitOfWork, run_unit
from shared.relay import lifecycle
from shared.relay.dispatch_settings import dispatch_settings
from shared.relay.message_models import CallbackSecret

SECRETS = "relay_callback_secrets"
DELIVERIES = "relay_callbacks"
_log = logs.get_logger(__name__)


# --- the client's secret --------------------------------------------------------------------
def secret_ref(db, tenant: str, livemode: bool):
    return db.collection(SECRETS).document(f"{tenant}:{'live' if livemode else 'test'}")


def _context(doc_id: str, secret_id: str) -> str:
    return secrets_at_rest.context(SECRETS, doc_id, f"secret:{secret_id}")


def _live(entries: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("expires_at") is None or e["expires_at"] > now]


def has_secret(snap, now: dt.datetime) -> bool:
    return bool(snap is not None and snap.exists and _live(snap.to_dict().get("secrets") or [], now))


def rotate(uow: UnitOfWork, principal: Principal) -> CallbackSecret:
    """A new secret (shown once); the current one keeps signing for the grace period."""
    from shared.webhooks import signing
    s = dispatch_settings(uow.deps)
    ref = secret_ref(uow.db, principal.tenant_id, principal.livemode)
    snap = uow.get(ref)
    now = uow.now
    entries = _live((snap.to_dict() or {}).get("secrets") or [] if snap.exists else [], now)
    grace_end = now + dt.timedelta(seconds=s.callback_secret_grace_seconds)
    kept = [{**e, "expires_at": e.get("expires_at") or grace_end} for e in entries][-1:]
    secret, secret_id = signing.new_secret(), new_id("rcs")
    sealed = secrets_at_rest.envelope(uow.deps).seal(secret, context=_context(ref.id, secret_id))
    entry = {"id": secret_id, "sealed": sealed, "created_at": now, "expires_at": None}
    uow.set(ref, {"tenant": principal.tenant_id, "livemode": principal.livemode,
                  "secrets": kept + [entry], "updated_at": now})
    previous = kept[0]["expires_at"] if kept else None
    return CallbackSecret(livemode=principal.livemode, secret=secret, created=int(now.timestamp()),
                          previous_expires_at=int(previous.timestamp()) if previous else None)


def _open(deps, doc_id: str, entries: list[dict[str, Any]], now: dt.datetime) -> list[str]:
    env = secrets_at_rest.envelope(deps)
    live = sorted(_live(entries, now), key=lambda e: e["created_at"], reverse=True)
    return [env.open_text(e["sealed"], context=_context(doc_id, e["id"])) for e in live]


# --- delivery ---------------------------------------------------------------------------------
def delivery_ref(db, event_id: str):
    return db.collection(DELIVERIES).document(derived_id("rcb", event_id))


def _claim(uow: UnitOfWork, message_id: str, event_id: str, n: int):
    s = dispatch_settings(uow.deps)
    d_ref = delivery_ref(uow.db, event_id)
    m_ref = lifecycle.message_ref(uow.db, message_id)
    e_ref = uow.db.collection(EVENTS).document(event_id)
    snaps = uow.get_all([d_ref, m_ref, e_ref])
    if not snaps[m_ref.path].exists or not snaps[e_ref.path].exists:
        return "missing"
    message, event = snaps[m_ref.path].to_dict(), snaps[e_ref.path].to_dict()
    if not message.get("callback_url") or (event.get("data") or {}).get("object", {}).get("id") != message_id:
        return "mismatch"
    record = snaps[d_ref.path].to_dict() if snaps[d_ref.path].exists else None
    done = int((record or {}).get("attempts") or 0)
    if record and record["status"] in ("succeeded", "dead_lettered"):
        return f"already_{record['status']}"
    if done != n - 1:
        return "stale"
    s_snap = uow.get(secret_ref(uow.db, message["tenant"], message["livemode"]))
    now = uow.now
    retries = s.callback_retry_seconds
    if n <= len(retries):
        lifecycle.schedule(uow, s, "callback", {"message_id": message_id, "event_id": event_id,
                                                "attempt": n + 1},
                           when=now + dt.timedelta(seconds=retries[n - 1]),
                           name=("relay-cb", event_id, str(n + 1)))
    fields = {"id": d_ref.id, "event_id": event_id, "message_id": message_id,
              "tenant": message["tenant"], "url": message["callback_url"], "status": "sending",
              "attempts": n, "updated_at": now,
              "purge_at": now + dt.timedelta(days=s.retention_days)}
    if record is None:
        uow.create(d_ref, {**fields, "created_at": now, "last_status_code": None, "last_error": None})
    else:
        uow.update(d_ref, fields)
    return message, event, (s_snap.to_dict() if s_snap.exists else None)


def attempt(deps, message_id: str, event_id: str, n: int) -> str:
    """Attempt ``n`` of the callback of one event; returns what happened."""
    from shared.webhooks import deliveries, endpoints, signing, ssrf
    from shared.webhooks.settings import webhook_settings
    s = dispatch_settings(deps)
    claimed = run_unit(deps, lambda uow: _claim(uow, message_id, event_id, n))
    if isinstance(claimed, str):
        return claimed
    message, event, secret_doc = claimed
    now = deps.clock.now()
    status_code, error = None, None
    try:
        secrets = _open(deps, secret_ref(deps.db, message["tenant"], message["livemode"]).id,
                        (secret_doc or {}).get("secrets") or [], now)
        if not secrets:
            raise ValueError("no callback secret")
        body = deliveries.event_body(event)
        headers = signing.headers(secrets, event_id, int(now.timestamp()), body)
        answer = ssrf.post_pinned(message["callback_url"], headers=headers, body=body,
                                  timeout=s.callback_timeout_seconds,
                                  allow_loopback=bool(webhook_settings(deps).allow_loopback),
                                  resolver=endpoints.resolver(deps))
        status_code = answer.status
        if not 200 <= answer.status < 300:
            error = f"HTTP {answer.status}"
    except ssrf.UnsafeDestination as exc:
        error = f"unsafe_destination: {exc.reason}"
    except ssrf.TransportError as exc:
        error = str(exc)[:200]
    except Exception as exc:  # noqa: BLE001 — recorded and retried like any failure
        _log.exception("relay callback failed before an answer")
        error = f"internal_error: {type(exc).__name__}"
    last = n > len(s.callback_retry_seconds)
    outcome = "succeeded" if error is None else ("dead_lettered" if last else "retrying")

    def record(uow: UnitOfWork) -> None:
        uow.update(delivery_ref(uow.db, event_id), {
            "status": outcome, "last_status_code": status_code, "last_error": error,
            "updated_at": uow.now})
    run_unit(deps, record)
    logs.log(_log, logging.INFO if error is None else logging.WARNING, "relay callback",
             message_id=message_id, event_id=event_id, attempt=n, outcome=outcome,
             http_status=status_code, error=error)
    return outcome
