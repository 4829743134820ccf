"""Webhook endpoints, their deliveries and attempts, and events (``/v1/webhook_endpoints``,
``/v1/events``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from payloom.client import quote_id, split_options
from payloom.objects import ListObject, PayloomObject, register
from payloom.resources._base import (Createable, Deletable, Listable, Retrievable, Updateable,
                                     action, hybrid, sub_list)


@register
class WebhookEndpoint(Createable, Retrievable, Listable, Updateable, Deletable):
    """Where events are POSTed, signed with Standard Webhooks. ``secret`` (``whsec_…``) is on
    the object ``create`` and ``rotate_secret`` return, and nowhere else: keep it then."""

    OBJECT_NAME = "webhook_endpoint"
    PATH = "/v1/webhook_endpoints"

    id: str
    url: str
    enabled_events: List[str]
    status: str
    disabled_reason: Optional[str]
    livemode: bool
    secret: Optional[str]

    enable = action("POST", "/enable", doc="Enable a disabled endpoint.")
    disable = action("POST", "/disable", doc="Stop delivering to it until enabled.")
    rotate_secret = action(
        "POST", "/rotate_secret",
        doc="A new signing secret (on the answer only); the old one keeps signing alongside "
            "for ``expires_in_seconds`` (both signatures are sent meanwhile).")
    send_test = action("POST", "/test", refresh=False,
                       doc="Deliver a ``webhook_endpoint.test`` event to this endpoint only.")
    resend = action("POST", "/resend", refresh=False,
                    doc="Send one event again (``event='evt_…'``), with the same webhook-id.")
    recover = action("POST", "/recover", refresh=False,
                     doc="Resend every failed delivery created since ``since`` (until "
                         "``until``), Unix seconds.")
    list_attempts = sub_list("/attempts", doc="Every attempt made to this endpoint.")
    list_deliveries = sub_list("/deliveries", doc="The endpoint's deliveries (``status``, "
                                                  "``event`` filters).")

    @hybrid
    def retrieve_delivery(cls, id: str, params: Dict[str, Any]):
        """One delivery of the endpoint: ``retrieve_delivery(endpoint_id, delivery_id=...)``."""
        delivery = params.pop("delivery_id")
        return "GET", f"{cls.instance_path(id)}/deliveries/{quote_id(delivery)}", params

    @classmethod
    def list_event_attempts(cls, event: str, **params: Any) -> ListObject:
        """Every attempt to deliver one event, across your endpoints."""
        params, options = split_options(params)
        params["event"] = event
        return cls._list(f"{cls.PATH}/attempts", params, options)


@register
class WebhookDelivery(PayloomObject):
    OBJECT_NAME = "webhook_delivery"
    id: str
    endpoint: str
    event: str
    status: str
    attempt_count: int


@register
class WebhookAttempt(PayloomObject):
    OBJECT_NAME = "webhook_attempt"
    id: str
    outcome: str
    status_code: Optional[int]


@register
class WebhookRecovery(PayloomObject):
    OBJECT_NAME = "webhook_recovery"
    resent: int
    has_more: bool


@register
class Event(Retrievable, Listable):
    """A domain event (``payment_intent.succeeded``…): ``data.object`` is the object as it
    was then. Webhooks carry the same shape; ``payloom.Webhook.construct_event`` verifies one."""

    OBJECT_NAME = "event"
    PATH = "/v1/events"

    id: str
    type: str
    created: str
    livemode: bool
    data: PayloomObject
