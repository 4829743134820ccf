"""One delivery attempt of a queued message: claim, send outside any unit of work, record.

Why this shape: a provider call is a side effect, so it never runs inside a unit of work (which
may run twice). Attempt ``n`` first *claims* the message in one commit: it must still be
waiting for attempt ``n`` (``attempt_count == n-1``), it gets a lease, and the Cloud Task for
attempt ``n+1`` is scheduled in that same commit (after a back-off never shorter than the
lease). Then it sends, then it records the outcome. So:

* a redelivered event or a duplicate task finds the claim taken and does nothing (a message id is
  sent at most once per attempt, and never after it was sent);
* a failed send only records the failure: its retry is already scheduled;
* a crash between claim and record is recovered by that same task once the lease has passed;
* a success or a dead letter turns the already scheduled task into a no-op.

After ``max_attempts`` failures, or at once for a permanent refusal (bounced address, invalid
token), the message is ``dead_lettered`` with its last error.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
from typing import Any

from shared.notify import senders
from shared.notify.outbound import COLLECTION, content_context
from shared.notify.settings import NotifySettings, notify_settings
from shared.platform import logs, secrets_at_rest
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit

TASKS_FUNCTION = "notify_tasks"
TASK_PATH = "/attempts"
_log = logs.get_logger(__name__)


def retry_delay(settings: NotifySettings, attempt: int) -> dt.timedelta:
    """The wait before attempt ``attempt + 1``: exponential, capped, jittered, ≥ the lease."""
    base = min(settings.backoff_cap_seconds,
               settings.backoff_base_seconds * settings.backoff_factor ** (attempt - 1))
    return dt.timedelta(seconds=max(settings.lease_seconds, base * random.uniform(0.75, 1.25)))


def _entry(n: int, started: dt.datetime, finished: dt.datetime, outcome: str,
           error: str | None = None, provider_id: str | None = None) -> dict[str, Any]:
    return {"n": n, "started_at": started, "finished_at": finished, "outcome": outcome,
            "error": error, "provider_id": provider_id}


def attempt(deps, message_id: str, n: int) -> str:
    """Run attempt ``n`` of ``message_id``; returns what happened (for logs and tests)."""
    settings = notify_settings(deps)
    ref = deps.db.collection(COLLECTION).document(message_id)
    lease = dt.timedelta(seconds=settings.lease_seconds)

    def claim(uow) -> tuple[str, dict[str, Any] | None]:
        snap = uow.get(ref)
        if not snap.exists:
            return "missing", None
        doc = snap.to_dict()
        status = doc.get("status")
        if status in ("sent", "dead_lettered"):
            return f"already_{status}", None
        if doc.get("attempt_count", 0) != n - 1:
            return "stale", None
        if status == "sending" and doc.get("lease_until") and doc["lease_until"] > uow.now:
            return "busy", None
        update: dict[str, Any] = {"updated_at": uow.now}
        attempts = list(doc.get("attempts") or [])
        if status == "sending":  # attempt n-1 died between its claim and its record
            attempts.append(_entry(n - 1, doc.get("lease_until"), uow.now, "lost",
                                   "the attempt did not finish within its lease"))
            update.update(attempts=attempts, last_error="attempt lost (lease expired)")
        if n > settings.max_attempts:
            update.update(status="dead_lettered", dead_lettered_at=uow.now, lease_until=None,
                          next_attempt_at=None)
            uow.update(ref, update)
            return "dead_lettered", None
        delay = retry_delay(settings, n)
        uow.schedule_task(queue=settings.queue, function=TASKS_FUNCTION, path=TASK_PATH,
                          body={"message_id": message_id, "attempt": n + 1},
                          schedule_time=uow.now + delay,
                          name=task_name("notify", message_id, str(n + 1)))
        update.update(status="sending", attempt_count=n, lease_until=uow.now + lease,
                      next_attempt_at=uow.now + delay)
        uow.update(ref, update)
        return "claimed", doc

    outcome, doc = run_unit(deps, claim)
    if outcome != "claimed":
        logs.log(_log, logging.INFO, "notify attempt skipped", message_id=message_id,
                 attempt=n, outcome=outcome)
        return outcome

    started = deps.clock.now()
    provider_id, failure = None, None
    try:
        content = json.loads(secrets_at_rest.envelope(deps).open_text(
            doc["content"], context=content_context(message_id)))
        provider_id = senders.send(deps, doc["channel"], content, kind=doc.get("kind") or "transactional")
    except senders.SendFailed as exc:
        failure = exc
    except secrets_at_rest.SecretIntegrityError:
        failure = senders.SendFailed("content does not decrypt", retryable=False)
    except Exception as exc:  # noqa: BLE001 — an adapter bug or KMS outage: try again later
        failure = senders.SendFailed(f"unexpected {type(exc).__name__}", retryable=True)
    finished = deps.clock.now()

    def record(uow) -> str:
        snap = uow.get(ref)
        cur = snap.to_dict() if snap.exists else None
        if not cur or cur.get("attempt_count") != n or cur.get("status") != "sending":
            return "superseded"  # our lease ran out and a later attempt took over
        attempts = list(cur.get("attempts") or [])
        base = {"updated_at": uow.now, "lease_until": None}
        if failure is None:
            attempts.append(_entry(n, started, finished, "sent", provider_id=provider_id))
            uow.update(ref, {**base, "status": "sent", "sent_at": finished,
                             "provider_id": provider_id, "attempts": attempts,
                             "next_attempt_at": None})
            return "sent"
        attempts.append(_entry(n, started, finished, "failed", failure.reason))
        if not failure.retryable or n >= settings.max_attempts:
            uow.update(ref, {**base, "status": "dead_lettered", "dead_lettered_at": uow.now,
                             "last_error": failure.reason, "attempts": attempts,
                             "next_attempt_at": None})
            return "dead_lettered"
        uow.update(ref, {**base, "status": "retrying", "last_error": failure.reason,
                         "attempts": attempts})
        return "retrying"

    result = run_unit(deps, record)
    level = logging.INFO if result == "sent" else logging.WARNING
    logs.log(_log, level, "notify attempt finished", message_id=message_id, attempt=n,
             outcome=result, channel=doc["channel"], kind=doc.get("kind"),
             error=failure.reason if failure else None)
    return result
