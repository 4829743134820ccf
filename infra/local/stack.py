"""Starts and stops the local platform: emulators, simulators, gateway and scheduler.

Used by ``make run`` (fixed ports, foreground) and by the test suite (free ports, once per run).
Every child runs in its own process group so stopping kills Java grandchildren too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[2]
SDK_DIRS = [pathlib.Path("/usr/lib/google-cloud-sdk/platform"),
            pathlib.Path("/usr/share/google-cloud-sdk/platform"),
            pathlib.Path(os.path.expanduser("~/google-cloud-sdk/platform"))]
INSTALL_HINT = (
    "The Google Cloud {what} emulator is missing. Install it with\n"
    "  gcloud components install {component}\n"
    "or, on Debian/Ubuntu with Google's apt repository,\n"
    "  sudo apt-get install google-cloud-cli-{component}")
ANVIL_VERSION = "1.7.1"
# Several gateway worker processes, so one that dies (a crash, the OOM killer) takes only its
# own in-flight requests with it; gunicorn's master replaces it.
GATEWAY_WORKERS = int(os.environ.get("PAYLOOM_GATEWAY_WORKERS", "3"))
LOG_DIR = ROOT / ".local" / "logs"


class MissingDependency(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find_sdk_binary(rel: str, what: str, component: str) -> str:
    gcloud = shutil.which("gcloud")
    candidates = list(SDK_DIRS)
    if gcloud:
        candidates.insert(0, pathlib.Path(os.path.realpath(gcloud)).parents[1] / "platform")
    for base in candidates:
        path = base / rel
        if path.exists():
            return str(path)
    raise MissingDependency(INSTALL_HINT.format(what=what, component=component))


def firestore_binary() -> str:
    return _find_sdk_binary("cloud-firestore-emulator/cloud_firestore_emulator", "Firestore",
                            "firestore-emulator")


def pubsub_binary() -> str:
    return _find_sdk_binary("pubsub-emulator/bin/cloud-pubsub-emulator", "Pub/Sub", "pubsub-emulator")


def anvil_binary() -> str:
    path = ROOT / "node_modules" / ".bin" / "anvil"
    if not path.exists():
        if not shutil.which("npm"):
            raise MissingDependency("anvil needs Node.js and npm (apt-get install nodejs npm).")
        # ci, not install: the committed lockfile (every platform's optional anvil) is used as is
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True)
    return str(path)


@dataclasses.dataclass
class Proc:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None
    health_url: str | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"{self.name}.log", "wb")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env={**os.environ, **(self.env or {})},
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen and self.popen.poll() is not None:
                tail = (LOG_DIR / f"{self.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited during start-up:\n{tail}")
            if self._ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not become ready on port {self.port} in {timeout}s")

    def _ready(self) -> bool:
        if self.health_url:
            try:
                with urllib.request.urlopen(self.health_url, timeout=1) as r:
                    return r.status < 500
            except Exception:  # noqa: BLE001
                return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.3):
            return True
        return False

    def stop(self) -> None:
        """SIGTERM the whole group, wait until every member (e.g. a Java child) is gone,
        escalate to SIGKILL after 5 s."""
        if not self.popen:
            return
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline, killed = time.monotonic() + 5, False
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.1)
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            if time.monotonic() > deadline:
                if killed:
                    return  # only unreaped zombies can remain now
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                deadline, killed = time.monotonic() + 5, True


@dataclasses.dataclass
class Ports:
    firestore: int = 8080
    pubsub: int = 8085
    tasks: int = 9022
    anvil: int = 8545
    fcm: int = 9321
    gateway: int = 8000
    email: int = 9322
    sms: int = 9323
    oidc: int = 9324
    stripe: int = 9325
    webhooks: int = 9326
    prices: int = 9327
    fleet: int = 9328

    @classmethod
    def free(cls) -> "Ports":
        return cls(*(free_port() for _ in dataclasses.fields(cls)))


@dataclasses.dataclass(frozen=True)
class Simulator:
    """A loopback third-party simulator speaking its provider's real HTTP protocol."""
    module: str                                   # run as ``python -m module --port N *args``
    env: Callable[[str], dict[str, str]]          # points our production adapter at ``url``
    what: str
    args: Callable[["Ports"], tuple[str, ...]] = lambda ports: ()


LOCAL_OAUTH_CLIENTS = {p: (f"local-{p}-client", f"local-{p}-secret") for p in ("google", "github", "linkedin")}
SMS_SID, SMS_TOKEN = "AC" + "0" * 32, "local-sms-auth-token"
STRIPE_KEY, STRIPE_WHSEC = "sk_test_local", "whsec_local"
PRICES_KEY = "CG-local-demo-key"

SIMULATORS: dict[str, Simulator] = {
    "fcm": Simulator("infra.local.fcm_sim", lambda url: {"PAYLOOM_FCM_URL": url},
                     "FCM HTTP v1 (inbox: /_inbox)"),
    "email": Simulator("infra.local.email_sim",
                       lambda url: {"PAYLOOM_IDENTITY_EMAIL_API_URL": url,
                                    "PAYLOOM_IDENTITY_EMAIL_API_KEY": "local-email-key"},
                       "email API, SendGrid v3 (inbox: /_inbox)"),
    "sms": Simulator("infra.local.sms_sim",
                     lambda url: {"PAYLOOM_SMS_BASE_URL": url, "PAYLOOM_SMS_ACCOUNT_SID": SMS_SID,
                                  "PAYLOOM_SMS_AUTH_TOKEN": SMS_TOKEN, "PAYLOOM_SMS_FROM_NUMBER": "Payloom"},
                     "SMS API, Twilio protocol (inbox: /_inbox)",
                     lambda ports: ("--account-sid", SMS_SID, "--auth-token", SMS_TOKEN)),
    "oidc": Simulator("infra.local.oidc_sim",
                      lambda url: {k: v for p, (cid, secret) in LOCAL_OAUTH_CLIENTS.items() for k, v in {
                          f"PAYLOOM_OAUTH_{p.upper()}_BASE_URL": f"{url}/{p}",
                          f"PAYLOOM_OAUTH_{p.upper()}_CLIENT_ID": cid,
                          f"PAYLOOM_OAUTH_{p.upper()}_CLIENT_SECRET": secret}.items()},
                      "OAuth 2.0 / OIDC providers (google, github, linkedin)",
                      lambda ports: tuple(a for p, (cid, secret) in LOCAL_OAUTH_CLIENTS.items()
                                          for a in ("--client", f"{p}:{cid}:{secret}"))),
    "stripe": Simulator("infra.local.stripe_sim",
                        lambda url: {"PAYLOOM_STRIPE_API_BASE": url, "PAYLOOM_STRIPE_SECRET_KEY": STRIPE_KEY,
                                     "PAYLOOM_STRIPE_WEBHOOK_SECRET": STRIPE_WHSEC},
                        "payments API, Stripe PaymentIntents + signed webhooks",
                        lambda ports: ("--api-key", STRIPE_KEY, "--webhook-secret", STRIPE_WHSEC, "--webhook-url",
                                       f"http://127.0.0.1:{ports.gateway}/v1/inbound/stripe")),
    "webhooks": Simulator("infra.local.webhook_sim", lambda url: {"PAYLOOM_WEBHOOK_SIM_URL": url},
                          "webhook receiver (config: PUT /_config/<path>; inbox: /_inbox)"),
    "prices": Simulator("infra.local.price_sim",
                        lambda url: {"PAYLOOM_COINGECKO_API_BASE": f"{url}/api/v3",
                                     "PAYLOOM_COINGECKO_API_KEY": PRICES_KEY,
                                     "PAYLOOM_COINGECKO_KEY_KIND": "demo"},
                        "price feed, CoinGecko v3 simple/price (PUT /_prices, PUT /_config; inbox: /_inbox)",
                        lambda ports: ("--api-key", PRICES_KEY)),
    # simulated provider phones of the SMS relay: they onboard through the public API once the
    # gateway answers, heartbeat, receive FCM pushes and send, fail or lie (ADR 0043)
    "fleet": Simulator("infra.local.phone_fleet", lambda url: {"PAYLOOM_PHONE_FLEET_URL": url},
                       "simulated provider phones for the SMS relay (status: /_fleet)",
                       lambda ports: ("--gateway", f"http://127.0.0.1:{ports.gateway}",
                                      "--fcm", f"http://127.0.0.1:{ports.fcm}",
                                      "--sms", f"http://127.0.0.1:{ports.sms}",
                                      "--phones", "6", "--behaviours", "honest=4,slow=1,liar=1")),
}


class Stack:
    """The local platform. ``components`` picks what to start (tests start only what they need)."""

    ALL = ("firestore", "pubsub", "tasks", "anvil", *SIMULATORS, "gateway", "scheduler")

    def __init__(self, ports: Ports | None = None, *, project_id: str = "demo-payloom",
                 components=ALL, task_secret: str | None = None, anvil_args: list[str] | None = None):
        self.ports = ports or Ports()
        self.project_id = project_id
        self.components = tuple(components)
        self.task_secret = task_secret or secrets.token_urlsafe(24)
        self.anvil_args = anvil_args or []
        self.chain_tokens: dict[str, str] | None = None  # ERC-20s deployed on anvil at start
        self.hot_wallet: str | None = None                # test-mode hot wallet, funded at start
        self.procs: list[Proc] = []
        self.scheduler_stop = None

    # Environment every client process (gateway, tests, benchmarks) needs.
    def env(self) -> dict[str, str]:
        p = self.ports
        env = {
            "PAYLOOM_ENV": "local",
            "PAYLOOM_PROJECT_ID": self.project_id,
            "PAYLOOM_TASK_AUTH_SECRET": self.task_secret,
            "PAYLOOM_FUNCTIONS_BASE_URL": f"http://127.0.0.1:{p.gateway}/_fn",
            "PAYLOOM_PUBLIC_BASE_URL": f"http://127.0.0.1:{p.gateway}",
            "GOOGLE_CLOUD_PROJECT": self.project_id,
        }
        if "firestore" in self.components:
            env["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{p.firestore}"
        if "pubsub" in self.components:
            env["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{p.pubsub}"
        if "tasks" in self.components:
            env["PAYLOOM_TASKS_EMULATOR_HOST"] = f"127.0.0.1:{p.tasks}"
        if "anvil" in self.components:
            from infra.local.chain_setup import local_networks_env
            from shared.chain.networks import ANVIL_TOKEN_ADDRESSES
            env["PAYLOOM_CHAIN_RPC_URL"] = f"http://127.0.0.1:{p.anvil}"
            env["PAYLOOM_CHAIN_NETWORKS"] = local_networks_env(
                [f"http://127.0.0.1:{p.anvil}"], self.chain_tokens or ANVIL_TOKEN_ADDRESSES)
            env["PAYLOOM_SIWE_RPC_URLS"] = json.dumps({"31337": f"http://127.0.0.1:{p.anvil}"})
        sims = []
        for name, sim in SIMULATORS.items():
            if name in self.components:
                url = f"http://127.0.0.1:{getattr(p, name)}"
                env.update(sim.env(url))
                sims.append(f"{name}={url}")
        env["PAYLOOM_LOCAL_SIMULATORS"] = ",".join(sims)  # for the gateway's /healthz
        return env

    def start(self) -> "Stack":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        p, c = self.ports, self.components
        starting: list[Proc] = []
        if "firestore" in c:
            starting.append(Proc("firestore", [firestore_binary(), "start", "--host=127.0.0.1",
                                               f"--port={p.firestore}", f"--project_id={self.project_id}"],
                                 p.firestore, health_url=f"http://127.0.0.1:{p.firestore}/"))
        if "pubsub" in c:
            starting.append(Proc("pubsub", [pubsub_binary(), "--host=127.0.0.1", f"--port={p.pubsub}"],
                                 p.pubsub))
        if "tasks" in c:
            from infra.local.tasks_emulator import ensure_venv
            python = ensure_venv(ROOT)
            queues = [f"projects/{self.project_id}/locations/europe-west1/queues/{q}"
                      for q in _manifest()["queues"]]
            argv = [python, str(ROOT / "infra/local/tasks_emulator.py"), "--port", str(p.tasks)]
            for q in queues:
                argv += ["--queue", q]
            starting.append(Proc("tasks", argv, p.tasks))
        if "anvil" in c:
            starting.append(Proc("anvil", [anvil_binary(), "--host", "127.0.0.1", "--port", str(p.anvil),
                                           *self.anvil_args], p.anvil))
        for name, sim in SIMULATORS.items():
            if name in c:
                port = getattr(p, name)
                starting.append(Proc(name, [sys.executable, "-m", sim.module, "--port", str(port), *sim.args(p)],
                                     port))
        for proc in starting:
            proc.start()
            self.procs.append(proc)
        for proc in starting:
            proc.wait_ready()
        if "anvil" in c:  # the USDC, MUSD and PPT contracts (OpenZeppelin ERC-20s), ADR 0032
            from infra.local.chain_setup import deploy_tokens
            self.chain_tokens = deploy_tokens(f"http://127.0.0.1:{p.anvil}")
        # Clients in this process (the scheduler thread, tests, benches) find the emulators
        # through the environment; stop() puts back what was there before.
        self._saved_env = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())
        if "pubsub" in c:
            self.provision_pubsub()
        if "gateway" in c and "anvil" in c and "firestore" in c:
            # crypto intents of merchants without an xpub need the custodial tree; refunds and
            # sweeps need a hot wallet with gas (ADR 0032, 0035)
            from infra.local.chain_setup import provision_local_custody
            self.hot_wallet = provision_local_custody(self.project_id, f"http://127.0.0.1:{p.anvil}",
                                                      self.chain_tokens)
        if "gateway" in c:
            gw = Proc("gateway", gateway_argv(p.gateway),
                      p.gateway, env={**self.env(), "PAYLOOM_GATEWAY_AUTOLOAD": "1",
                                      "PYTHONPATH": str(ROOT)},
                      health_url=f"http://127.0.0.1:{p.gateway}/v1/platform/ping")
            gw.start()
            self.procs.append(gw)
            gw.wait_ready(90)
        if "scheduler" in c:
            self.start_scheduler()

    def provision_pubsub(self) -> None:
        """Topics and push subscriptions from the manifest, as Terraform does in the cloud."""
        from google.api_core import exceptions as gexc
        from google.cloud import pubsub_v1

        from shared.adapters.pubsub import PubSubPublisher

        publisher = PubSubPublisher(self.project_id)
        for topic in _manifest()["topics"]:
            publisher.ensure_topic(topic)
        if "gateway" not in self.components:
            return
        subscriber = pubsub_v1.SubscriberClient()
        for fn in _manifest()["functions"]:
            if fn["trigger"] != "pubsub":
                continue
            sub = subscriber.subscription_path(self.project_id, f"{fn['name']}-push")
            endpoint = f"http://127.0.0.1:{self.ports.gateway}/_push/{fn['name']}"
            with contextlib.suppress(gexc.AlreadyExists):
                subscriber.create_subscription(request={
                    "name": sub, "topic": publisher.topic_path(fn["topic"]),
                    "push_config": {"push_endpoint": endpoint}, "ack_deadline_seconds": 60})

    def start_scheduler(self) -> None:
        import threading

        from infra.local.scheduler import LocalScheduler, http_invoker

        invoker = http_invoker(f"http://127.0.0.1:{self.ports.gateway}", self.task_secret)
        sched = LocalScheduler(_manifest()["functions"], invoker)
        self.scheduler_stop = threading.Event()
        threading.Thread(target=sched.run_forever, args=(self.scheduler_stop,), daemon=True).start()

    def stop(self) -> None:
        if self.scheduler_stop is not None:
            self.scheduler_stop.set()
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def describe(self) -> str:
        p = self.ports
        rows = [("gateway (all HTTP functions)", f"http://127.0.0.1:{p.gateway}"),
                ("  health", f"http://127.0.0.1:{p.gateway}/healthz"),
                ("  OpenAPI / docs", f"http://127.0.0.1:{p.gateway}/openapi.json  /docs"),
                ("Firestore emulator", f"127.0.0.1:{p.firestore}  (project {self.project_id})"),
                ("Pub/Sub emulator", f"127.0.0.1:{p.pubsub}"),
                ("Cloud Tasks emulator", f"127.0.0.1:{p.tasks}"),
                ("anvil (chain 31337)", f"http://127.0.0.1:{p.anvil}"),
                *((("  hot wallet (test mode)", self.hot_wallet),) if self.hot_wallet else ()),
                *((f"{name} simulator", f"http://127.0.0.1:{getattr(p, name)}  {sim.what}")
                  for name, sim in SIMULATORS.items()),
                ("scheduler", "cron entries from functions/manifest.yaml"),
                ("logs", str(LOG_DIR.relative_to(ROOT)) + "/")]
        return "\n".join(f"  {k:<30} {v}" for k, v in rows)


def gateway_argv(port: int, workers: int = GATEWAY_WORKERS) -> list[str]:
    """gunicorn on loopback: ``workers`` processes of 8 threads, each loading every function,
    with a worker class that answers gunicorn's own 400/414/431 in the error envelope."""
    return [sys.executable, "-m", "gunicorn", "--workers", str(max(2, workers)), "--threads", "8",
            "--worker-class", "infra.local.gateway_worker.EnvelopeThreadWorker",
            "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "--timeout", "120",
            "infra.local.gateway:app"]


def _manifest():
    from shared.platform.manifest import load_manifest
    return load_manifest()


def main() -> None:
    from shared.platform.manifest import load_manifest
    load_manifest()
    stack = Stack()
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("Payloom: starting the local platform…", flush=True)
        stack.start()
        print("Payloom is running:\n" + stack.describe(), flush=True)
        print(f"  {'local service token':<30} {stack.task_secret}  (Bearer, for /_fn and probes)")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(1)
            for proc in stack.procs:
                if proc.popen and proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited; see .local/logs/{proc.name}.log")
    except MissingDependency as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    finally:
        print("Payloom: stopping…", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
