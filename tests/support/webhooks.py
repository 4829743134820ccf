"""Test wiring for outbound webhooks: endpoints of a tenant, events to deliver, the loopback
receiver (``infra/local/webhook_sim``) and readers of deliveries and attempts.

Everything real: endpoints are created by the endpoints service, events are emitted through a
unit of work (so their ``events/{id}`` documents exist), the receiver is an HTTP server on
127.0.0.1 and the schedule is compressed through ``WebhookSettings``.
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from google.cloud.firestore import FieldFilter

from infra.local.simserver import start_in_thread
from infra.local.webhook_sim import WebhookSimServer
from shared.adapters.kms import LocalKms
from shared.platform.auth import Principal
from shared.platform.clock import rfc3339
from shared.platform.outbox import Event
from shared.platform.uow import run_unit
from shared.webhooks import deliveries, endpoints
from shared.webhooks.deliveries import ATTEMPTS
from shared.webhooks.models import CreateEndpoint
from shared.webhooks.settings import WebhookSettings

FAST = dict(retry_schedule_seconds=[0, 0.5, 0.5, 1, 1], jitter=0.0, request_timeout_seconds=2.0,
            lease_seconds=5.0, defer_seconds=0.5, allow_loopback=True)


def fast_settings(**overrides) -> WebhookSettings:
    return WebhookSettings(**{**FAST, **overrides})


def new_owner() -> str:
    return "usr_" + secrets.token_hex(10)


@dataclasses.dataclass
class Hooks:
    deps: Any
    sim: WebhookSimServer
    owner: str

    @property
    def settings(self) -> WebhookSettings:
        return self.deps.extras["webhooks.settings"]

    def configure(self, **overrides) -> WebhookSettings:
        self.deps.extras["webhooks.settings"] = fast_settings(**overrides)
        return self.settings

    def principal(self, owner: str | None = None, livemode: bool = False) -> Principal:
        owner = owner or self.owner
        return Principal(kind="user", id=owner, tenant_id=owner, livemode=livemode)

    def url(self, path: str) -> str:
        return f"{self.sim.base_url}{path}"

    def endpoint(self, path: str, events=("probe.*",), *, owner: str | None = None,
                 url: str | None = None) -> tuple[str, str]:
        """Create an endpoint through the service; returns (endpoint id, signing secret)."""
        body = CreateEndpoint(url=url or self.url(path), enabled_events=list(events))
        created = run_unit(self.deps, lambda uow: endpoints.create(uow, self.principal(owner), body))
        return created.id, created.secret

    def emit(self, type_: str = "probe.created", *, owner: str | None = None,
             livemode: bool = False, note: str | None = None) -> Event:
        """Commit one event of ``owner`` (its ``events`` document exists after this)."""
        owner = owner or self.owner

        def unit(uow):
            probe = {"id": "prb_" + secrets.token_hex(8), "object": "probe",
                     "created": rfc3339(uow.now), "status": "pending", "delay_seconds": 0,
                     "note": note, "livemode": livemode}
            return uow.emit(type_, tenant=owner, livemode=livemode, data={"object": probe})
        return run_unit(self.deps, unit)

    def delivery(self, event_id: str, endpoint_id: str) -> dict[str, Any] | None:
        snap = deliveries.ref(self.deps.db, deliveries.delivery_id(event_id, endpoint_id)).get()
        return snap.to_dict() if snap.exists else None

    def endpoint_doc(self, endpoint_id: str) -> dict[str, Any]:
        return endpoints.ref(self.deps.db, endpoint_id).get().to_dict()

    def attempts(self, delivery_id: str) -> list[dict[str, Any]]:
        """The attempt documents of a delivery, in the order they started."""
        docs = [s.to_dict() for s in self.deps.db.collection(ATTEMPTS)
                .where(filter=FieldFilter("delivery_id", "==", delivery_id)).stream()]
        return sorted(docs, key=lambda d: (d["run"], d["created_at"], d["n"]))


def start_hooks(deps, *, port: int = 0) -> Hooks:
    deps.extras["platform.kms"] = LocalKms.generate()
    deps.extras["webhooks.settings"] = fast_settings()
    server, _ = start_in_thread(WebhookSimServer(port), "webhook-sim")
    return Hooks(deps, server, new_owner())
