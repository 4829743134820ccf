"""API models of webhook endpoints and the events that announce their changes.

Requests forbid unknown fields and bound every size (the limits are Stripe's), so bad input is a
400 naming the parameter. The resource never carries a signing secret: only the answers of
create and rotate (``WebhookEndpointWithSecret``) do, once.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import RequestModel, ResourceModel, check_metadata
from shared.platform.pagination import ListQuery

MAX_EVENTS = 100
MAX_DESCRIPTION = 500

EventPattern = Field(..., min_length=1, max_length=MAX_EVENTS,
                     description="Event types to receive: exact names (payment_intent.succeeded), "
                                 "a family (payment_intent.*) or every public type (*).")


def _check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for item in value:
        if not item or len(item) > 100:
            raise ValueError("event types have 1 to 100 characters")
    return list(dict.fromkeys(value))


class CreateEndpoint(RequestModel):
    url: str = Field(..., min_length=1, max_length=4096,
                     description="Where to POST events: https (plain http only to loopback in test mode).")
    enabled_events: list[str] = EventPattern
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    metadata: dict[str, str] = Field(default_factory=dict,
                                     description="Up to 50 keys (40 characters) with values up to 500.")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=False)

    @field_validator("enabled_events")
    @classmethod
    def _events(cls, value):
        return _check_events(value)


class UpdateEndpoint(RequestModel):
    """Every field optional. ``metadata`` merges into the stored one; a key sent with an empty
    value is removed (Stripe's rule). Use the enable/disable routes to change the status."""
    url: str | None = Field(None, min_length=1, max_length=4096)
    enabled_events: list[str] | None = Field(None, min_length=1, max_length=MAX_EVENTS)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    metadata: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value):
        return check_metadata(value, allow_empty_values=True)

    @field_validator("enabled_events")
    @classmethod
    def _events(cls, value):
        return _check_events(value)


class RotateSecret(RequestModel):
    expires_in_seconds: int | None = Field(
        None, ge=0, description="How long the current secret keeps signing beside the new one; "
                                "default 24 hours, 0 ends it now, at most 7 days.")


class EndpointListQuery(ListQuery):
    """Cursor pagination over the caller's endpoints (its own mode), newest first."""


class WebhookEndpoint(ResourceModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    enabled_events: list[str]
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    status: Literal["enabled", "disabled"]
    disabled_reason: Literal["manual", "gone", "failing"] | None = Field(
        None, description="manual: disabled through the API; gone: the receiver answered 410; "
                          "failing: every delivery failed for 5 days.")
    livemode: bool = False
    created: str
    updated: str | None = None
    failing_since: str | None = Field(None, description="Start of the current run of failures.")
    last_success_at: str | None = None
    secret_rotated_at: str | None = Field(None, description="When the current secret was issued "
                                                            "by a rotation (null if never rotated).")
    previous_secret_expires_at: str | None = Field(
        None, description="Until when the previous secret also signs deliveries.")


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint as created or rotated: the only answer that shows its signing secret."""
    SHOWN_ONCE: ClassVar[tuple[str, ...]] = ("secret",)  # the routes' secret_fields
    secret: str | None = Field(..., description="whsec_…, shown once. Never stored in clear: null "
                                                "when an Idempotency-Key replays this answer.")


class DeletedWebhookEndpoint(WebhookEndpoint):
    deleted: Literal[True] = True


EndpointPayload = ObjectPayload[WebhookEndpoint]
ENDPOINT_CREATED = declare("webhook_endpoint.created", EndpointPayload,
                           description="A webhook endpoint was created.")
ENDPOINT_UPDATED = declare("webhook_endpoint.updated", EndpointPayload,
                           description="A webhook endpoint's URL, events, description, metadata "
                                       "or signing secret changed.")
ENDPOINT_DELETED = declare("webhook_endpoint.deleted", EndpointPayload,
                           description="A webhook endpoint was deleted.")
ENDPOINT_ENABLED = declare("webhook_endpoint.enabled", EndpointPayload,
                           description="A disabled webhook endpoint was enabled again.")
ENDPOINT_DISABLED = declare("webhook_endpoint.disabled", EndpointPayload,
                            description="A webhook endpoint was disabled: by its owner, because "
                                        "the receiver answered 410, or after 5 days of failures.")
