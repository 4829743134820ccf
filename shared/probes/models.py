from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel


class CreateProbe(RequestModel):
    delay_seconds: int = Field(0, ge=0, le=3600, description="How long the task hop waits.")
    note: str | None = Field(None, max_length=500)


class Probe(ResourceModel):
    id: str
    object: Literal["probe"] = "probe"
    created: str
    status: Literal["pending", "scheduled", "completed"]
    delay_seconds: int
    note: str | None = None
    event_received: str | None = Field(None, description="When the consumer saw probe.created.")
    due: str | None = Field(None, description="When the task was scheduled to run.")
    completed: str | None = Field(None, description="When the task handler completed the probe.")
    livemode: bool = False


PROBE_CREATED = declare("probe.created", ObjectPayload[Probe],
                        description="A probe was created; its consumer schedules the task hop.")
PROBE_COMPLETED = declare("probe.completed", ObjectPayload[Probe],
                          description="A probe's task hop ran: every trigger kind works.")


class ProbeDue(RequestModel):
    probe_id: str = Field(..., max_length=64)


class Ping(ResourceModel):
    object: Literal["ping"] = "ping"
    ok: bool = True
