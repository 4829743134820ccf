"""Step deadlines, reassignment, expiry and the sweeper's pass (ADR 0044).

Each step a phone must take has a deadline enforced by a named Cloud Task (queue ``relay``):

| step     | the message is | deadline                          | on timeout                    |
|----------|----------------|-----------------------------------|-------------------------------|
| ``ack``  | assigned       | ``ack_deadline_seconds`` (60 s)   | reassign (the phone never got the text) |
| ``send`` | sending        | ``send_deadline_seconds`` (120 s) | reassign (the phone's lease, 90 s, is over) |
| ``report`` | sent         | ``report_deadline_seconds`` (10 min) | stay ``sent``: never sent again |
| ``expiry`` | queued/assigned | ``expires_at``                 | ``expired``                   |

A handler reloads the message (and job) and acts only if the message still waits for exactly
that step of exactly that job and the deadline has passed (an early or duplicate task, or one
for a job already taken away, writes nothing). Reassignment (``requeue``) takes the job away
(its tokens die), releases the SIM, excludes the SIM and its provider, and queues the message
again after an exponential back-off (``backoff_base_seconds`` × 4ⁿ⁻¹, capped); after
``max_attempts`` failures (per priority) the message is dead-lettered: ``failed`` with
``attempts_exhausted`` and the last reason. A message past ``expires_at`` when it would be
queued again is ``expired`` instead.

The sweeper (every minute) catches a lost timer: messages ``active`` whose ``due_at`` is more
than ``sweep_grace_seconds`` past (index ``(active, due_at)``) are advanced by the same code.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.platform import logs
from shared.platform.uow import UnitOfWork, run_unit
from shared.relay import availability, jobs, lifecycle
from shared.relay.dispatch_settings import dispatch_settings
from shared.relay.lifecycle import (ASSIGNED, COLLECTION, EXPIRED, FAILED, QUEUED, SENDING, SENT)

_log = logs.get_logger(__name__)
STEP_STATUS = {"ack": ASSIGNED, "send": SENDING, "report": SENT}


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    return min(cap, base * 4 ** max(0, failures - 1))


def requeue(uow: UnitOfWork, m_ref, message: dict[str, Any], job: dict[str, Any], *, reason: str,
            job_status: str = "timeout", outcome: str = "timeout", carrier_error: str | None = None,
            permanent: bool = False, job_done: bool = False, charge: bool = True,
            immediate: bool = False) -> dict[str, Any]:
    """Take ``job`` away and queue the message for another SIM, or end it (failed/expired).
    ``charge=False``: the attempt does not count against ``max_attempts`` (the phone never got
    a chance, e.g. its push token was dead)."""
    s = dispatch_settings(uow.deps)
    now = uow.now
    if not job_done:
        jobs.end(uow, job["id"], job_status, outcome=outcome, reason=reason, job=job)
    failures = int(message.get("failures") or 0) + (1 if charge else 0)
    fields: dict[str, Any] = {
        "job": None, "failures": failures,
        "excluded_sims": list(dict.fromkeys([*(message.get("excluded_sims") or []), job["sim_id"]])),
        "excluded_providers": list(dict.fromkeys([*(message.get("excluded_providers") or []),
                                                  job["provider_id"]])),
    }
    if carrier_error:
        fields["carrier_error"] = carrier_error
    if permanent:
        return lifecycle.transition(uow, m_ref, message, FAILED, reason=reason,
                                    failure_code="recipient_unreachable",
                                    failure_message="The carrier says the recipient cannot receive SMS.",
                                    **fields)
    if failures >= int(message.get("max_attempts") or 3):
        return lifecycle.transition(
            uow, m_ref, message, FAILED, reason=f"attempts_exhausted:{reason}",
            failure_code="attempts_exhausted",
            failure_message=f"No phone sent it in {failures} attempts; the last one: {reason}.",
            **fields)
    if now >= message["expiry_at"]:
        return lifecycle.transition(uow, m_ref, message, EXPIRED, reason="expired",
                                    failure_code="expired",
                                    failure_message="It was not sent before expires_at.", **fields)
    wait = 0.0 if immediate else backoff_seconds(failures, s.backoff_base_seconds, s.backoff_cap_seconds)
    when = now + dt.timedelta(seconds=wait)
    message = lifecycle.transition(uow, m_ref, message, QUEUED, reason=reason, **fields,
                                   **lifecycle.due("dispatch", when))
    lifecycle.schedule(uow, s, "dispatch", {"message_id": message["id"]},
                       when=when if wait else None,
                       name=("relay-dispatch", message["id"], str(message.get("attempts") or 0), "0"))
    return message


def _reschedule(uow: UnitOfWork, body: dict[str, Any], when: dt.datetime) -> None:
    lifecycle.schedule(uow, dispatch_settings(uow.deps), "deadline", body, when=when,
                       name=("relay-deadline-again", body["message_id"], body.get("job_id") or "",
                             body["step"], when.isoformat()))


def expire(uow: UnitOfWork, m_ref, message: dict[str, Any]) -> str:
    """Expire a message nobody has sent yet (queued, or assigned and not fetched). A message
    being sent is left to its send deadline, which expires it if it is too late to retry."""
    status = message["status"]
    if status not in (QUEUED, ASSIGNED):
        return f"already_{status}"
    if uow.now < message["expiry_at"]:
        _reschedule(uow, {"message_id": message["id"], "step": "expiry"}, message["expiry_at"])
        return "not_due"
    if status == ASSIGNED and message.get("job"):
        jobs.end(uow, message["job"], "revoked", outcome="canceled", reason="expired")
    lifecycle.transition(uow, m_ref, message, EXPIRED, reason="expired", job=None,
                         failure_code="expired", failure_message="It was not sent before expires_at.")
    return "expired"


def on_deadline(deps, message_id: str, step: str, job_id: str | None = None) -> str:
    """A step deadline (or the expiry) fell due; returns what happened."""
    from shared.relay import dispatch

    def unit(uow: UnitOfWork) -> str:
        m_ref = lifecycle.message_ref(uow.db, message_id)
        j_ref = lifecycle.job_ref(uow.db, job_id) if job_id else None
        snaps = uow.get_all([m_ref] + ([j_ref] if j_ref else []))
        if not snaps[m_ref.path].exists:
            return "missing"
        message = snaps[m_ref.path].to_dict()
        if step == "expiry":
            return expire(uow, m_ref, message)
        if (message.get("job") != job_id or message.get("due") != step
                or message["status"] != STEP_STATUS[step] or not snaps[j_ref.path].exists):
            return "stale"
        if uow.now < message["due_at"]:
            _reschedule(uow, {"message_id": message_id, "job_id": job_id, "step": step},
                        message["due_at"])
            return "not_due"
        job = snaps[j_ref.path].to_dict()
        if step == "report":   # sent, no delivery report: sent stays the last word
            availability.release(uow, job["sim_id"], now=uow.now, job_id=job_id, outcome="timeout")
            uow.update(m_ref, {**lifecycle.due(None), "updated_at": uow.now})
            return "sent_unconfirmed"
        message = requeue(uow, m_ref, message, job, reason=f"{step}_timeout")
        dispatch.wake(uow, message["livemode"])     # the SIM's slot is free again
        return "requeued" if message["status"] == QUEUED else message["status"]
    outcome = run_unit(deps, unit)
    logs.log(_log, logging.INFO, "relay deadline", message_id=message_id, job_id=job_id, step=step,
             outcome=outcome)
    return outcome


def advance(deps, doc: dict[str, Any]) -> str:
    """Do what an overdue message waits for (the sweeper's catch-up for a lost timer)."""
    from shared.relay import dispatch
    now = deps.clock.now()
    if doc["status"] in (QUEUED, ASSIGNED) and now >= doc["expiry_at"]:
        return on_deadline(deps, doc["id"], "expiry")
    if doc.get("due") == "dispatch":
        return dispatch.assign(deps, doc["id"])
    if doc.get("due") in STEP_STATUS:
        return on_deadline(deps, doc["id"], doc["due"], job_id=doc.get("job"))
    return "nothing_due"


def sweep(deps, now: dt.datetime | None = None) -> dict[str, int]:
    """Advance every message whose timer is overdue (one query, index (active, due_at))."""
    s = dispatch_settings(deps)
    now = now or deps.clock.now()
    cutoff = now - dt.timedelta(seconds=s.sweep_grace_seconds)
    q = (deps.db.collection(COLLECTION).where(filter=FieldFilter("active", "==", True))
         .where(filter=FieldFilter("due_at", "<=", cutoff)).order_by("due_at").limit(s.sweep_batch))
    outcomes: dict[str, int] = {}
    for snap in q.stream():
        try:
            outcome = advance(deps, snap.to_dict())
        except Exception:  # noqa: BLE001 — one bad message must not stop the pass
            _log.exception("relay sweeper could not advance a message")
            outcome = "error"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        logs.log(_log, logging.INFO, "relay sweeper advanced messages", outcomes=outcomes)
    return outcomes
