"""A loopback fleet of simulated provider phones for the SMS relay (issue 11, ADR 0043).

Each simulated phone does what the provider app does, through the public API only:

1. signs in with its number (``/v1/auth/phone/start`` + ``/verify``, the code read from the SMS
   simulator's inbox), becomes a provider, registers its device with an FCM token
   ``fleet-<fleet id>-<n>-…``, adds its SIM(s) (``/v1/relay/sims`` + ``/verify``, texted code
   again) and heartbeats every ``heartbeat_seconds`` (battery, signal, charging);
2. receives its pushes: the FCM simulator forwards every message for the fleet's token prefix
   (``fcm_sim`` ``PUT /_forwards``, or ``server.forward`` in process);
3. on a push, fetches the job and reports on it (``JobApi``: R2's phone routes, kept in one small
   adapter) according to its behaviour:

   - ``honest``: fetch after 0.4–1.2 s, report ``sent``, then ``delivered`` 2–6 s later
     (irregular, like a carrier's delivery reports);
   - ``slow``: the same after waiting 6–10 s first (late acknowledgements: deadlines bite);
   - ``fail``: fetch, then report ``failed`` with a carrier error;
   - ``silent``: never answers a push, and stops heartbeating after its first one (a phone
     that dies mid-job);
   - ``liar``: fetches, reports ``sent`` and ``delivered`` within 50 ms without sending, and
     every third report carries a forged token.

Like the app, every phone retries a fetch or report that failed transiently (429, 5xx, no
answer) after a back-off, honouring Retry-After, at most ``Timing.retries`` times: reports are
idempotent, so a repeat is safe. Every delay is multiplied by ``Timing.scale`` (tests shrink
them). ``stats()`` counts what the phones did, per behaviour and by outcome (``sent`` for a 2xx
answer, ``sent_503`` for another, ``sent_gave_up`` when the retries ran out, ``retry``); ``log``
keeps each action (for tests and ``GET /_fleet``).

In process (tests)::

    fleet = PhoneFleet(base_url, fcm=fcm_server, code_source=read_code, phones=6,
                       behaviours={"honest": 4, "silent": 1, "liar": 1})
    fleet.start() ... fleet.stop()

CLI (the local stack)::

    python -m infra.local.phone_fleet --port 9328 --gateway http://127.0.0.1:8000 \\
        --fcm http://127.0.0.1:9321 --sms http://127.0.0.1:9323 --phones 6 \\
        --behaviours honest=4,slow=1,liar=1

It serves ``POST /push`` (the FCM forward target), ``GET /_fleet`` (phones and counters) and
``GET /_health`` on 127.0.0.1, waits for the gateway, then onboards its phones.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import logging
import random
import re
import secrets
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from infra.local.simserver import LoopbackHandler, LoopbackServer, serve_cli, start_in_thread

log = logging.getLogger("payloom.phone_fleet")
DEFAULT_PORT = 9328
BEHAVIOURS = ("honest", "slow", "fail", "silent", "liar")
CODE_RE = re.compile(r"\b(\d{6})\b")
# Valid Cambodian mobile prefixes per carrier (the identity numbering plan decides, see _number).
PREFIXES = {"smart": ("10", "15", "16", "69", "70", "81", "86", "93", "98"),
            "metfone": ("97", "88", "71", "60", "66", "67", "68", "90"),
            "cellcard": ("12", "11", "14", "17", "61", "77", "78", "85", "89", "92", "95", "99")}
CARRIER_ERRORS = ("generic_failure", "no_service", "radio_off", "sms_limit_exceeded")
# Answers a phone app retries (rate limited, contention, the server or the network down); every
# other answer is final. Reports are idempotent (a repeat answers ``duplicate``), and a fetch
# repeated hands out one more token of the same job, so repeating both is safe.
TRANSIENT = frozenset({429, 500, 502, 503, 504})
NETWORK_ERROR = 599          # no HTTP answer at all (connection refused or reset, time-out)
RETRY_AFTER = "_retry_after"  # FleetPhone.call puts the answer's Retry-After (seconds) here


@dataclasses.dataclass
class Timing:
    send_delay: tuple[float, float] = (0.4, 1.2)        # push -> fetch (and fetch -> sent)
    delivery_delay: tuple[float, float] = (2.0, 6.0)    # sent -> delivered
    slow_delay: tuple[float, float] = (6.0, 10.0)       # a slow phone waits this first
    liar_delay: float = 0.05
    heartbeat_seconds: float = 600.0                    # under the 15-minute rule
    retries: int = 5                                    # a transient failure is tried again
    retry_backoff: tuple[float, float] = (0.5, 8.0)     # first wait, cap (doubling, jittered)
    retry_after_cap: float = 30.0                       # the most of a Retry-After honoured
    scale: float = 1.0

    def pick(self, span: tuple[float, float], rng: random.Random) -> float:
        return rng.uniform(*span) * self.scale

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before try ``attempt + 1``: the server's Retry-After when it gave one (it
        knows best, so it is not scaled), else a jittered doubling back-off."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_cap)
        first, cap = self.retry_backoff
        return min(cap, first * 2 ** attempt) * rng.uniform(0.5, 1.0) * self.scale


class JobApi:
    """The phone's calls on its jobs (R2's routes). Adjust here if the paths change."""

    FETCH = "/v1/relay/jobs/{job_id}"
    REPORT = "/v1/relay/jobs/{job_id}/{kind}"

    @staticmethod
    def job_id_of(entry: dict[str, Any]) -> str | None:
        data = (entry.get("message") or {}).get("data") or {}
        return data.get("job_id")

    def fetch(self, phone: "FleetPhone", job_id: str) -> tuple[int, dict[str, Any]]:
        return phone.call("GET", self.FETCH.format(job_id=job_id))

    def report(self, phone: "FleetPhone", job_id: str, kind: str, token: str,
               carrier_error: str | None = None) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"token": token, "at": int(time.time())}
        if carrier_error:
            body["carrier_error"] = carrier_error
        return phone.call("POST", self.REPORT.format(job_id=job_id, kind=kind), body)


@dataclasses.dataclass
class FleetPhone:
    """One simulated provider phone and its credentials."""
    index: int
    behaviour: str
    carriers: tuple[str, ...]
    base_url: str
    ip: str
    fingerprint: str
    push_token: str
    numbers: list[str] = dataclasses.field(default_factory=list)
    user_id: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    provider_id: str | None = None
    device_id: str | None = None
    sims: list[str] = dataclasses.field(default_factory=list)
    jobs_seen: set = dataclasses.field(default_factory=set)
    gone_silent: bool = False
    reports: int = 0

    def __post_init__(self):
        self.session = requests.Session()
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        h = {"X-Forwarded-For": self.ip, "Accept-Language": "km, en;q=0.5"}
        if self.access_token:
            h["Authorization"] = f"Bearer {self.access_token}"
        return h

    def call(self, method: str, path: str, body: dict | None = None, *, retry_auth: bool = True
             ) -> tuple[int, dict[str, Any]]:
        r = self.session.request(method, self.base_url + path, json=body, headers=self.headers(),
                                 timeout=30)
        if r.status_code == 401 and retry_auth and self.refresh_token:
            self.refresh()
            return self.call(method, path, body, retry_auth=False)
        try:
            payload = r.json() if r.content else {}
        except ValueError:
            payload = {"raw": r.text[:200]}
        if not isinstance(payload, dict):
            payload = {"data": payload}
        retry_after = r.headers.get("Retry-After")
        if retry_after is not None and r.status_code >= 400:
            try:
                payload[RETRY_AFTER] = float(retry_after)
            except ValueError:
                pass
        return r.status_code, payload

    def refresh(self) -> None:
        """Access tokens last an hour: rotate with the refresh token, as the app does."""
        with self._lock:
            r = self.session.post(self.base_url + "/v1/auth/refresh", timeout=30,
                                  json={"refresh_token": self.refresh_token},
                                  headers={"X-Forwarded-For": self.ip})
            if r.ok:
                pair = r.json()
                self.access_token, self.refresh_token = pair["access_token"], pair["refresh_token"]

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "behaviour": self.behaviour, "provider": self.provider_id,
                "device": self.device_id, "sims": list(self.sims), "carriers": list(self.carriers),
                "silent": self.gone_silent}


class FleetError(RuntimeError):
    """Onboarding a phone failed (the API answered something unexpected)."""


class PhoneFleet:
    def __init__(self, base_url: str, *, phones: int = 6,
                 behaviours: dict[str, int] | list[str] | None = None,
                 carriers: tuple[str, ...] = ("smart", "metfone", "cellcard"),
                 sims_per_phone: int = 1, fcm: Any = None, fcm_url: str | None = None,
                 sms_url: str | None = None, code_source: Callable[[str, int], str] | None = None,
                 timing: Timing | None = None, seed: int | None = None, listen_port: int = 0,
                 job_api: JobApi | None = None, heartbeats: bool = True, livemode: bool = False,
                 workers: int = 32):
        self.base_url = base_url.rstrip("/")
        self.fleet_id = secrets.token_hex(3)
        self.rng = random.Random(seed)
        self.timing = timing or Timing()
        self.job_api = job_api or JobApi()
        self.fcm, self.fcm_url, self.sms_url = fcm, fcm_url, sms_url
        self.code_source = code_source or self._code_from_sms_inbox
        self.listen_port = listen_port
        self.heartbeats_on = heartbeats
        self.livemode = livemode
        self.sims_per_phone = sims_per_phone
        self.phones = [self._phone(i, b, carriers) for i, b in enumerate(self._plan(phones, behaviours))]
        self._by_token = {p.push_token: p for p in self.phones}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="phone")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._count_lock = threading.Lock()
        self.log: collections.deque = collections.deque(maxlen=5000)
        self.server: LoopbackServer | None = None
        self.started = False

    # --- set-up ---------------------------------------------------------------------------------
    @staticmethod
    def _plan(n: int, behaviours) -> list[str]:
        if behaviours is None:
            return ["honest"] * n
        if isinstance(behaviours, dict):
            plan = [b for b, count in behaviours.items() for _ in range(count)]
        else:
            plan = list(behaviours)
        unknown = sorted(set(plan) - set(BEHAVIOURS))
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; use {BEHAVIOURS}")
        return (plan + ["honest"] * n)[:max(n, len(plan))]

    @property
    def token_prefix(self) -> str:
        return f"fleet-{self.fleet_id}-"

    def _phone(self, i: int, behaviour: str, carriers: tuple[str, ...]) -> FleetPhone:
        mine = tuple(carriers[(i + k) % len(carriers)] for k in range(self.sims_per_phone))
        seed = int(self.fleet_id, 16)
        return FleetPhone(index=i, behaviour=behaviour, carriers=mine, base_url=self.base_url,
                          ip=f"10.{200 + seed % 50}.{i // 250}.{i % 250 + 1}",
                          fingerprint=f"fleet-{self.fleet_id}-device-{i}",
                          push_token=f"{self.token_prefix}{i}-{secrets.token_hex(16)}")

    def start(self, onboard_workers: int = 6) -> "PhoneFleet":
        """Listen for pushes, onboard every phone (in parallel), start heartbeating."""
        self._listen()
        with concurrent.futures.ThreadPoolExecutor(onboard_workers) as pool:
            for phone, error in zip(self.phones, pool.map(self._safe_onboard, self.phones)):
                if error:
                    raise FleetError(f"phone {phone.index}: {error}")
        if self.heartbeats_on:
            t = threading.Thread(target=self._heartbeat_loop, name="fleet-heartbeats", daemon=True)
            t.start()
            self._threads.append(t)
        self.started = True
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.fcm is not None:
            self.fcm.unforward(self.token_prefix)
        elif self.fcm_url:
            try:
                requests.delete(f"{self.fcm_url}/_forwards", params={"prefix": self.token_prefix}, timeout=5)
            except requests.RequestException:
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.server is not None:
            self.server.stop()
        for t in self._threads:
            t.join(timeout=5)

    def _listen(self) -> None:
        if self.fcm is not None:           # in process: the FCM simulator calls us directly
            self.fcm.forward(self.token_prefix, self.on_push)
            return
        if self.server is None:
            self.server, _ = start_in_thread(FleetServer(self, self.listen_port), "phone-fleet")
        if self.fcm_url:
            r = requests.put(f"{self.fcm_url}/_forwards", timeout=5,
                             json={"prefix": self.token_prefix, "url": f"{self.server.base_url}/push"})
            r.raise_for_status()

    def _safe_onboard(self, phone: FleetPhone) -> str | None:
        try:
            self.onboard(phone)
            return None
        except Exception as exc:  # noqa: BLE001 - reported by start()
            log.exception("onboarding phone %s failed", phone.index)
            return str(exc)

    def onboard(self, phone: FleetPhone) -> None:
        """Everything the app does on first start, through the public API."""
        rng = random.Random(self.rng.random())
        phone.numbers = [_number(c, rng) for c in phone.carriers]
        login = phone.numbers[0]
        seen = self._sms_count(login)
        self._expect(phone.call("POST", "/v1/auth/phone/start", {"phone": login}), 202, "phone start")
        status, tokens = phone.call("POST", "/v1/auth/phone/verify",
                                    {"phone": login, "code": self.code_source(login, seen)})
        if status not in (200, 201) or "access_token" not in tokens:
            raise FleetError(f"sign-in answered {status}: {str(tokens)[:200]}")
        phone.user_id = tokens["user_id"]
        phone.access_token, phone.refresh_token = tokens["access_token"], tokens["refresh_token"]
        _, prv = self._expect(phone.call("POST", "/v1/relay/providers", {}), (200, 201), "provider")
        phone.provider_id = prv["id"]
        _, dev = self._expect(phone.call("POST", "/v1/relay/devices", {
            "fingerprint": phone.fingerprint, "push_token": phone.push_token,
            "model": "Simulated Android", "app_version": "fleet-1"}), (200, 201), "device")
        phone.device_id = dev["id"]
        mode = {"Payloom-Mode": "live"} if self.livemode else {}
        for number in phone.numbers:
            seen = self._sms_count(number)
            self._expect(phone.call("POST", "/v1/relay/sims", {"phone": number, "device": phone.device_id}),
                         202, "sim start")
            code = self.code_source(number, seen)
            if mode:
                phone.session.headers.update(mode)
            _, sim = self._expect(phone.call("POST", "/v1/relay/sims/verify", {
                "phone": number, "code": code, "device": phone.device_id}), (200, 201), "sim verify")
            phone.sims.append(sim["id"])
        self.heartbeat(phone)
        self._note(phone, "onboarded", None)

    @staticmethod
    def _expect(answer: tuple[int, dict], statuses, what: str) -> tuple[int, dict]:
        statuses = (statuses,) if isinstance(statuses, int) else statuses
        if answer[0] not in statuses:
            raise FleetError(f"{what} answered {answer[0]}: {str(answer[1])[:200]}")
        return answer

    # --- codes ------------------------------------------------------------------------------------
    def _sms_count(self, e164: str) -> int:
        if self.code_source != self._code_from_sms_inbox:
            return 0
        return len(self._sms_inbox(e164))

    def _sms_inbox(self, e164: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.sms_url}/_inbox", params={"to": e164}, timeout=5)
        r.raise_for_status()
        return r.json()

    def _code_from_sms_inbox(self, e164: str, seen: int, timeout: float = 60) -> str:
        """Wait for the SMS simulator to receive a new code for ``e164`` (after ``seen``)."""
        if not self.sms_url:
            raise FleetError("no SMS simulator URL and no code_source")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self._sms_inbox(e164)
            if len(messages) > seen:
                return CODE_RE.search(messages[-1]["body"]).group(1)
            time.sleep(0.2)
        raise FleetError(f"no code texted to {e164[:5]}… within {timeout}s")

    # --- heartbeats ---------------------------------------------------------------------------------
    def heartbeat(self, phone: FleetPhone) -> int:
        rng = self.rng
        status, _ = phone.call("POST", f"/v1/relay/devices/{phone.device_id}/heartbeat", {
            "battery": rng.randint(35, 100), "charging": rng.random() < 0.6,
            "signal": rng.randint(2, 4), "network": "4g"})
        self._note(phone, "heartbeat", None, status=status)
        return status

    def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.timing.heartbeat_seconds * self.timing.scale)
        while not self._stop.wait(interval):
            for phone in self.phones:
                if not phone.gone_silent and phone.device_id:
                    try:
                        self.heartbeat(phone)
                    except requests.RequestException:
                        log.warning("heartbeat of phone %s failed", phone.index)

    # --- pushes and behaviours ----------------------------------------------------------------------
    def on_push(self, entry: dict[str, Any]) -> None:
        """An FCM message for one of our tokens (from the forward)."""
        phone = self._by_token.get(entry.get("token") or "")
        job_id = self.job_api.job_id_of(entry)
        if phone is None or not job_id or self._stop.is_set():
            return
        with phone._lock:
            if job_id in phone.jobs_seen:       # FCM may deliver a message twice
                self._note(phone, "push_duplicate", job_id)
                return
            phone.jobs_seen.add(job_id)
        self._note(phone, "push", job_id)
        try:
            self._pool.submit(self._handle, phone, job_id)
        except RuntimeError:   # stopping
            pass

    def set_behaviour(self, phone: FleetPhone | int, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(behaviour)
        phone = self.phones[phone] if isinstance(phone, int) else phone
        phone.behaviour = behaviour
        phone.gone_silent = False

    def _handle(self, phone: FleetPhone, job_id: str) -> None:
        try:
            getattr(self, f"_{phone.behaviour}")(phone, job_id, random.Random(self.rng.random()))
        except Exception:  # noqa: BLE001 - a phone's crash must not stop the fleet
            log.exception("phone %s failed on %s", phone.index, job_id)
            self._note(phone, "crash", job_id)

    def _sleep(self, seconds: float) -> bool:
        return not self._stop.wait(max(0.0, seconds))

    def _retrying(self, phone: FleetPhone, job_id: str, action: str,
                  call: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        """``call`` as the app makes it: a transient failure (``TRANSIENT``, or no answer) is
        tried again after a back-off (Retry-After honoured), at most ``Timing.retries`` times.
        Every answer is counted (``<action>_<status>`` when not 2xx, ``<action>_gave_up`` when
        the retries ran out), so a lost report shows in ``stats()``."""
        rng = random.Random(self.rng.random())
        attempt = 0
        while True:
            try:
                status, payload = call()
            except requests.RequestException as exc:
                status, payload = NETWORK_ERROR, {"raw": type(exc).__name__}
            self._note(phone, action, job_id, status=status)
            if status not in TRANSIENT and status != NETWORK_ERROR:
                return status, payload
            if attempt >= self.timing.retries or self._stop.is_set():
                self._note(phone, f"{action}_gave_up", job_id)
                return status, payload
            self._note(phone, "retry", job_id)
            if not self._sleep(self.timing.backoff(attempt, payload.get(RETRY_AFTER), rng)):
                return status, payload
            attempt += 1

    def _fetch(self, phone: FleetPhone, job_id: str) -> dict[str, Any] | None:
        status, job = self._retrying(phone, job_id, "fetch", lambda: self.job_api.fetch(phone, job_id))
        return job if status == 200 and job.get("token") else None

    def _report(self, phone: FleetPhone, job_id: str, kind: str, token: str, **kw) -> int:
        status, _ = self._retrying(phone, job_id, kind,
                                   lambda: self.job_api.report(phone, job_id, kind, token, **kw))
        return status

    def _honest(self, phone, job_id, rng, *, first_wait: float | None = None) -> None:
        t = self.timing
        if not self._sleep(first_wait if first_wait is not None else t.pick(t.send_delay, rng)):
            return
        job = self._fetch(phone, job_id)
        if job is None or not self._sleep(t.pick(t.send_delay, rng) / 2):
            return
        if self._report(phone, job_id, "sent", job["token"]) != 200:
            return
        if self._sleep(t.pick(t.delivery_delay, rng)):
            self._report(phone, job_id, "delivered", job["token"])

    def _slow(self, phone, job_id, rng) -> None:
        self._honest(phone, job_id, rng, first_wait=self.timing.pick(self.timing.slow_delay, rng))

    def _fail(self, phone, job_id, rng) -> None:
        if not self._sleep(self.timing.pick(self.timing.send_delay, rng)):
            return
        job = self._fetch(phone, job_id)
        if job is not None:
            self._report(phone, job_id, "failed", job["token"], carrier_error=rng.choice(CARRIER_ERRORS))

    def _silent(self, phone, job_id, rng) -> None:
        phone.gone_silent = True     # no answer, and no more heartbeats
        self._note(phone, "ignored", job_id)

    def _liar(self, phone, job_id, rng) -> None:
        job = self._fetch(phone, job_id)
        if job is None:
            return
        for kind in ("sent", "delivered"):
            self._sleep(self.timing.liar_delay * self.timing.scale)
            with phone._lock:
                phone.reports += 1
                forged = phone.reports % 3 == 0
            token = "jt_" + secrets.token_urlsafe(24) if forged else job["token"]
            if forged:
                self._note(phone, "forged", job_id)
            self._report(phone, job_id, kind, token)

    # --- observation ------------------------------------------------------------------------------------
    def _note(self, phone: FleetPhone, action: str, job_id: str | None, status: int | None = None) -> None:
        with self._count_lock:
            key = action if status is None or 200 <= status < 300 else f"{action}_{status}"
            self._counts[phone.behaviour][key] += 1
            self.log.append({"t": time.time(), "phone": phone.index, "behaviour": phone.behaviour,
                             "action": action, "job": job_id, "status": status})

    def stats(self) -> dict[str, dict[str, int]]:
        with self._count_lock:
            return {b: dict(c) for b, c in self._counts.items()}

    def actions(self, job_id: str) -> list[dict[str, Any]]:
        with self._count_lock:
            return [e for e in self.log if e["job"] == job_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, step: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(step)
        return predicate()

    def describe(self) -> dict[str, Any]:
        return {"fleet": self.fleet_id, "token_prefix": self.token_prefix, "started": self.started,
                "phones": [p.describe() for p in self.phones], "stats": self.stats()}


def _number(carrier: str, rng: random.Random) -> str:
    """A valid Cambodian mobile number on ``carrier`` (checked with identity's numbering plan)."""
    from shared.identity.factors.phone import parse_phone
    from shared.relay.carriers import relay_carrier
    for _ in range(1000):
        prefix = rng.choice(PREFIXES[carrier])
        digits = rng.choice((6, 7))
        raw = "+855" + prefix + str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(digits - 1))
        try:
            number = parse_phone(raw)
        except Exception:  # noqa: BLE001 - not in the plan: draw again
            continue
        if relay_carrier(number) == carrier:
            return number.e164
    raise FleetError(f"no valid {carrier} number drawn")


class FleetServer(LoopbackServer):
    def __init__(self, fleet: PhoneFleet, port: int = 0):
        super().__init__(port, _Handler)
        self.fleet = fleet


class _Handler(LoopbackHandler):
    server: FleetServer
    server_version = "payloom-phone-fleet"
    logger = log

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/_health":
            self.json_response(200, {"status": "ok", "started": self.server.fleet.started})
        elif path == "/_fleet":
            self.json_response(200, self.server.fleet.describe())
        else:
            self.json_response(404, {"error": f"no route for GET {path}"})

    def do_POST(self) -> None:  # noqa: N802
        raw = self.read_body()
        if urlsplit(self.path).path != "/push":
            self.json_response(404, {"error": f"no route for POST {self.path}"})
            return
        try:
            entry = json.loads(raw or b"{}")
        except ValueError:
            self.json_response(400, {"error": "not JSON"})
            return
        self.server.fleet.on_push(entry)
        self.json_response(204)


def _parse_behaviours(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = item.partition("=")
        out[name] = int(count or 1)
    return out


def _wait_for_gateway(base_url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base_url}/v1/platform/ping", timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise FleetError(f"the gateway at {base_url} did not answer in {timeout}s")


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser) -> None:
        parser.add_argument("--gateway", default="http://127.0.0.1:8000")
        parser.add_argument("--fcm", default="http://127.0.0.1:9321")
        parser.add_argument("--sms", default="http://127.0.0.1:9323")
        parser.add_argument("--phones", type=int, default=6)
        parser.add_argument("--behaviours", default="honest=4,slow=1,liar=1")
        parser.add_argument("--sims-per-phone", type=int, default=1)
        parser.add_argument("--heartbeat-seconds", type=float, default=600.0)

    def make(args) -> FleetServer:
        fleet = PhoneFleet(args.gateway, phones=args.phones, behaviours=_parse_behaviours(args.behaviours),
                           fcm_url=args.fcm.rstrip("/"), sms_url=args.sms.rstrip("/"),
                           sims_per_phone=args.sims_per_phone, listen_port=args.port,
                           timing=Timing(heartbeat_seconds=args.heartbeat_seconds))
        server = FleetServer(fleet, args.port)
        fleet.server = server

        def boot() -> None:
            try:
                _wait_for_gateway(fleet.base_url)
                fleet.start()
                log.info("phone fleet %s: %d phones onboarded", fleet.fleet_id, len(fleet.phones))
            except Exception:  # noqa: BLE001 - the stack keeps running; /_fleet shows started=false
                log.exception("the phone fleet could not start")
        threading.Thread(target=boot, name="fleet-boot", daemon=True).start()
        return server

    return serve_cli(make, argv=argv, description="Simulated provider phones for the SMS relay",
                     default_port=DEFAULT_PORT, add_arguments=add_arguments,
                     banner=lambda server: f"phone fleet listening on {server.base_url} (status: /_fleet)")


if __name__ == "__main__":
    raise SystemExit(main())
