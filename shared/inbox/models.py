"""Request and response bodies of the inbox's routes."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.platform.models import DocId, RequestModel, ResourceModel

# An inbox document's life: received → processed | ignored | retrying → … → dead_lettered.
RECEIVED, RETRYING = "received", "retrying"
PROCESSED, IGNORED, DEAD_LETTERED = "processed", "ignored", "dead_lettered"
FINAL = (PROCESSED, IGNORED, DEAD_LETTERED)

ProcessOutcomeName = Literal["missing", "stale", "already_processed", "already_ignored",
                             "already_dead_lettered", "processed", "ignored", "retrying",
                             "dead_lettered"]


class ProviderEvent(BaseModel):
    """Any JSON object: the route verifies the provider's signature over the raw bytes, so this
    model only lets the router accept the body (its fields are the provider's)."""
    model_config = ConfigDict(extra="allow")


class InboundReceipt(BaseModel):
    """Our answer to the provider: any 2xx stops its retries; a duplicate is acknowledged too."""
    received: bool = True
    duplicate: bool = Field(description="The event id was already in the inbox; nothing was "
                                        "stored or scheduled again.")


class ProcessDue(RequestModel):
    key: DocId = Field(max_length=300)
    attempt: int = Field(ge=1, le=1000)


class ProcessOutcome(ResourceModel):
    object: Literal["inbound_process"] = "inbound_process"
    key: str
    attempt: int
    outcome: ProcessOutcomeName


class SweepOutcome(ResourceModel):
    object: Literal["inbound_sweep"] = "inbound_sweep"
    rescheduled: int
