"""Test helpers for the relay supply side: valid Cambodian numbers per carrier, and ``SupplyKit``,
which onboards providers through the real ``relay`` function (users, the SIM's texted code
read from the SMS simulator, devices, heartbeats). R2's tests may use it too."""
from __future__ import annotations

import dataclasses
import itertools
import random
import re
import secrets
from typing import Any

from shared.identity.factors.phone import parse_phone
from shared.relay.carriers import relay_carrier
from tests.support.identity import auth_headers, create_user_with_token

CODE_RE = re.compile(r"\b(\d{6})\b")
PREFIXES = {"smart": ["10", "15", "16", "69", "70", "81", "86", "93", "98"],
            "metfone": ["97", "88", "71", "60", "66", "67", "68", "90"],
            "cellcard": ["12", "11", "14", "17", "61", "77", "78", "85", "89", "92", "95", "99"],
            "other": ["18", "38"]}
_used: set[str] = set()
_ip = itertools.count(1)


def fresh_phone(carrier: str = "smart", rng: random.Random | None = None) -> str:
    """A valid, unused Cambodian mobile number (E.164) on ``carrier``'s network."""
    rng = rng or random.Random(secrets.randbits(32))
    for _ in range(500):
        prefix = rng.choice(PREFIXES[carrier])
        digits = rng.choice((6, 7))
        raw = "+855" + prefix + str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(digits - 1))
        try:
            number = parse_phone(raw)
        except Exception:  # noqa: BLE001 - not in the plan: try another
            continue
        if relay_carrier(number) == carrier and number.e164 not in _used:
            _used.add(number.e164)
            return number.e164
    raise RuntimeError(f"no valid number found for {carrier}")


def fresh_ip() -> str:
    n = next(_ip)
    return f"10.77.{(n >> 8) & 255}.{n & 255}"


def err(resp) -> dict[str, Any]:
    body = resp.get_json()
    assert body and "error" in body, resp.get_data(as_text=True)
    return body["error"]


@dataclasses.dataclass
class Phone:
    user_id: str
    token: str
    provider_id: str
    device_id: str
    sims: list[str]
    numbers: list[str]

    def headers(self, **extra) -> dict[str, str]:
        return auth_headers(self.token, **extra)


class SupplyKit:
    """Onboard providers through the ``relay`` function's test client."""

    def __init__(self, deps, client, sms_server):
        self.deps, self.client, self.sms = deps, client, sms_server

    def code_for(self, e164: str) -> str:
        from tests.support.identity import deliver_outbound
        deliver_outbound(self.deps)
        messages = self.sms.inbox(e164)
        assert messages, f"no SMS to {e164}"
        return CODE_RE.search(messages[-1]["body"]).group(1)

    def user(self) -> tuple[str, dict[str, str]]:
        uid, token = create_user_with_token(self.deps)
        return uid, auth_headers(token)

    def provider(self, headers) -> str:
        r = self.client.post("/v1/relay/providers", json={}, headers=headers)
        assert r.status_code in (200, 201), r.get_data(as_text=True)
        return r.get_json()["id"]

    def device(self, headers, fingerprint: str | None = None, token: str | None = None) -> str:
        r = self.client.post("/v1/relay/devices", headers=headers, json={
            "fingerprint": fingerprint or "fp-" + secrets.token_hex(8),
            "push_token": token or "fleet-" + secrets.token_hex(12), "model": "Pixel"})
        assert r.status_code in (200, 201), r.get_data(as_text=True)
        return r.get_json()["id"]

    def add_sim(self, headers, device_id: str, phone: str, **settings) -> dict[str, Any]:
        ip = fresh_ip()
        h = {**headers, "X-Forwarded-For": ip}
        r = self.client.post("/v1/relay/sims", json={"phone": phone, "device": device_id}, headers=h)
        assert r.status_code == 202, r.get_data(as_text=True)
        r = self.client.post("/v1/relay/sims/verify", headers=h, json={
            "phone": phone, "code": self.code_for(phone), "device": device_id, **settings})
        assert r.status_code in (200, 201), r.get_data(as_text=True)
        return r.get_json()

    def heartbeat(self, headers, device_id: str, **body) -> dict[str, Any]:
        body = {"battery": 80, "charging": True, "signal": 4, **body}
        r = self.client.post(f"/v1/relay/devices/{device_id}/heartbeat", json=body, headers=headers)
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()

    def phone(self, carriers=("smart",), *, online: bool = True, **settings) -> Phone:
        """A provider with one device holding one SIM per carrier given, heartbeating."""
        uid, token = create_user_with_token(self.deps)
        headers = auth_headers(token)
        prv = self.provider(headers)
        dev = self.device(headers)
        numbers = [fresh_phone(c) for c in carriers]
        sims = [self.add_sim(headers, dev, n, **settings)["id"] for n in numbers]
        if online:
            self.heartbeat(headers, dev)
        return Phone(uid, token, prv, dev, sims, numbers)


def seed_sim(deps, *, carrier: str = "smart", provider_id: str | None = None, livemode: bool = False,
             online: bool = True, caps: dict[str, int] | None = None, active_hours=None,
             now=None, **fields) -> str:
    """An availability document written directly (matching tests that need many SIMs fast)."""
    import datetime as dt

    from shared.platform.ids import new_id
    from shared.relay import availability
    from shared.relay.supply_settings import supply_settings

    s = supply_settings(deps)
    now = now or deps.clock.now()
    sim_id = new_id("sim")
    doc = availability.new_state(
        sim_id=sim_id, provider_id=provider_id or new_id("prv"), device_id=new_id("dev"),
        carrier=carrier, livemode=livemode,
        caps=caps or {"per_minute": s.default_per_minute, "per_hour": s.default_per_hour,
                      "per_day": s.default_per_day, "in_flight": s.in_flight_per_sim},
        active_hours=active_hours, now=now, push_ok=True,
        online_until=now + dt.timedelta(seconds=s.offline_after_seconds) if online else None)
    doc.update(fields)
    availability.evaluate(doc, now, s)
    availability.availability_ref(deps.db, sim_id).set(doc)
    return sim_id
