"""Dispatch: assign a queued message to a SIM, then push the job to its phone (ADR 0044).

``assign`` is one unit of work: reload the message (it must still be ``queued`` and due),
``matching.pick`` reserves a SIM, the job document is created, the message becomes
``assigned`` with its ``ack`` deadline task, and ``message.assigned`` is emitted: one commit.
No SIM free: the message stays ``queued``, marked ``waiting``, and looks again after a growing
wait (``no_sim_retry_seconds``, doubling, capped) until it expires: it is never dropped. Sooner
in practice: whenever a phone's report frees a SIM's in-flight slot, the same unit ``wake``s
the waiting message of the highest priority that waits longest (the job queue's priority
order: high, normal, bulk).

The push happens after that commit, outside any unit (a side effect): an FCM high-priority
data message carrying ONLY ``{"job_id"}`` (the phone fetches the text with its credentials, so
nothing readable travels through Google). Outcomes:

* sent: the job records the FCM message id (one blind write);
* ``PushTokenInvalid`` (unregistered, sender mismatch) or no token: the device's token is
  dropped (``providers.drop_push_token``: its SIMs leave matching until it registers a new
  one), the job is taken away (outcome ``rejected``) and the message is queued again at once,
  without counting an attempt;
* ``PushUnavailable``/``PushRejected``: the push is retried by a task after
  ``push_retry_seconds[n]``; when those run out the ``ack`` deadline reassigns.

Cost (Firestore round trips) of a first assignment: the message read, the candidates query,
the commit, the outbox record's completion, the device's token read, the push record: 6.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.platform import logs
from shared.platform.uow import UnitOfWork, run_unit
from shared.relay import deadlines, jobs, lifecycle, matching, providers
from shared.relay.dispatch_settings import DispatchSettings, dispatch_settings
from shared.relay.lifecycle import ASSIGNED, QUEUED

_log = logs.get_logger(__name__)
EARLY_TOLERANCE = dt.timedelta(seconds=1)
PRIORITY_RANK = {"high": 0, "normal": 1, "bulk": 2}
WAKE_SCAN, WAKE_SPACING_S = 5, 2.0


def _no_sim(uow: UnitOfWork, m_ref, message: dict[str, Any], s: DispatchSettings) -> str:
    tries = int(message.get("dispatch_tries") or 0) + 1
    wait = min(s.no_sim_retry_cap_seconds, s.no_sim_retry_seconds * 2 ** (tries - 1))
    when = uow.now + dt.timedelta(seconds=wait)
    uow.update(m_ref, {"dispatch_tries": tries, "updated_at": uow.now, "waiting": True,
                       "waiting_since": message.get("waiting_since") or uow.now,
                       **lifecycle.due("dispatch", when)})
    lifecycle.schedule(uow, s, "dispatch", {"message_id": message["id"]}, when=when,
                       name=("relay-dispatch", message["id"], str(message.get("attempts") or 0),
                             str(tries)))
    return "no_sim"


def _assign(uow: UnitOfWork, message_id: str, s: DispatchSettings, woken: bool = False):
    m_ref, message = lifecycle.load(uow, message_id)
    if message is None:
        return "missing", None
    if message["status"] != QUEUED or message.get("due") != "dispatch":
        return f"already_{message['status']}", None
    now = uow.now
    early = message.get("due_at") and now + EARLY_TOLERANCE < message["due_at"]
    if early and not (woken and message.get("waiting")):
        return "not_due", None   # an early duplicate; the task for the right time exists
    if now >= message["expiry_at"]:
        lifecycle.transition(uow, m_ref, message, lifecycle.EXPIRED, reason="expired",
                             failure_code="expired", failure_message="It was not sent before expires_at.")
        return "expired", None
    attempt = int(message.get("attempts") or 0) + 1
    job_id = jobs.job_id_for(message_id, attempt)
    chosen = matching.pick(uow, message, job_id, s)
    if chosen is None:
        return _no_sim(uow, m_ref, message, s), None
    job = jobs.new_job(message, chosen, attempt, now, s)
    uow.create(lifecycle.job_ref(uow.db, job_id), job)
    deadline = now + dt.timedelta(seconds=s.ack_deadline_seconds)
    lifecycle.transition(uow, m_ref, message, ASSIGNED, reason=f"attempt_{attempt}", job=job_id,
                         attempts=attempt, dispatch_tries=0, waiting=False, waiting_since=None,
                         jobs=[*(message.get("jobs") or []), job_id][-20:],
                         **lifecycle.due("ack", deadline))
    lifecycle.schedule(uow, s, "deadline", {"message_id": message_id, "job_id": job_id,
                                            "step": "ack"},
                       when=deadline, name=("relay-deadline", job_id, "ack"))
    return "assigned", job


def assign(deps, message_id: str, *, woken: bool = False) -> str:
    """Assign the message if it is queued and due (or waiting for a SIM and ``woken`` by a
    freed one), then push its job; returns the outcome."""
    s = dispatch_settings(deps)
    outcome, job = run_unit(deps, lambda uow: _assign(uow, message_id, s, woken))
    logs.log(_log, logging.INFO, "relay dispatch", message_id=message_id, outcome=outcome,
             job_id=job["id"] if job else None, sim_id=job["sim_id"] if job else None)
    if job is not None:
        push(deps, job, 1)
    return outcome


def wake(uow: UnitOfWork, livemode: bool) -> str | None:
    """A SIM's in-flight slot was just freed: dispatch the message that waits longest at the
    highest priority (``waiting`` messages, index (waiting, livemode, priority_rank,
    waiting_since)) now instead of at its back-off. One query; the woken message is marked
    (``woken_at``) so concurrent releases wake different ones. Returns its id or None."""
    s = dispatch_settings(uow.deps)
    q = (uow.db.collection(lifecycle.COLLECTION)
         .where(filter=FieldFilter("waiting", "==", True))
         .where(filter=FieldFilter("livemode", "==", livemode))
         .order_by("priority_rank").order_by("waiting_since").limit(WAKE_SCAN))
    recent = uow.now - dt.timedelta(seconds=WAKE_SPACING_S)
    for snap in uow.query(q):
        doc = snap.to_dict()
        if doc.get("woken_at") and doc["woken_at"] > recent:
            continue
        uow.update(snap.reference, {"woken_at": uow.now})
        lifecycle.schedule(uow, s, "dispatch", {"message_id": doc["id"], "wake": True}, when=None,
                           name=("relay-wake", doc["id"], str(doc.get("dispatch_tries") or 0)))
        return doc["id"]
    return None


def push(deps, job: dict[str, Any], n: int) -> str:
    """Push attempt ``n`` of the job to its device (outside any unit of work)."""
    from shared.adapters.fcm import PushError, PushTokenInvalid
    from shared.notify.senders import push_sender
    s = dispatch_settings(deps)
    token = providers.device_push_token(deps.db, job["device_id"])
    try:
        if token is None:
            raise PushTokenInvalid("the device has no active push token")
        fcm_id = push_sender(deps).send(token, {"job_id": job["id"]}, priority="high",
                                        ttl_seconds=s.push_ttl_seconds)
    except PushTokenInvalid:
        outcome = run_unit(deps, lambda uow: _token_dead(uow, job))
    except PushError as exc:
        error = type(exc).__name__
        outcome = run_unit(deps, lambda uow: _push_failed(uow, job, n, error, s))
    else:
        now = deps.clock.now()
        run_unit(deps, lambda uow: uow.update(lifecycle.job_ref(uow.db, job["id"]), {
            "push": {"status": "sent", "attempts": n, "message_id": fcm_id, "at": now, "error": None}}))
        outcome = "pushed"
    logs.log(_log, logging.INFO if outcome == "pushed" else logging.WARNING, "relay push",
             job_id=job["id"], attempt=n, outcome=outcome)
    return outcome


def _current(uow: UnitOfWork, job_id: str):
    """(message ref, message, job) while the job still waits for its phone, else None."""
    message_id = jobs.message_id_of(job_id)
    m_ref, j_ref = lifecycle.message_ref(uow.db, message_id), lifecycle.job_ref(uow.db, job_id)
    snaps = uow.get_all([m_ref, j_ref])
    if not snaps[m_ref.path].exists or not snaps[j_ref.path].exists:
        return None
    message, job = snaps[m_ref.path].to_dict(), snaps[j_ref.path].to_dict()
    if message.get("job") != job_id or job["status"] != ASSIGNED or message["status"] != ASSIGNED:
        return None
    return m_ref, message, job


def _token_dead(uow: UnitOfWork, job: dict[str, Any]) -> str:
    providers.drop_push_token(uow, job["device_id"], "fcm_token_invalid")
    found = _current(uow, job["id"])
    if found is None:
        return "token_dropped"
    m_ref, message, current_job = found
    deadlines.requeue(uow, m_ref, message, current_job, reason="push_token_invalid",
                      job_status="revoked", outcome="rejected", charge=False, immediate=True)
    return "token_dropped_requeued"


def _push_failed(uow: UnitOfWork, job: dict[str, Any], n: int, error: str,
                 s: DispatchSettings) -> str:
    found = _current(uow, job["id"])
    if found is None:
        return "push_failed_stale"
    _m_ref, _message, current_job = found
    retry = n <= len(s.push_retry_seconds)
    uow.update(lifecycle.job_ref(uow.db, job["id"]), {"push": {
        "status": "retrying" if retry else "failed", "attempts": n, "message_id": None,
        "at": uow.now, "error": error[:120]}, "updated_at": uow.now})
    if not retry:
        return "push_failed"     # the ack deadline reassigns
    when = uow.now + dt.timedelta(seconds=s.push_retry_seconds[n - 1])
    lifecycle.schedule(uow, s, "push", {"job_id": job["id"], "attempt": n + 1}, when=when,
                       name=("relay-push", job["id"], str(n + 1)))
    return "push_retry"


def retry_push(deps, job_id: str, n: int) -> str:
    """The push retry task: push again if the job still waits for its phone and attempt
    ``n`` is the next one."""
    def check(uow: UnitOfWork):
        found = _current(uow, job_id)
        if found is None:
            return None
        job = found[2]
        return job if int((job.get("push") or {}).get("attempts") or 0) == n - 1 else None
    job = run_unit(deps, check)
    if job is None:
        return "stale"
    return push(deps, job, n)
