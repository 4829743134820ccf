"""The event catalogue: every event type Payloom emits, declared once with its payload schema.

Capabilities declare their types next to their models (``declare("probe.created",
ObjectPayload[Probe])``). ``UnitOfWork.emit`` checks each event against its declaration in tests
(an undeclared type or a payload that does not match is a bug), and the OpenAPI document
publishes public types in its ``webhooks`` section so receivers can generate their models.
Envelopes stay thin and stable: ``{id, object, type, created, livemode, data: {object}}``, and
under ``MAX_PAYLOAD_BYTES`` (Standard Webhooks' 20 kB): an event carries the object as the API
returns it, never a list that grows (checked with the payload in tests).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T")
DEFAULT_VERSION = "2026-12-01"
MAX_PAYLOAD_BYTES = 20_000   # the whole delivered envelope; ``data`` must leave room for it
ENVELOPE_ALLOWANCE = 400     # id, object, type, created, livemode and JSON punctuation


class ObjectPayload(BaseModel, Generic[T]):
    """``data`` of most events: the object as the API returns it, after the change."""
    object: T


@dataclasses.dataclass(frozen=True)
class EventType:
    name: str
    payload: type[BaseModel]
    description: str
    version: str = DEFAULT_VERSION
    public: bool = True   # delivered to merchants' webhooks and listed by the events API


CATALOG: dict[str, EventType] = {}
REQUIRE_DECLARED = True  # an undeclared event type is a bug (checked in tests)

# The modules that declare event types. A function that only handles some capabilities (the
# webhooks function validates subscriptions to every type, fan-out delivers every type) calls
# ``load_all`` instead of importing every capability's service code. A test scans ``shared/``
# and fails when a module with a ``declare(`` is missing here.
DECLARING_MODULES = (
    "shared.chain.events",
    "shared.custody.sweep_models",
    "shared.custody.withdrawal_models",
    "shared.identity.resources",
    "shared.invoices.models",
    "shared.ledger.resources",
    "shared.merchants.models",
    "shared.notify.outbound",
    "shared.payments.crypto_events",
    "shared.payments.disputes",
    "shared.payments.models",
    "shared.probes.models",
    "shared.refunds.models",
    "shared.relay.message_models",
    "shared.relay.supply_models",
    "shared.reports.models",
    "shared.wallet.models",
    "shared.webhooks.delivery_models",
    "shared.webhooks.models",
)


class UndeclaredEvent(Exception):
    """Emitted an event whose type or payload the catalogue does not declare."""


class OversizedEvent(UndeclaredEvent):
    """An event whose payload would make a webhook delivery larger than 20 kB."""


def declare(name: str, payload: type[BaseModel], *, description: str = "",
            version: str = DEFAULT_VERSION, public: bool = True) -> EventType:
    existing = CATALOG.get(name)
    if existing is not None and existing.payload is not payload:
        raise ValueError(f"event type {name!r} is declared twice with different payloads")
    event_type = EventType(name, payload, description or name, version, public)
    CATALOG[name] = event_type
    return event_type


def load_all() -> dict[str, EventType]:
    """Every declared event type (imports the declaring modules once; cheap after the first)."""
    import importlib
    for module in DECLARING_MODULES:
        importlib.import_module(module)
    return CATALOG


def is_public(name: str) -> bool:
    """Whether events of this type reach merchants (webhooks, the events API). A type this
    process has not imported yet loads the whole catalogue once."""
    declared = CATALOG.get(name) or load_all().get(name)
    return declared is not None and declared.public


def check(name: str, data: dict[str, Any]) -> None:
    event_type = CATALOG.get(name)
    if event_type is None:
        if not REQUIRE_DECLARED:
            return
        raise UndeclaredEvent(f"event type {name!r} is not declared in the catalogue")
    try:
        event_type.payload.model_validate(data)
    except ValidationError as exc:
        raise UndeclaredEvent(f"{name} payload does not match {event_type.payload.__name__}: "
                              f"{exc.errors()[:3]}") from None
    size = payload_size(data)
    if size > MAX_PAYLOAD_BYTES - ENVELOPE_ALLOWANCE:
        raise OversizedEvent(f"{name} payload is {size} bytes; events stay under "
                             f"{MAX_PAYLOAD_BYTES} bytes with their envelope")


def payload_size(data: dict[str, Any]) -> int:
    """Bytes of ``data`` as a delivery serialises it (compact JSON, UTF-8)."""
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def openapi_webhooks(schema_for) -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks`` section: one POST per public event type."""
    hooks: dict[str, Any] = {}
    for name in sorted(load_all()):  # every capability's types, whatever this process imported
        et = CATALOG[name]
        if not et.public:
            continue
        hooks[name] = {"post": {
            "summary": et.description, "operationId": f"event_{name.replace('.', '_')}",
            "x-event-version": et.version,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "object", "type", "created", "data"],
                "properties": {"id": {"type": "string"}, "object": {"const": "event"},
                               "type": {"const": name}, "created": {"type": "string", "format": "date-time"},
                               "livemode": {"type": "boolean"}, "data": schema_for(et.payload)}}}}},
            "responses": {"2XX": {"description": "Received; any other status is retried."}}}}
    return hooks
