"""Test helpers for the relay demand side and dispatch (R2): clients with ``sms`` API keys, the
``messages`` function's client, compressed dispatch settings, the loopback FCM wiring, and a
small ``Handset`` that plays one provider phone through the real ``relay`` function (reads its
pushes from the FCM simulator, fetches and reports jobs).

Everything real: API keys from the identity service, providers onboarded by ``SupplyKit``
through the relay function, pushes through firebase-admin to the FCM simulator.
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pytest

from infra.local import fcm_wiring
from shared.adapters.fcm import FcmPushSender
from shared.platform.uow import run_unit
from shared.relay import lifecycle, providers
from shared.relay.dispatch_settings import SETTINGS_KEY, DispatchSettings
from tests.support.identity import auth_headers

FCM_APP = "relay-dispatch-tests"
# Deadlines compressed for tests that wait on real Cloud Tasks; unit-level tests advance a
# frozen clock instead.
FAST = dict(ack_deadline_seconds=3, send_deadline_seconds=4, send_lease_seconds=3,
            report_deadline_seconds=6, backoff_base_seconds=0.2, backoff_cap_seconds=1,
            no_sim_retry_seconds=0.5, no_sim_retry_cap_seconds=1, push_retry_seconds=[0.3, 0.6],
            callback_retry_seconds=[0.3, 0.6, 1], sweep_grace_seconds=0)


def use_settings(deps, **overrides) -> DispatchSettings:
    settings = DispatchSettings(**overrides)
    deps.extras[SETTINGS_KEY] = settings
    return settings


@dataclasses.dataclass
class Client:
    owner: str
    secret: str
    livemode: bool = False

    def headers(self, **extra) -> dict[str, str]:
        return auth_headers(self.secret, **extra)


def client_key(deps, *, owner: str | None = None, scopes=("sms:read", "sms:write"),
               livemode: bool = False) -> Client:
    """An API key of a client (a user id or a merchant id owns it: the tenant)."""
    from shared.identity.apikeys import service
    owner = owner or "usr_" + secrets.token_hex(10)
    key = run_unit(deps, lambda uow: service.create_api_key(
        uow, owner_id=owner, name="sms client", scopes=list(scopes), livemode=livemode))
    return Client(owner, key.secret, livemode)


def wire_fcm(deps, fcm_server) -> FcmPushSender:
    """Pushes go to the FCM simulator through firebase-admin (``deps.extras["notify.push"]``)."""
    app = fcm_wiring.install_fcm_loopback(fcm_server.base_url, "demo-relay", app_name=FCM_APP)
    sender = FcmPushSender(app)
    deps.extras["notify.push"] = sender
    return sender


def message_doc(deps, message_id: str) -> dict[str, Any]:
    return lifecycle.message_ref(deps.db, message_id).get().to_dict()


def job_doc(deps, job_id: str) -> dict[str, Any] | None:
    snap = lifecycle.job_ref(deps.db, job_id).get()
    return snap.to_dict() if snap.exists else None


def events_of(deps, message_id: str) -> list[str]:
    """The types of the events about one message, in commit order."""
    snaps = [s for s in deps.db.collection("events").stream()
             if ((s.get("data") or {}).get("object") or {}).get("id") == message_id]
    snaps.sort(key=lambda s: s.create_time)
    return [s.get("type") for s in snaps]


class Handset:
    """One provider's phone (from ``SupplyKit.phone``) driven through the relay function."""

    def __init__(self, deps, relay_client, fcm_server, phone):
        self.deps, self.client, self.fcm, self.phone = deps, relay_client, fcm_server, phone
        self.push_token = providers.device_ref(deps.db, phone.device_id).get().get("push_token")
        self.seen: set[str] = set()

    def pushed_jobs(self) -> list[str]:
        return [m["message"]["data"]["job_id"] for m in self.fcm.inbox(self.push_token)]

    def new_jobs(self) -> list[str]:
        fresh = [j for j in self.pushed_jobs() if j not in self.seen]
        self.seen.update(fresh)
        return fresh

    def fetch(self, job_id: str, **headers):
        return self.client.get(f"/v1/relay/jobs/{job_id}", headers=self.phone.headers(**headers))

    def report(self, job_id: str, kind: str, token: str, **body):
        return self.client.post(f"/v1/relay/jobs/{job_id}/{kind}", json={"token": token, **body},
                                headers=self.phone.headers())

    def deliver(self, job_id: str) -> dict[str, Any]:
        """Fetch, then report sent and delivered; returns the fetched job."""
        r = self.fetch(job_id)
        assert r.status_code == 200, r.get_data(as_text=True)
        job = r.get_json()
        for kind in ("sent", "delivered"):
            rr = self.report(job_id, kind, job["token"])
            assert rr.status_code == 200, rr.get_data(as_text=True)
        return job


@pytest.fixture
def messages_client(function_client, deps):
    return function_client("messages")


@dataclasses.dataclass
class Env:
    """A frozen-clock dispatch world: real functions and emulators, time moved by the test."""
    deps: Any
    kit: Any
    relay: Any
    messages: Any
    fcm: Any
    client: Client
    clock: Any

    def handset(self, carriers=("smart",), **settings) -> Handset:
        return Handset(self.deps, self.relay, self.fcm, self.kit.phone(carriers, **settings))

    def send(self, to: str | None = None, **body) -> dict[str, Any]:
        from tests.relay.supply_kit import fresh_phone
        r = self.messages.post("/v1/messages", headers=self.client.headers(),
                               json={"to": to or fresh_phone("smart"), "text": "Code 123456", **body})
        assert r.status_code == 202, r.get_data(as_text=True)
        return r.get_json()

    def assign(self, message_id: str) -> str:
        from shared.relay import dispatch
        return dispatch.assign(self.deps, message_id)

    def deadline(self, message_id: str, step: str) -> str:
        from shared.relay import deadlines
        return deadlines.on_deadline(self.deps, message_id, step,
                                     job_id=message_doc(self.deps, message_id).get("job"))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def msg(self, message_id: str) -> dict[str, Any]:
        return message_doc(self.deps, message_id)

    def get(self, message_id: str) -> dict[str, Any]:
        return self.messages.get(f"/v1/messages/{message_id}", headers=self.client.headers()).get_json()


@pytest.fixture
def env(deps, kit, relay_client, function_client, fcm_server):
    from shared.platform.clock import FrozenClock
    clock = FrozenClock(deps.clock.now())
    deps.clock = clock
    use_settings(deps)
    wire_fcm(deps, fcm_server)
    return Env(deps, kit, relay_client, function_client("messages"), fcm_server,
               client_key(deps), clock)
