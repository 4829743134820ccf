"""Jobs: one message handed to one SIM, and everything its phone does with it (ADR 0044).

``relay_jobs/{job_…}``: the job id is ``job_`` + the message id's 24 characters + the attempt
number, so a report names both documents and ONE batch read fetches the job, its message and
the caller's provider record. Fields: message_id, attempt, provider_id, sim_id, device_id,
status (assigned → sending → sent → delivered | failed; or timeout | revoked | canceled when it
was taken away), token_hashes, fetches, assigned_at, fetched_at, send_before, sent_at,
delivered_at, failed_at, ended_at, end_reason, late, carrier_error, push, purge_at (TTL).

The per-job token: fetching the job IS the phone's acknowledgement, and every fetch by the
assigned provider returns the same job with a fresh random token whose SHA-256 joins
``token_hashes`` (at most ``max_fetches``): no token is stored in clear, a phone whose answer
was lost fetches again, and all of them die together when the job is taken away. Every report
must carry one; anything else is refused (404 for a job that is not the caller's, 403 for a
wrong token, 410 for a job taken away before it was fetched) and counted against the
reporting provider by ``fraud.observe_report`` (its writes are committed with the refusal).
"""
from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.identity.opaque import new_token, token_hash
from shared.platform import logs
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, NotFound, PayloomError, PermissionDenied
from shared.platform.pagination import ListResponse, paginate
from shared.platform.uow import UnitOfWork
from shared.relay import availability, fraud, lifecycle, providers
from shared.relay.dispatch_settings import DispatchSettings, dispatch_settings
from shared.relay.lifecycle import ASSIGNED, DELIVERED, FAILED, JOBS, SENDING, SENT
from shared.relay.message_models import Job, JobListQuery, JobSummary, ReportOutcome
from shared.relay.supply_settings import supply_settings

_log = logs.get_logger(__name__)
ENDED = ("timeout", "revoked", "canceled")   # taken away from the phone
# Carrier errors that no other SIM can fix: the recipient cannot get SMS.
PERMANENT_ERRORS = frozenset({"invalid_destination", "number_not_in_service", "recipient_barred",
                              "unknown_subscriber"})
KM_STATUS = {
    "assigned": "បានចាត់ឱ្យអ្នក", "sending": "កំពុងផ្ញើ", "sent": "បានផ្ញើ",
    "delivered": "បានទទួល", "failed": "បរាជ័យ", "timeout": "ហួសពេល",
    "revoked": "បានដកចេញ", "canceled": "បានលុបចោល",
}
KM_REPORT = {"accepted": "បានទទួលរបាយការណ៍។", "duplicate": "បានទទួលរួចហើយ។"}


class JobGone(PayloomError):
    status, type, code = 410, "invalid_request_error", "job_gone"


class JobTokenInvalid(PermissionDenied):
    code = "job_token_invalid"


def job_id_for(message_id: str, attempt: int) -> str:
    return f"job_{message_id[4:]}{attempt}"


def message_id_of(job_id: str) -> str | None:
    """The message a job id names (None when it is not a job id)."""
    if not isinstance(job_id, str) or not job_id.startswith("job_") or len(job_id) < 29:
        return None
    body, attempt = job_id[4:28], job_id[28:]
    if not body.isalnum() or not body.isascii() or not attempt.isdigit() or len(attempt) > 3:
        return None
    return "msg_" + body


def _ts(value) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def new_job(message: dict[str, Any], candidate, attempt: int, now: dt.datetime,
            s: DispatchSettings) -> dict[str, Any]:
    return {"id": job_id_for(message["id"], attempt), "object": "relay_job",
            "message_id": message["id"], "attempt": attempt, "tenant": message["tenant"],
            "livemode": message["livemode"], "provider_id": candidate.provider_id,
            "sim_id": candidate.sim_id, "device_id": candidate.device_id,
            "sim_carrier": candidate.carrier, "status": ASSIGNED, "token_hashes": [],
            "fetches": 0, "assigned_at": now, "fetched_at": None, "send_before": None,
            "sent_at": None, "delivered_at": None, "failed_at": None, "ended_at": None,
            "end_reason": None, "late": False, "carrier_error": None,
            "push": {"status": "pending", "attempts": 0, "message_id": None, "at": None,
                     "error": None},
            "updated_at": now, "purge_at": now + dt.timedelta(days=s.retention_days)}


def resource(job: dict[str, Any], message: dict[str, Any], *, token: str | None = None) -> Job:
    return Job(id=job["id"], message=job["message_id"], sim=job["sim_id"], to=message["to"],
               text=message["text"], parts=message["parts"], encoding=message["encoding"],
               status=job["status"], token=token, send_before=_ts(job.get("send_before")),
               lease_seconds=(int((job["send_before"] - job["fetched_at"]).total_seconds())
                              if job.get("send_before") and job.get("fetched_at") else None),
               assigned=_ts(job["assigned_at"]), sent_at=_ts(job.get("sent_at")),
               delivered_at=_ts(job.get("delivered_at")), status_km=KM_STATUS.get(job["status"]))


def summary(job: dict[str, Any]) -> JobSummary:
    return JobSummary(id=job["id"], message=job["message_id"], sim=job["sim_id"],
                      status=job["status"], assigned=_ts(job["assigned_at"]),
                      sent_at=_ts(job.get("sent_at")), delivered_at=_ts(job.get("delivered_at")))


# --- taking a job away ------------------------------------------------------------------------
def end(uow: UnitOfWork, job_id: str, status: str, *, outcome: str, reason: str | None = None,
        job: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Take the job away from its phone (``timeout`` | ``revoked`` | ``canceled``): its tokens
    stop working for fetches, and its SIM's in-flight slot is released with ``outcome``. A
    job already finished by its phone is left as it is."""
    ref = lifecycle.job_ref(uow.db, job_id)
    if job is None:
        snap = uow.get(ref)
        job = snap.to_dict() if snap.exists else None
    if job is None or job["status"] not in (ASSIGNED, SENDING):
        return job
    now = uow.now
    changes = {"status": status, "ended_at": now, "end_reason": reason or status, "updated_at": now}
    uow.update(ref, changes)
    job.update(changes)
    availability.release(uow, job["sim_id"], now=now, job_id=job_id, outcome=outcome)
    return job


# --- the phone's calls ------------------------------------------------------------------------
def _load(uow: UnitOfWork, principal: Principal, job_id: str, kind: str):
    """(job ref, job, message ref, message, provider id) for the caller's job, else the
    refusal (404) after recording it with the fraud detectors."""
    provider_id = providers.provider_id_for(principal.id)
    message_id = message_id_of(job_id)
    p_ref = providers.provider_ref(uow.db, provider_id)
    refs = [p_ref]
    if message_id:
        j_ref, m_ref = lifecycle.job_ref(uow.db, job_id), lifecycle.message_ref(uow.db, message_id)
        refs += [j_ref, m_ref]
    snaps = uow.get_all(refs)
    p_doc = snaps[p_ref.path].to_dict() if snaps[p_ref.path].exists else None
    if p_doc is None:
        raise providers.NotAProvider("Register as a provider first (POST /v1/relay/providers).")
    if p_doc.get("status") == "blacklisted":
        raise providers.ProviderBlacklisted("This provider account is suspended.")
    job = snaps[j_ref.path].to_dict() if message_id and snaps[j_ref.path].exists else None
    message = snaps[m_ref.path].to_dict() if job and snaps[m_ref.path].exists else None
    if job is None or message is None or job["provider_id"] != provider_id:
        _refuse(uow, job, provider_id, job_id, kind,
                "unknown_job" if job is None or message is None else "wrong_provider")
        raise NotFound("No such job.", code="job_not_found", param="job_id")
    return j_ref, job, m_ref, message, provider_id


def _refuse(uow: UnitOfWork, job, provider_id: str, job_id: str, kind: str, reason: str) -> None:
    """Count a refused call against the caller; its writes commit with the error answer."""
    uow.keep_writes_on_error = True
    fraud.observe_report(uow, sim_id=(job or {}).get("sim_id"), provider_id=provider_id,
                         job_id=job_id, kind=kind, assigned_at=(job or {}).get("assigned_at"),
                         sent_at=None, delivered_at=None, valid=False, reason=reason)
    logs.log(_log, logging.WARNING, "relay call refused", job_id=job_id[:64], kind=kind,
             reason=reason, provider_id=provider_id)


def fetch(uow: UnitOfWork, principal: Principal, job_id: str) -> Job:
    """The phone fetches (and so acknowledges) its job: the first fetch moves the message to
    ``sending`` and starts the send deadline; every fetch gets a fresh valid token."""
    s = dispatch_settings(uow.deps)
    j_ref, job, m_ref, message, provider_id = _load(uow, principal, job_id, "fetch")
    status = job["status"]
    if status in ENDED or (status == ASSIGNED and message.get("job") != job_id):
        raise JobGone("This job was taken away from your phone (too late or canceled).")
    if status in (SENT, DELIVERED, FAILED):
        return resource(job, message)
    if job["fetches"] >= s.max_fetches:
        raise Conflict("This job was fetched too many times.", code="job_fetch_limit")
    now = uow.now
    token = new_token("jt_", 24)
    changes: dict[str, Any] = {"token_hashes": list(job.get("token_hashes") or []) + [token_hash(token)],
                               "fetches": job["fetches"] + 1, "updated_at": now}
    if status == ASSIGNED:
        changes.update(status=SENDING, fetched_at=now,
                       send_before=now + dt.timedelta(seconds=s.send_lease_seconds))
        deadline = now + dt.timedelta(seconds=s.send_deadline_seconds)
        lifecycle.transition(uow, m_ref, message, SENDING, reason=f"fetched_attempt_{job['attempt']}",
                             **lifecycle.due("send", deadline))
        lifecycle.schedule(uow, s, "deadline", {"message_id": message["id"], "job_id": job_id,
                                                "step": "send"},
                           when=deadline, name=("relay-deadline", job_id, "send"))
    uow.update(j_ref, changes)
    job.update(changes)
    return resource(job, message, token=token)


def _token_ok(job: dict[str, Any], token: str) -> bool:
    digest = token_hash(token)
    ok = False
    for stored in job.get("token_hashes") or []:
        ok |= hmac.compare_digest(stored, digest)
    return ok


def report(uow: UnitOfWork, principal: Principal, job_id: str, kind: str, body) -> ReportOutcome:
    """A phone reports ``sent``, ``delivered`` or ``failed`` on its job (see ``_apply``)."""
    j_ref, job, m_ref, message, provider_id = _load(uow, principal, job_id, kind)
    if not _token_ok(job, body.token):
        _refuse(uow, job, provider_id, job_id, kind, "wrong_token")
        raise JobTokenInvalid("The job token is wrong.")
    before, reported_sent = job["status"], job.get("sent_at")
    _apply(uow, kind, j_ref, job, m_ref, message, body.carrier_error)
    duplicate = job["status"] == before
    # the detectors judge what the phone said: a delivery report with no sent report before it
    # is "delivered_unsent", not "delivered 0 s after sent"; a repeat (the phone retrying a lost
    # answer) says nothing new and is not judged again (one latency sample per delivery)
    if not duplicate:
        fraud.observe_report(uow, sim_id=job["sim_id"], provider_id=provider_id, job_id=job_id,
                             kind=kind, assigned_at=job["assigned_at"],
                             sent_at=job.get("sent_at") if kind == "sent" else reported_sent,
                             delivered_at=job.get("delivered_at"), valid=True)
    return ReportOutcome(job=job_id, accepted=True, status=job["status"], duplicate=duplicate,
                         message_km=KM_REPORT["duplicate" if duplicate else "accepted"])


def _set_job(uow: UnitOfWork, j_ref, job: dict[str, Any], **changes: Any) -> None:
    changes["updated_at"] = uow.now
    uow.update(j_ref, changes)
    job.update(changes)


def _apply(uow: UnitOfWork, kind: str, j_ref, job: dict[str, Any], m_ref, message: dict[str, Any],
           carrier_error: str | None) -> None:
    """The report's effect on the job and its message; a repeat or a report that comes after
    a later one (sent after delivered) changes nothing."""
    now, status = uow.now, job["status"]
    current = message.get("job") == job["id"]
    if kind == "sent":
        if status not in (SENDING, *ENDED):
            return
        _set_job(uow, j_ref, job, status=SENT, sent_at=now, late=status in ENDED)
        availability.release(uow, job["sim_id"], now=now, job_id=job["id"], outcome="sent")
        _message_sent(uow, m_ref, message, job, current)
        if status == SENDING:
            _wake(uow, job)
    elif kind == "delivered":
        if status in (DELIVERED, FAILED):
            return
        _set_job(uow, j_ref, job, status=DELIVERED, delivered_at=now,
                 sent_at=job.get("sent_at") or now, late=job.get("late") or status in ENDED)
        availability.release(uow, job["sim_id"], now=now, job_id=job["id"], outcome="delivered")
        _message_delivered(uow, m_ref, message, job, current)
        if status == SENDING:
            _wake(uow, job)
    elif kind == "failed":
        if status not in (SENDING, SENT):
            return
        error = (carrier_error or "unknown")[:120]
        _set_job(uow, j_ref, job, status=FAILED, failed_at=now, carrier_error=error)
        availability.release(uow, job["sim_id"], now=now, job_id=job["id"], outcome="failed")
        _message_failed(uow, m_ref, message, job, status, current, error)
        if status == SENDING:
            _wake(uow, job)


def _wake(uow: UnitOfWork, job: dict[str, Any]) -> None:
    """The report freed an in-flight slot: a message waiting for a SIM may go now."""
    from shared.relay import dispatch
    dispatch.wake(uow, job["livemode"])


def _take_over(uow: UnitOfWork, message: dict[str, Any], job: dict[str, Any]) -> None:
    """A late report from an old job wins over the message's newer job: take that one away
    (its phone may already hold the text: if it sends too, that is counted as a duplicate)."""
    other = message.get("job")
    if other and other != job["id"]:
        end(uow, other, "revoked", outcome="canceled", reason="sent_by_previous_attempt")


def _message_sent(uow, m_ref, message, job, current: bool) -> None:
    s = dispatch_settings(uow.deps)
    now = uow.now
    if message["status"] in (SENT, DELIVERED):
        if message.get("sent_by_job") != job["id"]:
            _duplicate(uow, m_ref, message, job)
        return
    if message["status"] == "canceled":
        return
    if not current:
        _take_over(uow, message, job)
    deadline = now + dt.timedelta(seconds=s.report_deadline_seconds)
    lifecycle.transition(uow, m_ref, message, SENT,
                         reason="sent" if current else "late_report", job=job["id"],
                         sent_by_job=job["id"], sent_at=now, failure_code=None,
                         failure_message=None, **lifecycle.due("report", deadline))
    lifecycle.schedule(uow, s, "deadline", {"message_id": message["id"], "job_id": job["id"],
                                            "step": "report"},
                       when=deadline, name=("relay-deadline", job["id"], "report"))


def _message_delivered(uow, m_ref, message, job, current: bool) -> None:
    status = message["status"]
    if status == DELIVERED or status == "canceled":
        if status == DELIVERED and message.get("sent_by_job") != job["id"]:
            _duplicate(uow, m_ref, message, job)
        return
    if status == SENT and message.get("sent_by_job") not in (None, job["id"]):
        _duplicate(uow, m_ref, message, job)
        return
    ours = message.get("sent_by_job") == job["id"] or (current and status == SENDING)
    if not ours:
        _take_over(uow, message, job)
    lifecycle.transition(uow, m_ref, message, DELIVERED,
                         reason="delivered" if ours else "late_report", job=job["id"],
                         sent_by_job=job["id"], sent_at=message.get("sent_at") or job["sent_at"],
                         delivered_at=uow.now, failure_code=None, failure_message=None)
    if job.get("late"):   # it DID deliver the message: it earns, though its SIM let it go
        from shared.relay import earnings
        earnings.record_late(uow, job, uow.now, supply_settings(uow.deps).reward_units)


def _message_failed(uow, m_ref, message, job, job_status: str, current: bool, error: str) -> None:
    from shared.relay import deadlines
    if job_status == SENT:   # the carrier's delivery report says failed: never sent again
        if message["status"] == SENT and message.get("sent_by_job") == job["id"]:
            lifecycle.transition(uow, m_ref, message, FAILED, reason="delivery_failed",
                                 failure_code="delivery_failed", carrier_error=error,
                                 failure_message="The carrier reported the SMS undelivered.")
        return
    if current and message["status"] == SENDING:
        deadlines.requeue(uow, m_ref, message, job, reason="send_failed", carrier_error=error,
                          permanent=error in PERMANENT_ERRORS, job_done=True)


def _duplicate(uow, m_ref, message, job) -> None:
    """Two phones sent one message (a late phone after a reassignment): record it."""
    count = int(message.get("duplicate_sends") or 0) + 1
    uow.update(m_ref, {"duplicate_sends": count, "updated_at": uow.now})
    message["duplicate_sends"] = count
    logs.log(_log, logging.WARNING, "message sent by two phones", message_id=message["id"],
             job_id=job["id"], duplicates=count)


def list_jobs(deps, principal: Principal, query: JobListQuery) -> ListResponse[JobSummary]:
    """The caller's jobs, newest first. Indexes: (provider_id, assigned_at desc) and
    (provider_id, status, assigned_at desc)."""
    provider = providers.require_provider(deps, principal)
    col = deps.db.collection(JOBS)
    q = col.where(filter=FieldFilter("provider_id", "==", provider.id))
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    page = paginate(q, col, query, url="/v1/relay/jobs", to_resource=summary,
                    order_field="assigned_at", belongs=lambda d: d.get("provider_id") == provider.id)
    return ListResponse[JobSummary](data=page.data, has_more=page.has_more, url=page.url)



def reply(uow: UnitOfWork, principal: Principal, job_id: str, token: str, text: str, *,
          is_stop: bool) -> ReportOutcome:
    """A reply the job's SIM received from the recipient. A STOP reply opts the recipient out
    of the message's client (``optout.record_stop``); other replies are not kept."""
    from shared.relay import optout
    j_ref, job, m_ref, message, provider_id = _load(uow, principal, job_id, "reply")
    if not _token_ok(job, token):
        _refuse(uow, job, provider_id, job_id, "reply", "wrong_token")
        raise JobTokenInvalid("The job token is wrong.")
    if job["status"] not in (SENT, DELIVERED):
        raise Conflict("A reply can only follow a sent message.", code="job_not_sent")
    if is_stop:
        optout.record_stop(uow, message)
    return ReportOutcome(job=job_id, accepted=True, status=job["status"], duplicate=not is_stop,
                         message_km=KM_REPORT["accepted"])
