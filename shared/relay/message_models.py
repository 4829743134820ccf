"""API models of client messages and the phone's jobs, and the events of every status change.

A client sees its message (recipient, text, counts, status and its history) but never which
provider or SIM carries it, nor the per-job token. A phone sees its job: recipient, text, the
token (only in the answer to its fetch) and how long it may still send.
"""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, StrictInt, field_validator

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel, StatusEntry, check_metadata
from shared.platform.pagination import CreatedRangeQuery, ListQuery

Priority = Literal["high", "normal", "bulk"]
Status = Literal["queued", "assigned", "sending", "sent", "delivered", "failed", "expired",
                 "canceled"]
STATUSES = ("queued", "assigned", "sending", "sent", "delivered", "failed", "expired", "canceled")


class CreateMessage(RequestModel):
    to: str = Field(..., min_length=3, max_length=32,
                    description="The recipient, E.164 (+855…); a Cambodian mobile number.")
    text: str = Field(..., max_length=2000, description="GSM-7 or UCS-2 (Khmer): at most 10 "
                      "parts (1530 GSM-7 septets or 670 UCS-2 units).")
    priority: Priority = "normal"
    send_at: StrictInt | None = Field(None, ge=0, le=10**11, description="Unix seconds: "
                                      "send no earlier than this (up to 29 days ahead).")
    expires_at: StrictInt | None = Field(None, ge=0, le=10**11, description="Unix seconds: "
                                         "not delivered by then, the message expires (default "
                                         "24 h after it may be sent).")
    client_reference: str | None = Field(None, min_length=1, max_length=128,
                                         pattern=r"^[\x21-\x7e][\x20-\x7e]*$")
    callback_url: str | None = Field(None, max_length=2048, description="Receives every status "
                                     "change, signed like webhooks with your callback secret.")
    metadata: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=False)


class MessageListQuery(CreatedRangeQuery):
    status: Status | None = None
    to: str | None = Field(None, max_length=32, description="Recipient, E.164.")
    client_reference: str | None = Field(None, max_length=128)


class Message(ResourceModel):
    id: str
    object: Literal["message"] = "message"
    livemode: bool
    to: str
    carrier: str = Field(..., description="The recipient's network: smart, metfone, cellcard, other.")
    text: str
    encoding: Literal["GSM-7", "UCS-2"]
    characters: int
    parts: int
    priority: Priority
    status: Status
    status_history: list[StatusEntry]
    attempts: int = Field(..., description="SIMs this message was handed to so far.")
    client_reference: str | None = None
    callback_url: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created: int
    updated: int
    send_at: int | None = None
    expires_at: int
    sent_at: int | None = None
    delivered_at: int | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    carrier_error: str | None = None


class OptOutRequest(RequestModel):
    to: str = Field(..., min_length=3, max_length=32, description="The number that opted out.")
    source: Literal["stop_reply", "client", "support"] = "client"


class OptOut(ResourceModel):
    id: str
    object: Literal["sms_opt_out"] = "sms_opt_out"
    to: str
    livemode: bool
    source: str
    created: int


class DeletedOptOut(ResourceModel):
    id: str
    object: Literal["sms_opt_out"] = "sms_opt_out"
    deleted: bool = True


class CallbackSecret(ResourceModel):
    object: Literal["sms_callback_secret"] = "sms_callback_secret"
    livemode: bool
    secret: str | None = Field(None, description="Shown once: verify callbacks with it "
                               "(Standard Webhooks).")
    previous_expires_at: int | None = None
    created: int


# --- the phone's side ------------------------------------------------------------------------
JobStatus = Literal["assigned", "sending", "sent", "delivered", "failed", "timeout", "revoked",
                    "canceled"]


class Job(ResourceModel):
    id: str
    object: Literal["relay_job"] = "relay_job"
    message: str = Field(..., description="The message id (what the phone reports on).")
    sim: str
    to: str
    text: str
    parts: int
    encoding: str
    status: JobStatus
    token: str | None = Field(None, description="Only in the answer to a fetch: return it in "
                              "every report on this job.")
    send_before: int | None = Field(None, description="Unix seconds: do not send after this; "
                                    "the job goes to another phone.")
    lease_seconds: int | None = None
    assigned: int
    sent_at: int | None = None
    delivered_at: int | None = None
    status_km: str | None = None


class JobSummary(ResourceModel):
    """A job in the phone's list: small, no text (poor connections)."""
    id: str
    object: Literal["relay_job"] = "relay_job"
    message: str
    sim: str
    status: JobStatus
    assigned: int
    sent_at: int | None = None
    delivered_at: int | None = None


class JobListQuery(ListQuery):
    status: JobStatus | None = None


class JobReport(RequestModel):
    token: str = Field(..., min_length=8, max_length=128)
    carrier_error: str | None = Field(None, max_length=120, pattern=r"^[\x20-\x7e]*$",
                                      description="The carrier's or Android's error (failed).")
    at: StrictInt | None = Field(None, ge=0, le=10**11, description="When it happened on the "
                                 "phone (unix seconds); informative only.")


class ReportOutcome(ResourceModel):
    object: Literal["relay_report"] = "relay_report"
    job: str
    accepted: bool
    status: str = Field(..., description="The job's status after the report.")
    duplicate: bool = False
    message_km: str


MESSAGE_EVENTS = {status: declare(f"message.{status}", ObjectPayload[Message],
                                  description=f"An SMS relay message became {status}.")
                  for status in STATUSES}
