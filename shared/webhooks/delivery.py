"""One delivery attempt: claim in one unit, send outside any unit, record in another.

Why this shape (as ``shared.notify.delivery``): the HTTP request is a side effect, so it never
runs inside a unit of work (which may run twice). Differences that matter for webhooks:

* The next attempt is scheduled when the failure is RECORDED, at now + schedule[n] (with jitter,
  and never before a 429/502/504's ``Retry-After``), not at claim time: a success then costs no
  task and no outbox write, and the wait starts when the receiver answered. A crash between
  claim and record is found by its expired lease (by the sweeper, or by Cloud Tasks running the
  same task again) and counts as a failed attempt: it is recorded with outcome ``lost`` and
  attempt n+1 is scheduled as after any failure, so a crash loop still ends in the dead letter.
* Concurrency per endpoint is bounded by lease slots ``webhook_slots/{endpoint_id}:{k}``: the
  claim reads them with everything else and takes a free one (a random one, so concurrent claims
  rarely pick the same; when they do, the optimistic commit makes one re-run). With none free the
  attempt comes back later in a new task (``defer_seconds``, doubling with each deferral), and
  this one answers "deferred": a slow endpoint never holds a worker or a queue, and never delays
  another endpoint.
* A task's ``requeues`` number must match the delivery's: only the newest task of an attempt
  (after a deferral or a sweeper re-enqueue) may run it, so duplicates are no-ops.

States of a delivery: pending → sending → succeeded | retrying → sending … → dead_lettered;
``failed`` on 410 Gone (the endpoint is disabled too) or when the event no longer exists;
``canceled`` when the endpoint was disabled or deleted before the attempt (``recover`` can send
canceled deliveries again once the endpoint is enabled).

Round trips of a successful attempt: claim (one batch get, one commit), record (one batch get,
one commit): 4. A failure adds the outbox record's completion (its retry task): 5.
A failure on our side (KMS, a bug) is retried like any other but never counts against the
endpoint's health.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import logging
import random
import time
from typing import Any

from shared.platform import logs
from shared.platform.clock import rfc3339
from shared.platform.deps import Deps
from shared.platform.ids import new_id
from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, endpoints, signing, ssrf
from shared.webhooks.deliveries import ATTEMPTS, FINAL, SLOTS
from shared.webhooks.settings import WebhookSettings, webhook_settings

_log = logs.get_logger(__name__)
THROTTLE_STATUSES = (429, 502, 504)   # Standard Webhooks: slow down, honour Retry-After
SUCCESS_MARK_SECONDS = 60             # last_success_at is refreshed at most this often
USERS = "users"


@dataclasses.dataclass
class Sent:
    """What one HTTP request produced, recorded as an attempt document."""
    started: dt.datetime
    outcome: str                       # succeeded | failed | gone | unsafe
    status_code: int | None = None
    latency_ms: float | None = None
    response_body: str | None = None
    error: str | None = None
    retry_after: float | None = None   # seconds the receiver asked us to wait
    ours: bool = False                 # our side failed (KMS, a bug): not the endpoint's fault


def slot_ref(db, endpoint_id: str, k: int):
    return db.collection(SLOTS).document(f"{endpoint_id}:{k}")


def attempt(deps: Deps, delivery_id: str, run: int, n: int, *, endpoint_id: str | None = None,
            event_id: str | None = None, requeues: int = 0) -> str:
    """Make attempt ``n`` of ``run`` of a delivery; returns what happened (logs, tests, task
    answer). Tasks carry ``endpoint_id`` and ``event_id`` so the claim is one batch get; without
    them the delivery is read first (one more round trip)."""
    settings = webhook_settings(deps)
    if endpoint_id is None or event_id is None:
        snap = deliveries.ref(deps.db, delivery_id).get()
        if not snap.exists:
            return "missing"
        endpoint_id, event_id = snap.get("endpoint_id"), snap.get("event_id")
    claimed = run_unit(deps, lambda uow: _claim(uow, settings, delivery_id, endpoint_id, event_id,
                                                run, n, requeues))
    if isinstance(claimed, str):
        logs.log(_log, logging.INFO, "webhook attempt not made", delivery_id=delivery_id,
                 run=run, attempt=n, outcome=claimed)
        return claimed
    delivery, endpoint, event, k = claimed
    sent = _send(deps, settings, endpoint, event)
    outcome = run_unit(deps, lambda uow: _record(uow, settings, delivery, endpoint, k, run, n, sent))
    level = logging.INFO if outcome == "succeeded" else logging.WARNING
    logs.log(_log, level, "webhook attempt made", delivery_id=delivery_id, endpoint_id=endpoint_id,
             event_id=event_id, run=run, attempt=n, outcome=outcome, http_status=sent.status_code,
             latency_ms=sent.latency_ms, error=sent.error)
    return outcome


# ---- claim ----------------------------------------------------------------------------------
def _claim(uow, settings: WebhookSettings, delivery_id: str, endpoint_id: str, event_id: str,
           run: int, n: int, requeues: int):
    db, now = uow.db, uow.now
    d_ref, e_ref = deliveries.ref(db, delivery_id), endpoints.ref(db, endpoint_id)
    ev_ref = db.collection(EVENTS).document(event_id)
    s_refs = [slot_ref(db, endpoint_id, k) for k in range(max(1, settings.endpoint_concurrency))]
    snaps = uow.get_all([d_ref, e_ref, ev_ref, *s_refs])
    d_snap = snaps[d_ref.path]
    if not d_snap.exists:
        return "missing"
    doc = d_snap.to_dict()
    if doc.get("endpoint_id") != endpoint_id or doc.get("event_id") != event_id:
        return "mismatch"  # a forged or corrupted task: never send anything for it
    if doc.get("run") != run:
        return "stale"     # a replay started a newer run
    status = doc["status"]
    if status in FINAL:
        return f"already_{status}"
    if status == "sending":
        if doc.get("lease_until") and doc["lease_until"] > now:
            return "busy"  # the attempt in flight owns it (a duplicate task)
        slot = doc.get("slot")
        lose(uow, settings, doc, snaps.get(s_refs[slot].path) if _valid_slot(slot, s_refs) else None)
        return "lost"
    if doc.get("attempt_count") != n - 1 or doc.get("requeues", 0) != requeues:
        return "stale"     # not the attempt it waits for, or an older task of it
    e_snap = snaps[e_ref.path]
    if not e_snap.exists:
        _finish(uow, d_ref, now, "canceled", "endpoint_deleted")
        return "endpoint_deleted"
    endpoint = e_snap.to_dict()
    if endpoint.get("status") != "enabled":
        _finish(uow, d_ref, now, "canceled", "endpoint_disabled")
        return "canceled"
    ev_snap = snaps[ev_ref.path]
    if not ev_snap.exists:
        _finish(uow, d_ref, now, "failed", "event_missing")
        return "event_missing"
    free = [k for k, ref in enumerate(s_refs) if _slot_free(snaps[ref.path], now)]
    if not free:
        _defer(uow, settings, d_ref, doc, run, n)
        return "deferred"
    k = random.choice(free)
    lease_until = now + dt.timedelta(seconds=settings.lease_seconds)
    uow.set(s_refs[k], {"endpoint_id": endpoint_id, "holder": delivery_id, "run": run, "n": n,
                        "lease_until": lease_until, "updated_at": now,
                        "expires_at": now + dt.timedelta(seconds=settings.attempt_ttl_seconds)})
    uow.update(d_ref, {"status": "sending", "attempt_count": n, "lease_until": lease_until,
                       "slot": k, "next_attempt_at": None, "updated_at": now})
    return doc, endpoint, ev_snap.to_dict(), k


def _valid_slot(slot, refs) -> bool:
    return isinstance(slot, int) and 0 <= slot < len(refs)


def _slot_free(snap, now: dt.datetime) -> bool:
    if not snap.exists:
        return True
    held = snap.to_dict()
    return not held.get("holder") or not held.get("lease_until") or held["lease_until"] <= now


def _finish(uow, d_ref, now: dt.datetime, status: str, reason: str) -> None:
    uow.update(d_ref, {"status": status, "reason": reason, "lease_until": None, "slot": None,
                       "next_attempt_at": None, "updated_at": now})


def _defer(uow, settings: WebhookSettings, d_ref, doc: dict[str, Any], run: int, n: int) -> None:
    """Every slot is leased: the same attempt comes back later in a new task. The wait doubles
    with each deferral of this attempt (capped at 64 x ``defer_seconds``) and is jittered widely,
    so a backlog of thousands of attempts on one slow endpoint costs a few deferrals each, not
    one every ``defer_seconds``, and does not return all at once."""
    requeues = doc.get("requeues", 0) + 1
    wait = settings.defer_seconds * 2 ** min(requeues - 1, 6) * random.uniform(0.5, 1.5)
    when = uow.now + dt.timedelta(seconds=wait)
    uow.update(d_ref, {"requeues": requeues, "next_attempt_at": when, "updated_at": uow.now})
    deliveries.schedule_attempt(uow, settings, doc, run=run, n=n, when=when, requeues=requeues)


def lose(uow, settings: WebhookSettings, doc: dict[str, Any], slot_snap) -> None:
    """The attempt in flight outlived its lease (its process died between claim and record):
    record it as ``lost``, free its slot, and go on as after a failed attempt. The receiver may
    or may not have got it; the next attempt carries the same webhook-id."""
    now, n = uow.now, doc.get("attempt_count", 0)
    started = (doc.get("lease_until") or now) - dt.timedelta(seconds=settings.lease_seconds)
    sent = Sent(started=started, outcome="lost",
                error="the attempt did not finish within its lease (worker lost)")
    _release(uow, slot_snap, doc["id"], doc["run"], n)
    update, next_at = _after_failure(uow, settings, doc, n, sent)
    uow.update(deliveries.ref(uow.db, doc["id"]), update)
    _write_attempt(uow, settings, doc, doc["run"], n, sent, next_at)


# ---- send -----------------------------------------------------------------------------------
def _send(deps: Deps, settings: WebhookSettings, endpoint: dict[str, Any],
          event: dict[str, Any]) -> Sent:
    """POST the event to the endpoint at a freshly checked address. Never raises."""
    started = deps.clock.now()
    clock_start = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - clock_start) * 1000, 1)

    try:
        body = deliveries.event_body(event)
        secrets = endpoints.signing_secrets(deps, endpoint, started)
        headers = signing.headers(secrets, event["id"], int(started.timestamp()), body)
        answer = ssrf.post_pinned(endpoint["url"], headers=headers, body=body,
                                  timeout=settings.request_timeout_seconds,
                                  allow_loopback=bool(settings.allow_loopback),
                                  resolver=endpoints.resolver(deps),
                                  max_body_bytes=settings.response_body_limit)
    except ssrf.UnsafeDestination as exc:
        return Sent(started, "unsafe", latency_ms=elapsed(),
                    error=f"unsafe_destination: the URL now resolves to a refused address ({exc.reason})")
    except ssrf.TransportError as exc:
        return Sent(started, "failed", latency_ms=elapsed(), error=str(exc)[:200])
    except Exception as exc:
        _log.exception("webhook attempt failed before an answer")
        return Sent(started, "failed", latency_ms=elapsed(), error=f"internal_error: {type(exc).__name__}",
                    ours=True)
    text = answer.body_excerpt.decode("utf-8", errors="replace")[:settings.response_body_limit]
    status = answer.status
    if 200 <= status < 300:
        return Sent(started, "succeeded", status, answer.latency_ms, text)
    outcome = "gone" if status == 410 else "failed"
    error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    retry_after = (_retry_after(answer.headers.get("retry-after"), started)
                   if status in THROTTLE_STATUSES else None)
    return Sent(started, outcome, status, answer.latency_ms, text, error, retry_after)


def _retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds from ``Retry-After``: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


# ---- record ---------------------------------------------------------------------------------
def _record(uow, settings: WebhookSettings, delivery: dict[str, Any], endpoint: dict[str, Any],
            k: int, run: int, n: int, sent: Sent) -> str:
    db, now = uow.db, uow.now
    d_ref, e_ref = deliveries.ref(db, delivery["id"]), endpoints.ref(db, endpoint["id"])
    s_ref = slot_ref(db, endpoint["id"], k)
    snaps = uow.get_all([d_ref, s_ref, e_ref])
    _release(uow, snaps[s_ref.path], delivery["id"], run, n)
    cur = snaps[d_ref.path].to_dict() if snaps[d_ref.path].exists else None
    if (cur is None or cur.get("run") != run or cur.get("status") != "sending"
            or cur.get("attempt_count") != n):
        # Our lease ran out (the attempt was recorded as lost and the delivery moved on) or a
        # replay started a new run: record what happened, change nothing else.
        _write_attempt(uow, settings, delivery, run, n, sent, None)
        return "superseded"
    e_snap = snaps[e_ref.path]
    ep = e_snap.to_dict() if e_snap.exists else None
    base = {"lease_until": None, "slot": None, "updated_at": now,
            "last_status_code": sent.status_code, "last_error": sent.error}
    if sent.outcome == "succeeded":
        uow.update(d_ref, {**base, "status": "succeeded", "reason": None, "succeeded_at": now,
                           "next_attempt_at": None})
        if ep is not None and _stale_success_mark(ep, now):
            uow.update(e_ref, {"failing_since": None, "last_success_at": now})
        _write_attempt(uow, settings, cur, run, n, sent, None)
        return "succeeded"
    if sent.outcome == "gone":
        if ep is not None and ep.get("status") == "enabled":
            endpoints.set_disabled(uow, e_ref, ep, "gone")
        uow.update(d_ref, {**base, "status": "failed", "reason": "gone", "next_attempt_at": None})
        _write_attempt(uow, settings, cur, run, n, sent, None)
        return "gone"
    disabled = ep is not None and not sent.ours and _count_failure(uow, settings, e_ref, ep, sent)
    if disabled:
        uow.update(d_ref, {**base, "status": "canceled", "reason": "endpoint_disabled",
                           "next_attempt_at": None})
        _write_attempt(uow, settings, cur, run, n, sent, None)
        return "endpoint_disabled"
    update, next_at = _after_failure(uow, settings, cur, n, sent)
    uow.update(d_ref, {**base, **update})
    _write_attempt(uow, settings, cur, run, n, sent, next_at)
    return update["status"]


def _after_failure(uow, settings: WebhookSettings, doc: dict[str, Any], n: int,
                   sent: Sent) -> tuple[dict[str, Any], dt.datetime | None]:
    """The delivery after failed attempt ``n``: the next attempt scheduled, or the dead letter."""
    now, schedule = uow.now, settings.retry_schedule_seconds
    base = {"lease_until": None, "slot": None, "updated_at": now, "last_error": sent.error}
    if n >= len(schedule):
        return {**base, "status": "dead_lettered", "reason": "attempts_exhausted",
                "next_attempt_at": None}, None
    wait = deliveries.jittered(schedule[n], settings)
    if sent.retry_after is not None:
        wait = max(wait, min(sent.retry_after, settings.retry_after_cap_seconds))
    when = now + dt.timedelta(seconds=wait)
    deliveries.schedule_attempt(uow, settings, doc, run=doc["run"], n=n + 1, when=when,
                                requeues=0)
    return {**base, "status": "retrying", "next_attempt_at": when, "requeues": 0}, when


def _stale_success_mark(ep: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a success must touch the endpoint: it was failing, or its ``last_success_at`` is
    older than a minute. Otherwise deliveries to one endpoint never write its document, so
    they do not contend on it (Firestore: ~1 write/s per document)."""
    last = ep.get("last_success_at")
    return (ep.get("failing_since") is not None or last is None
            or (now - last).total_seconds() >= SUCCESS_MARK_SECONDS)


def _count_failure(uow, settings: WebhookSettings, e_ref, ep: dict[str, Any], sent: Sent) -> bool:
    """Mark the start of a run of failures (on the transition only); disable the endpoint and
    tell its owner once it has failed continuously for ``disable_after_seconds``. True if this
    failure disabled it."""
    if ep.get("status") != "enabled":
        return False
    since = ep.get("failing_since")
    if since is None:
        uow.update(e_ref, {"failing_since": sent.started})
        return False
    if (uow.now - since).total_seconds() < settings.disable_after_seconds:
        return False
    endpoints.set_disabled(uow, e_ref, ep, "failing")
    _tell_owner(uow, ep, since)
    return True


def _tell_owner(uow, ep: dict[str, Any], since: dt.datetime) -> None:
    owner = ep.get("owner") or ""
    snap = uow.get(uow.db.collection(USERS).document(owner)) if owner.startswith("usr_") else None
    email = snap.get("email") if snap is not None and snap.exists else None
    if not email:
        logs.log(_log, logging.WARNING, "disabled webhook endpoint's owner has no email",
                 endpoint_id=ep["id"])
        return
    from shared.notify import queue_email  # seals the message: only this rare path needs KMS
    queue_email(uow, to=email, subject="A webhook endpoint was disabled",
                kind="webhook_endpoint_disabled", user_id=owner, text=(
                    f"Your webhook endpoint {ep['id']} ({ep.get('url')}) has failed every delivery "
                    f"since {rfc3339(since)} and was disabled. Fix the receiver, enable the "
                    f"endpoint again, then send the missed events with POST "
                    f"/v1/webhook_endpoints/{ep['id']}/recover."))


def _release(uow, slot_snap, delivery_id: str, run: int, n: int) -> None:
    """Free the slot if this very attempt still holds it (its lease may have passed to another)."""
    if slot_snap is None or not slot_snap.exists:
        return
    held = slot_snap.to_dict()
    if (held.get("holder"), held.get("run"), held.get("n")) == (delivery_id, run, n):
        uow.update(slot_snap.reference, {"holder": None, "lease_until": None, "updated_at": uow.now})


def _write_attempt(uow, settings: WebhookSettings, delivery: dict[str, Any], run: int, n: int,
                   sent: Sent, next_at: dt.datetime | None) -> None:
    attempt_id = new_id("wha")
    uow.create(uow.db.collection(ATTEMPTS).document(attempt_id), {
        "id": attempt_id, "delivery_id": delivery["id"], "event_id": delivery["event_id"],
        "event_type": delivery["event_type"], "endpoint_id": delivery["endpoint_id"],
        "owner": delivery["owner"], "livemode": bool(delivery.get("livemode")), "run": run, "n": n,
        "created_at": sent.started, "finished_at": uow.now, "outcome": sent.outcome,
        "status_code": sent.status_code, "latency_ms": sent.latency_ms,
        "response_body": sent.response_body, "error": sent.error, "next_attempt_at": next_at,
        "expires_at": uow.now + dt.timedelta(seconds=settings.attempt_ttl_seconds)})
