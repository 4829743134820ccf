"""The provider phone's job routes (``/v1/relay/jobs``): list, fetch (= acknowledge), report.

The phone calls them signed in as its provider. Answers are small JSON; with
``Accept-Language: km`` errors carry ``message_km`` (the router's ``khmer.localize_error``), and jobs and
report answers always carry their short Khmer status. A job that is not the caller's is a 404
exactly like one that does not exist.
"""
from __future__ import annotations

from pydantic import Field

from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import Context
from shared.relay import jobs, optout
from shared.relay.khmer import KM
from shared.relay.message_models import Job, JobListQuery, JobReport, JobSummary, ReportOutcome
from shared.relay.routers import relay

USER = ("user",)
REPORTS = Limit("relay.jobs.report", 240, 60)
KM.update({
    "job_not_found": "រកមិនឃើញការងារនេះទេ។",
    "job_gone": "ការងារនេះត្រូវបានផ្ទេរទៅទូរសព្ទផ្សេង។ កុំផ្ញើ។",
    "job_token_invalid": "សញ្ញាសម្គាល់ការងារមិនត្រឹមត្រូវ។",
    "job_fetch_limit": "បានទាញយកការងារនេះច្រើនដងពេក។",
})


class JobReply(RequestModel):
    token: str = Field(..., min_length=8, max_length=128)
    text: str = Field(..., min_length=1, max_length=480, description="The reply the SIM received "
                      "from the recipient (a STOP reply opts them out of the client's messages).")


@relay.get("/jobs", query=JobListQuery, response=ListResponse[JobSummary], auth=USER)
def list_my_jobs(ctx: Context):
    """The caller's jobs, newest first (filter by status)."""
    return jobs.list_jobs(ctx.deps, ctx.principal, ctx.query)


@relay.get("/jobs/{job_id}", response=Job, auth=USER, rate_limits=[(REPORTS, "principal")])
def fetch_job(ctx: Context, job_id: str):
    """Fetch the pushed job (this acknowledges it): recipient, text and the job token."""
    return jobs.fetch(ctx.uow, ctx.principal, job_id)


def _report(kind: str):
    def handler(ctx: Context, job_id: str):
        return jobs.report(ctx.uow, ctx.principal, job_id, kind, ctx.body)
    handler.__name__ = f"report_{kind}"
    handler.__doc__ = {"sent": "Report the SMS sent by the phone.",
                       "delivered": "Report the carrier's delivery report.",
                       "failed": "Report that the SMS could not be sent or was not delivered "
                                 "(with the carrier's error)."}[kind]
    return handler


for _kind in ("sent", "delivered", "failed"):
    relay.post(f"/jobs/{{job_id}}/{_kind}", body=JobReport, response=ReportOutcome, auth=USER,
               idempotent=False, rate_limits=[(REPORTS, "principal")])(_report(_kind))


@relay.post("/jobs/{job_id}/reply", body=JobReply, response=ReportOutcome, auth=USER,
            idempotent=False, rate_limits=[(REPORTS, "principal")])
def report_reply(ctx: Context, job_id: str):
    """A reply the SIM received to this job's SMS; STOP opts the recipient out."""
    return jobs.reply(ctx.uow, ctx.principal, job_id, ctx.body.token, ctx.body.text,
                      is_stop=optout.is_stop(ctx.body.text))
