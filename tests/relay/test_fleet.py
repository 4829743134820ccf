"""The phone-fleet simulator: onboarding through the public API, pushes through the FCM
simulator's forwards, heartbeats, and each behaviour's calls (against a recording job API, so
these tests do not depend on dispatch; dispatch's end-to-end tests drive the real routes)."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from infra.local import fcm_wiring
from infra.local.phone_fleet import JobApi, PhoneFleet, Timing
from shared.adapters.fcm import FcmPushSender
from shared.relay import availability
from shared.relay.availability import candidates

FAST = Timing(scale=0.05, heartbeat_seconds=4)   # heartbeats every 0.2 s


class RecordingJobs(JobApi):
    """A stand-in for dispatch's phone routes: every fetch succeeds, every report is kept."""

    def __init__(self):
        self.calls: list[tuple[float, int, str, str, str | None, str | None]] = []
        self.lock = threading.Lock()

    def fetch(self, phone, job_id):
        with self.lock:
            self.calls.append((time.monotonic(), phone.index, job_id, "fetch", None, None))
        return 200, {"id": job_id, "token": f"jt_{job_id}_token"}

    def report(self, phone, job_id, kind, token, carrier_error=None):
        with self.lock:
            self.calls.append((time.monotonic(), phone.index, job_id, kind, token, carrier_error))
        return 200, {"job": job_id, "accepted": True}

    def of(self, job_id):
        with self.lock:
            return [c for c in self.calls if c[2] == job_id]


@pytest.fixture
def code_source(deps, sms_server):
    """The texted codes, as the phones' owners would read them (notify delivers first)."""
    from tests.support.identity import deliver_outbound
    lock, seen = threading.Lock(), {}

    def read(e164: str, _seen: int) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                deliver_outbound(deps)
                messages = sms_server.inbox(e164)
                if len(messages) > seen.get(e164, 0):
                    seen[e164] = len(messages)
                    import re
                    return re.search(r"\b(\d{6})\b", messages[-1]["body"]).group(1)
            time.sleep(0.05)
        raise AssertionError(f"no code for {e164}")
    return read


@pytest.fixture
def pusher(fcm_server):
    app = fcm_wiring.install_fcm_loopback(fcm_server.base_url, "demo-fleet", app_name="relay-fleet-tests")
    return FcmPushSender(app)


@pytest.fixture
def make_fleet(relay_wiring, inprocess_gateway, fcm_server, code_source):
    fleets = []

    def make(**kw) -> PhoneFleet:
        kw.setdefault("timing", FAST)
        kw.setdefault("seed", 7)
        fleet = PhoneFleet(inprocess_gateway, fcm=fcm_server, code_source=code_source, **kw)
        fleets.append(fleet)
        return fleet.start()
    yield make
    for fleet in fleets:
        fleet.stop()


def test_the_fleet_onboards_providers_through_the_public_api(deps, make_fleet, supply_settings):
    fleet = make_fleet(phones=3, carriers=("smart", "metfone", "cellcard"), job_api=RecordingJobs())
    assert all(p.provider_id and p.device_id and len(p.sims) == 1 for p in fleet.phones)
    now = deps.clock.now()
    for phone in fleet.phones:
        doc = availability.availability_ref(deps.db, phone.sims[0]).get().to_dict()
        assert doc["eligible"] is True and doc["carrier"] == phone.carriers[0]
        assert doc["provider_id"] == phone.provider_id and doc["online_until"] > now
    for carrier in ("smart", "metfone", "cellcard"):
        got = candidates(deps.db, carrier=carrier, livemode=False, now=now, settings=supply_settings)
        assert [c.sim_id for c in got] == [p.sims[0] for p in fleet.phones if p.carriers[0] == carrier]
    # heartbeats keep coming (every 0.2 s here)
    before = fleet.stats()["honest"].get("heartbeat", 0)
    assert fleet.wait_for(lambda: fleet.stats()["honest"].get("heartbeat", 0) >= before + 3, timeout=10)


def test_pushes_reach_the_phones_and_each_behaviour_answers_its_way(deps, make_fleet, pusher):
    jobs = RecordingJobs()
    fleet = make_fleet(phones=5, behaviours=["honest", "slow", "fail", "silent", "liar"], job_api=jobs)
    for phone in fleet.phones:
        pusher.send(phone.push_token, {"job_id": f"job_{phone.behaviour}"}, priority="high")
    pusher.send(fleet.phones[0].push_token, {"job_id": "job_honest"})   # FCM delivered twice
    assert fleet.wait_for(lambda: [c[3] for c in jobs.of("job_slow")][-1:] == ["delivered"], timeout=15)
    assert fleet.wait_for(lambda: len(jobs.of("job_liar")) == 3, timeout=5)

    honest = [c[3] for c in jobs.of("job_honest")]
    assert honest == ["fetch", "sent", "delivered"]              # once, despite the duplicate push
    times = {c[3]: c[0] for c in jobs.of("job_honest")}
    assert times["delivered"] - times["sent"] >= FAST.delivery_delay[0] * FAST.scale
    assert [c[3] for c in jobs.of("job_fail")] == ["fetch", "failed"] and jobs.of("job_fail")[1][5]
    assert jobs.of("job_silent") == [] and fleet.phones[3].gone_silent
    liar = jobs.of("job_liar")
    assert [c[3] for c in liar] == ["fetch", "sent", "delivered"]
    assert liar[2][0] - liar[1][0] < FAST.delivery_delay[0] * FAST.scale + 0.5
    slow = {c[3]: c[0] for c in jobs.of("job_slow")}
    assert slow["fetch"] - times["fetch"] > 0   # answered after the honest phone
    stats = fleet.stats()
    assert stats["honest"]["push_duplicate"] == 1 and stats["silent"]["ignored"] == 1


class FlakyJobs(RecordingJobs):
    """The routes answering each call in turn from a script (then 200): a status, or an
    exception raised as the network would (no answer at all)."""

    def __init__(self, script: dict[str, list]):
        super().__init__()
        self.script = {k: list(v) for k, v in script.items()}

    def _next(self, kind):
        with self.lock:
            steps = self.script.get(kind) or []
            step = steps.pop(0) if steps else 200
        if isinstance(step, Exception):
            raise step
        return step

    def fetch(self, phone, job_id):
        ok = super().fetch(phone, job_id)
        step = self._next("fetch")
        return ok if step == 200 else (step[0], {"error": {"code": "x"}, **step[1]})

    def report(self, phone, job_id, kind, token, carrier_error=None):
        ok = super().report(phone, job_id, kind, token, carrier_error)
        step = self._next(kind)
        return ok if step == 200 else (step[0], {"error": {"code": "x"}, **step[1]})


def test_phones_retry_transient_failures_like_the_app_and_count_every_answer(deps, make_fleet, pusher):
    """A 503 fetch, a report lost in the network and a rate-limited delivery report are each
    tried again (Retry-After honoured); a refusal (403) is final. The stats show every answer."""
    jobs = FlakyJobs({"fetch": [(503, {"_retry_after": 0.0})],
                      "sent": [requests.ConnectionError("reset")],
                      "delivered": [(429, {"_retry_after": 0.3})]})
    fleet = make_fleet(phones=1, job_api=jobs)
    pusher.send(fleet.phones[0].push_token, {"job_id": "job_flaky"})
    assert fleet.wait_for(lambda: [c[3] for c in jobs.of("job_flaky")][-1:] == ["delivered"]
                          and len(jobs.of("job_flaky")) == 6, timeout=15)
    calls = jobs.of("job_flaky")
    assert [c[3] for c in calls] == ["fetch", "fetch", "sent", "sent", "delivered", "delivered"]
    assert calls[5][0] - calls[4][0] >= 0.3                    # Retry-After waited out
    stats = fleet.stats()["honest"]
    assert {k: stats.get(k) for k in ("fetch_503", "fetch", "sent_599", "sent", "delivered_429",
                                      "delivered", "retry")} == {
        "fetch_503": 1, "fetch": 1, "sent_599": 1, "sent": 1, "delivered_429": 1, "delivered": 1,
        "retry": 3}

    refused = FlakyJobs({"sent": [(403, {})], "delivered": [(503, {})] * 10})
    other = make_fleet(phones=1, job_api=refused, seed=8, timing=Timing(scale=0.05, heartbeat_seconds=4, retries=2))
    pusher.send(other.phones[0].push_token, {"job_id": "job_refused"})
    assert other.wait_for(lambda: other.stats().get("honest", {}).get("sent_403") == 1, timeout=10)
    time.sleep(0.5)
    assert [c[3] for c in refused.of("job_refused")] == ["fetch", "sent"]   # no retry, no delivered

    gave_up = FlakyJobs({"delivered": [(503, {})] * 10})
    third = make_fleet(phones=1, job_api=gave_up, seed=9, timing=Timing(scale=0.02, heartbeat_seconds=4, retries=2))
    pusher.send(third.phones[0].push_token, {"job_id": "job_gave_up"})
    assert third.wait_for(lambda: third.stats().get("honest", {}).get("delivered_gave_up") == 1, timeout=15)
    assert [c[3] for c in gave_up.of("job_gave_up")] == ["fetch", "sent", "delivered", "delivered", "delivered"]
    assert third.stats()["honest"]["delivered_503"] == 3


def test_a_phone_reads_retry_after_from_the_answer():
    from infra.local.phone_fleet import RETRY_AFTER, FleetPhone

    phone = FleetPhone(index=0, behaviour="honest", carriers=("smart",), base_url="http://127.0.0.1:9",
                       ip="10.0.0.1", fingerprint="f", push_token="t")
    answer = requests.Response()
    answer.status_code, answer._content = 429, b'{"error": {"code": "rate_limited"}}'
    answer.headers["Retry-After"] = "7"
    phone.session.request = lambda *a, **kw: answer
    status, payload = phone.call("POST", "/v1/relay/jobs/job_x/sent", {"token": "jt_x"})
    assert status == 429 and payload[RETRY_AFTER] == 7.0 and payload["error"]["code"] == "rate_limited"
    assert Timing(scale=0.01).backoff(0, payload[RETRY_AFTER], __import__("random").Random(1)) == 7.0
    assert Timing(scale=1).backoff(9, None, __import__("random").Random(1)) <= 8.0


def test_a_liar_forges_every_third_report(deps, make_fleet, pusher):
    jobs = RecordingJobs()
    fleet = make_fleet(phones=1, behaviours=["liar"], job_api=jobs)
    for i in range(3):
        pusher.send(fleet.phones[0].push_token, {"job_id": f"job_lie{i}"})
    assert fleet.wait_for(lambda: sum(len(jobs.of(f"job_lie{i}")) for i in range(3)) == 9, timeout=10)
    reports = [c for c in jobs.calls if c[3] in ("sent", "delivered")]
    forged = [c for c in reports if c[4] != f"jt_{c[2]}_token"]
    assert len(reports) == 6 and len(forged) == 2


def test_a_silent_phone_stops_heartbeating_and_goes_offline(deps, make_fleet, pusher, supply_settings):
    fleet = make_fleet(phones=2, behaviours=["silent", "honest"], job_api=RecordingJobs())
    silent, honest = fleet.phones
    pusher.send(silent.push_token, {"job_id": "job_quiet"})
    assert fleet.wait_for(lambda: silent.gone_silent, timeout=5)

    def until(phone):
        return availability.availability_ref(deps.db, phone.sims[0]).get().get("online_until")

    time.sleep(0.4)
    frozen, moving = until(silent), until(honest)
    time.sleep(0.8)
    assert until(silent) == frozen            # no more heartbeats: offline 16 min after the last
    assert until(honest) > moving


def test_the_fleet_serves_its_status_and_takes_forwarded_pushes_over_http(fcm_server):
    """The local stack's shape: the FCM simulator POSTs each message to the fleet's listener."""
    jobs = RecordingJobs()
    fleet = PhoneFleet("http://127.0.0.1:9", phones=1, fcm_url=fcm_server.base_url, job_api=jobs,
                       timing=FAST, heartbeats=False)
    fleet._listen()
    try:
        fleet.phones[0].access_token = "not-used"
        assert requests.get(f"{fleet.server.base_url}/_health", timeout=5).json()["status"] == "ok"
        assert fcm_server.forwards()[fleet.token_prefix] == f"{fleet.server.base_url}/push"
        app = fcm_wiring.install_fcm_loopback(fcm_server.base_url, "demo-fleet", app_name="relay-fleet-http")
        FcmPushSender(app).send(fleet.phones[0].push_token, {"job_id": "job_http"})
        assert fleet.wait_for(lambda: [c[3] for c in jobs.of("job_http")] == ["fetch", "sent", "delivered"],
                              timeout=10)
        status = requests.get(f"{fleet.server.base_url}/_fleet", timeout=5).json()
        assert status["phones"][0]["behaviour"] == "honest" and status["stats"]["honest"]["push"] == 1
    finally:
        fleet.stop()
    assert fleet.token_prefix not in fcm_server.forwards()


def test_fcm_forwards_only_go_to_loopback_and_the_longest_prefix_wins(fcm_server):
    with pytest.raises(ValueError):
        fcm_server.forward("evil-", "http://example.com/push")
    r = requests.put(f"{fcm_server.base_url}/_forwards", json={"prefix": "x-", "url": "http://10.0.0.1/p"}, timeout=5)
    assert r.status_code == 400
    got: list[str] = []
    fcm_server.forward("pfx-", lambda e: got.append("short"))
    fcm_server.forward("pfx-long-", lambda e: got.append("long"))
    try:
        app = fcm_wiring.install_fcm_loopback(fcm_server.base_url, "demo-fleet", app_name="relay-fleet-prefix")
        FcmPushSender(app).send("pfx-long-1", {"job_id": "j"})
        FcmPushSender(app).send("pfx-2", {"job_id": "j"})
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(got) == ["long", "short"]
    finally:
        fcm_server.unforward("pfx-")
        fcm_server.unforward("pfx-long-")
