"""The Cloud Tasks emulator, really started in .venv-tasks, driven by the real tasks_v2 client."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2

from infra.local import tasks_emulator

PROJECT = "demo-payloom"
LOCATION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
PRECREATED = f"{PARENT}/queues/default"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def emulator():
    try:
        tasks_emulator.ensure_venv()
    except tasks_emulator.TasksEmulatorUnavailable as exc:
        pytest.skip(f"cannot build .venv-tasks (PyPI unreachable?): {exc}")
    proc = tasks_emulator.launch(port=0, queues=[PRECREATED], max_retries=3)
    try:
        yield proc
    finally:
        proc.stop()
        assert not proc.alive()


@pytest.fixture(scope="module")
def client(emulator):
    channel = grpc.insecure_channel(emulator.address)
    yield tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    channel.close()


class _DeepBacklogServer(ThreadingHTTPServer):
    request_queue_size = 128


class Receiver:
    """A tiny HTTP target that records requests; answers from ``statuses`` then 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.delays: dict[str, float] = {}      # path -> seconds to sleep before answering
        self.fail_first: set[str] = set()       # paths answering 503 to their first request
        self.done: list[str] = []               # paths, in the order their answers were sent
        self.active = self.max_active = 0       # requests being handled now / at most
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.arrived:
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    if self.path in outer.fail_first:
                        outer.fail_first.discard(self.path)
                        status = 503
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                    outer.requests.append({
                        "at": time.time(),
                        "path": self.path,
                        "method": self.command,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "status": status,
                    })
                    outer.arrived.notify_all()
                time.sleep(outer.delays.get(self.path, 0))
                with outer.arrived:
                    outer.active -= 1
                    outer.done.append(self.path)
                    outer.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        # The default listen backlog (5) resets connections when 20 dispatches arrive at once
        # on a loaded machine: a reset is a failed dispatch the emulator rightly retries.
        self.server = _DeepBacklogServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def wait_done(self, count: int, timeout: float = 15.0) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.done) >= count, timeout)
            return list(self.done)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _new_queue(client, max_concurrent_dispatches: int = 0) -> str:
    name = f"{PARENT}/queues/q-{uuid.uuid4().hex[:10]}"
    queue = tasks_v2.Queue(name=name)
    if max_concurrent_dispatches:
        queue.rate_limits.max_concurrent_dispatches = max_concurrent_dispatches
    created = client.create_queue(parent=PARENT, queue=queue)
    assert created.name == name
    return name


def _task(url: str, body: bytes = b"{}", eta: datetime | None = None) -> tasks_v2.Task:
    task = tasks_v2.Task(http_request=tasks_v2.HttpRequest(
        url=url, body=body, headers={"Content-Type": "application/json"}))
    if eta is not None:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(eta)
        task.schedule_time = ts
    return task


def test_precreated_queue_is_listed(client):
    names = [q.name for q in client.list_queues(parent=PARENT)]
    assert PRECREATED in names


def test_http_task_dispatch_headers_body_and_schedule(client, receiver):
    queue = _new_queue(client)
    body = json.dumps({"kind": "hold.expire", "id": "h-1"}).encode()
    schedule_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(schedule_at)
    task = client.create_task(
        parent=queue,
        task=tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                http_method=tasks_v2.HttpMethod.POST,
                url=f"{receiver.url}/_fn/platform_tasks?x=1",
                headers={
                    "Authorization": "Bearer local-task-secret",
                    "Content-Type": "application/json",
                    "X-Payloom-Probe": "forwarded",
                },
                body=body,
            ),
            schedule_time=ts,
        ),
    )
    assert task.name.startswith(f"{queue}/tasks/")

    got = receiver.wait_for(1)
    assert len(got) == 1, "task was not dispatched"
    req = got[0]
    # schedule_time honoured: not delivered before it
    assert req["at"] >= schedule_at.timestamp(), (req["at"], schedule_at.timestamp())
    assert req["at"] - schedule_at.timestamp() < 5
    assert req["method"] == "POST"
    assert req["path"] == "/_fn/platform_tasks?x=1"
    assert req["body"] == body
    h = req["headers"]
    # the task's own headers are forwarded verbatim (values; names are case-insensitive)
    assert h["authorization"] == "Bearer local-task-secret"
    assert h["content-type"] == "application/json"
    assert h["x-payloom-probe"] == "forwarded"
    # service headers: NB the emulator sends the FULL queue path; real Cloud Tasks the short id
    assert h["x-cloudtasks-queuename"] == queue
    assert h["x-cloudtasks-taskname"] == task.name.rsplit("/", 1)[-1]
    assert h["x-cloudtasks-taskretrycount"] == "0"
    assert h["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(h["x-cloudtasks-tasketa"]) == pytest.approx(schedule_at.timestamp(), abs=0.001)
    # no OIDC, no Google user agent
    assert h["user-agent"].startswith("Python-urllib/")


def test_failed_dispatch_is_retried_quickly(client, receiver):
    queue = _new_queue(client)
    receiver.statuses = [503]
    client.create_task(
        parent=queue,
        task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(
            url=f"{receiver.url}/retry", body=b"{}",
            headers={"Content-Type": "application/json"},
        )),
    )
    got = receiver.wait_for(2)
    assert [r["status"] for r in got[:2]] == [503, 200]
    assert got[1]["headers"]["x-cloudtasks-taskretrycount"] == "1"
    assert got[1]["at"] - got[0]["at"] < 2  # queue retry config is ignored: ~0.1 s loop
    time.sleep(0.5)
    assert len(receiver.requests) == 2  # success ends it


def test_task_without_content_type_gets_urllib_default(client, receiver):
    # Real Cloud Tasks sends no/opaque Content-Type; the emulator's urllib adds a form type.
    # Our enqueue adapter must always set Content-Type itself.
    queue = _new_queue(client)
    client.create_task(parent=queue, task=tasks_v2.Task(
        http_request=tasks_v2.HttpRequest(url=f"{receiver.url}/ct", body=b"{}")))
    got = receiver.wait_for(1)
    assert got[0]["headers"]["content-type"] == "application/x-www-form-urlencoded"


def _non_loopback_addresses() -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # UDP connect: picks a source address, sends nothing
                addr = s.getsockname()[0]
        except OSError:
            continue
        if not (addr.startswith("127.") or addr in ("::1", "0.0.0.0", "::")):
            found.append((family, addr))
    return found


def _can_connect(family: int, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def test_listens_on_loopback_only(emulator):
    assert emulator.host == "127.0.0.1"
    assert _can_connect(socket.AF_INET, "127.0.0.1", emulator.port)

    addresses = _non_loopback_addresses()
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Hltn", f"sport = :{emulator.port}"],
                             capture_output=True, text=True, check=True).stdout
        local = [line.split()[3] for line in out.splitlines() if line.strip()]
        assert local, f"nothing listening on {emulator.port}?\n{out}"
        for addr in local:
            host = addr.rsplit(":", 1)[0]
            assert host in ("127.0.0.1", "[::ffff:127.0.0.1]"), f"listening on {addr}"
    elif not addresses:
        pytest.skip("neither ss nor a non-loopback address to check the binding with")

    for family, addr in addresses:
        # control: a wildcard listener IS reachable on this address, so the check can fail
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            probe.listen(1)
            assert _can_connect(family, addr, probe.getsockname()[1])
        assert not _can_connect(family, addr, emulator.port), f"reachable via {addr}"


def test_ensure_venv_is_idempotent_and_fast(emulator):
    started = time.monotonic()
    python = tasks_emulator.ensure_venv()
    assert time.monotonic() - started < 1.0
    assert python == str(tasks_emulator.venv_python())


def test_queue_paths_from_manifest():
    manifest = {"project": "payloom", "region": "europe-west1",
                "queues": {"default": {}, "ledger": {}}}
    assert tasks_emulator.manifest_queue_paths(manifest, project="demo-payloom") == [
        "projects/demo-payloom/locations/europe-west1/queues/default",
        "projects/demo-payloom/locations/europe-west1/queues/ledger",
    ]


def test_log_stays_small_while_delayed_tasks_wait(tmp_path, receiver):
    """Upstream logged two lines per waiting task every 0.1 s (436 MB in 14 minutes): the stack
    runs the emulator at INFO, so that is what this test does too."""
    log_path = tmp_path / "tasks.log"
    with open(log_path, "wb") as log, tasks_emulator.launch(port=0, queues=[PRECREATED], quiet=False,
                                                            stderr=log) as proc:
        channel = grpc.insecure_channel(proc.address)
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(datetime.now(timezone.utc) + timedelta(minutes=10))
        for i in range(5):
            client.create_task(parent=PRECREATED, task=tasks_v2.Task(
                http_request=tasks_v2.HttpRequest(http_method=tasks_v2.HttpMethod.POST,
                                                  url=f"{receiver.url}/later/{i}"),
                schedule_time=ts))
        time.sleep(3)  # ~30 polls of 5 waiting tasks: ~300 lines before the filter
        channel.close()
        text = log_path.read_text(errors="replace")
    assert text.count("Created task") == 5  # real events are still logged
    assert "Processing next task" not in text and "scheduled for future execution" not in text
    assert len(text.encode()) < 4000, len(text.encode())
    assert receiver.requests == []


# -- concurrent dispatch (upstream: one task at a time per queue) ---------------------------------

def test_slow_target_does_not_hold_up_the_next_task(client, receiver):
    queue = _new_queue(client)
    receiver.delays["/slow"] = 2.0
    client.create_task(parent=queue, task=_task(f"{receiver.url}/slow"))
    client.create_task(parent=queue, task=_task(f"{receiver.url}/fast"))
    done = receiver.wait_done(2)
    # upstream dispatched /fast only after /slow had answered: the order proves the overlap
    assert done == ["/fast", "/slow"], done
    slow, fast = sorted(receiver.requests, key=lambda r: r["path"] != "/slow")
    assert fast["at"] - slow["at"] < 1.0  # /fast started while /slow was still running
    assert receiver.max_active == 2


def test_fifty_tasks_each_dispatched_exactly_once(client, receiver):
    queue = _new_queue(client)
    for i in range(50):
        receiver.delays[f"/t/{i}"] = 0.05
    # created from 5 threads while the first ones are already being dispatched
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda i: client.create_task(parent=queue, task=_task(
            f"{receiver.url}/t/{i}", json.dumps({"i": i}).encode())), range(50)))
    got = receiver.wait_for(50)
    receiver.wait_done(50)
    time.sleep(0.5)  # nothing more arrives
    assert len(receiver.requests) == 50
    assert sorted(r["path"] for r in receiver.requests) == sorted(f"/t/{i}" for i in range(50))
    assert sorted(json.loads(r["body"])["i"] for r in got) == list(range(50))
    assert all(r["headers"]["x-cloudtasks-taskretrycount"] == "0" for r in receiver.requests)
    assert 1 < receiver.max_active <= tasks_emulator.DEFAULT_MAX_CONCURRENT_DISPATCHES
    assert list(client.list_tasks(parent=queue)) == []


def test_queue_max_concurrent_dispatches_is_honoured(client, receiver):
    queue = _new_queue(client, max_concurrent_dispatches=3)
    for i in range(12):
        receiver.delays[f"/c/{i}"] = 0.2
        client.create_task(parent=queue, task=_task(f"{receiver.url}/c/{i}"))
    receiver.wait_done(12)
    assert len(receiver.requests) == 12
    assert receiver.max_active == 3


def test_concurrent_failures_are_retried_once_each(client, receiver):
    queue = _new_queue(client)
    paths = [f"/f/{i}" for i in range(20)]
    receiver.fail_first.update(paths)
    for path in paths:
        receiver.delays[path] = 0.02
        client.create_task(parent=queue, task=_task(f"{receiver.url}{path}"))
    receiver.wait_for(40)
    time.sleep(0.5)
    by_path: dict[str, list[dict]] = {}
    for r in receiver.requests:
        by_path.setdefault(r["path"], []).append(r)
    assert sorted(by_path) == sorted(paths) and all(len(v) == 2 for v in by_path.values())
    for attempts in by_path.values():
        assert [a["status"] for a in attempts] == [503, 200]
        counts = [int(a["headers"]["x-cloudtasks-taskretrycount"]) for a in attempts]
        # one failure, one retry; a dispatch the loaded machine could not even connect (a
        # reset, so never recorded) would be retried too and only raise the second count
        assert counts[0] == 0 and counts[1] >= 1


def test_failing_task_gives_up_after_max_retries(client, receiver):
    queue = _new_queue(client)
    receiver.statuses = [500] * 10
    client.create_task(parent=queue, task=_task(f"{receiver.url}/always-500"))
    receiver.wait_for(4)
    time.sleep(0.8)
    assert len(receiver.requests) == 4  # --max-retries 3: four attempts, then dropped
    assert list(client.list_tasks(parent=queue)) == []


def test_task_not_yet_due_does_not_block_a_due_one(client, receiver):
    queue = _new_queue(client)
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    client.create_task(parent=queue, task=_task(f"{receiver.url}/later", eta=later))
    client.create_task(parent=queue, task=_task(f"{receiver.url}/now"))
    got = receiver.wait_for(2)
    assert [r["path"] for r in got] == ["/now", "/later"]
    assert got[1]["at"] >= later.timestamp()
    assert got[0]["at"] < later.timestamp() - 1


def test_run_task_dispatches_a_future_task_now(client, receiver):
    queue = _new_queue(client)
    task = client.create_task(parent=queue, task=_task(
        f"{receiver.url}/forced", eta=datetime.now(timezone.utc) + timedelta(minutes=10)))
    assert [t.name for t in client.list_tasks(parent=queue)] == [task.name]
    ran = client.run_task(name=task.name)
    assert ran.name == task.name and ran.dispatch_count == 1
    assert [r["path"] for r in receiver.wait_for(1)] == ["/forced"]
    assert list(client.list_tasks(parent=queue)) == []
    with pytest.raises(Exception, match="not found|NOT_FOUND|Task not found"):
        client.run_task(name=task.name)


def test_deleting_a_queue_while_its_task_is_in_flight(client, receiver):
    queue = _new_queue(client)
    receiver.delays["/inflight"] = 1.0
    receiver.statuses = [503]
    client.create_task(parent=queue, task=_task(f"{receiver.url}/inflight"))
    receiver.wait_for(1)
    client.delete_queue(name=queue)
    receiver.wait_done(1)
    time.sleep(0.5)
    assert len(receiver.requests) == 1  # its failure found no queue to go back to
    other = _new_queue(client)  # the dispatcher is still alive
    client.create_task(parent=other, task=_task(f"{receiver.url}/after"))
    assert receiver.wait_for(2)[-1]["path"] == "/after"
