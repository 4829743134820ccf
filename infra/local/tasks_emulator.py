"""Local Cloud Tasks: a launcher for PyPI ``gcloud-tasks-emulator`` 0.6.2, bound to loopback.

The emulator pins ``protobuf<5``, so it lives in its own virtualenv, ``.venv-tasks`` at the repo
root, and never in the project's ``.venv``. This file has two halves:

* Launcher side (runs in the project's ``.venv``, stdlib only):
  ``ensure_venv(repo_root) -> python_path`` creates/repairs ``.venv-tasks`` and
  ``launch(...) -> EmulatorProcess`` starts the emulator as a child process in its own process
  group and waits until it listens.
* Server side (runs INSIDE ``.venv-tasks``): ``python infra/local/tasks_emulator.py --port N
  --queue projects/P/locations/L/queues/Q ...``. Started with another interpreter it re-executes
  itself with ``.venv-tasks/bin/python`` (creating the venv first).

Two upstream classes are replaced before ``create_server`` builds the server (it looks the names
up when it is called); nothing else of the package is changed:

* ``APIThread.run`` hard-codes ``[::]:<port>`` (all interfaces) and ignores its ``host``
  argument: our subclass binds ``127.0.0.1:<port>``.
* ``Processor`` dispatches one task at a time per queue, so one slow target held up the whole
  queue: ``_concurrent_dispatch`` dispatches due tasks in parallel (per-queue cap
  ``--max-concurrent-dispatches``, like Cloud Tasks' ``max_concurrent_dispatches``), with
  ``QueueState`` made thread-safe under one lock.

Facts about the emulator's dispatch behaviour are recorded in
docs/decisions/0003-local-simulators.md.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

PACKAGE = "gcloud-tasks-emulator"
VERSION = "0.6.2"
VENV_DIR_NAME = ".venv-tasks"
HOST = "127.0.0.1"
DEFAULT_PORT = 9022
DEFAULT_MAX_RETRIES = 3
# Cloud Tasks' default dispatch deadline for HTTP targets is 10 minutes. Upstream calls urlopen()
# without a timeout, so a hung handler would block its queue forever; we set a socket default.
DEFAULT_DISPATCH_TIMEOUT = 600.0
READY_PREFIX = "payloom-tasks-emulator listening on "
# Real Cloud Tasks dispatches up to a queue's max_concurrent_dispatches at once; upstream does one.
DEFAULT_MAX_CONCURRENT_DISPATCHES = 32
DEFAULT_DISPATCH_THREADS = 64

_MARKER_NAME = ".payloom-installed"
_LOCK_NAME = ".payloom-install.lock"
_REEXEC_GUARD = "PAYLOOM_TASKS_EMULATOR_REEXEC"
_QUEUE_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]+$")

REPO_ROOT = Path(__file__).resolve().parents[2]


class TasksEmulatorUnavailable(RuntimeError):
    """The emulator's virtualenv could not be created (typically: no access to PyPI)."""


# --------------------------------------------------------------------------------------------
# Launcher side (stdlib only)
# --------------------------------------------------------------------------------------------


def venv_dir(repo_root: str | os.PathLike[str] | None = None) -> Path:
    return Path(repo_root or REPO_ROOT) / VENV_DIR_NAME


def venv_python(repo_root: str | os.PathLike[str] | None = None) -> Path:
    return venv_dir(repo_root) / "bin" / "python"


def _is_ready(venv: Path) -> bool:
    python = venv / "bin" / "python"
    marker = venv / _MARKER_NAME
    try:
        return (
            python.exists()
            and os.access(python, os.X_OK)
            and marker.read_text().strip() == f"{PACKAGE}=={VERSION}"
        )
    except OSError:
        return False


def _run_quiet(cmd: Sequence[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TasksEmulatorUnavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise TasksEmulatorUnavailable(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def ensure_venv(repo_root: str | os.PathLike[str] | None = None) -> str:
    """Make sure ``<repo_root>/.venv-tasks`` holds gcloud-tasks-emulator==0.6.2.

    Idempotent and quiet: the fast path only checks a marker file. Concurrent callers are
    serialised with a file lock inside the venv directory. Returns the venv's python path.
    Raises TasksEmulatorUnavailable when the venv cannot be built (e.g. PyPI unreachable).
    """
    import fcntl  # POSIX only, like the rest of the local stack

    venv = venv_dir(repo_root)
    python = venv / "bin" / "python"
    if _is_ready(venv):
        return str(python)

    venv.mkdir(parents=True, exist_ok=True)
    with open(venv / _LOCK_NAME, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(venv):
            return str(python)
        if not python.exists():
            base = shutil.which("python3") or sys.executable
            _run_quiet([base, "-m", "venv", str(venv)], "creating " + VENV_DIR_NAME, 300)
        _run_quiet(
            [
                str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                f"{PACKAGE}=={VERSION}",
            ],
            f"pip install {PACKAGE}=={VERSION}",
            900,
        )
        installed = _run_quiet(
            [
                str(python), "-c",
                "import importlib.metadata as m, gcloud_tasks_emulator.server;"
                f"print(m.version({PACKAGE!r}))",
            ],
            "checking the emulator install",
            120,
        ).strip()
        if installed != VERSION:
            raise TasksEmulatorUnavailable(f"{PACKAGE} {installed} installed, expected {VERSION}")
        (venv / _MARKER_NAME).write_text(f"{PACKAGE}=={VERSION}\n")
    return str(python)


def manifest_queue_paths(
    manifest: Mapping[str, object], *, project: str | None = None, location: str | None = None
) -> list[str]:
    """Full queue paths for every queue in functions/manifest.yaml (already parsed)."""
    project = project or str(manifest["project"])
    location = location or str(manifest["region"])
    queues = manifest.get("queues") or {}
    assert isinstance(queues, Mapping)
    return [f"projects/{project}/locations/{location}/queues/{name}" for name in queues]


@dataclass
class EmulatorProcess:
    """A running emulator child (leader of its own process group)."""

    proc: subprocess.Popen[str]
    host: str
    port: int

    @property
    def address(self) -> str:
        """``host:port`` for ``grpc.insecure_channel``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "EmulatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(
    repo_root: str | os.PathLike[str] | None = None,
    *,
    port: int = 0,
    queues: Iterable[str] = (),
    max_retries: int = DEFAULT_MAX_RETRIES,
    dispatch_timeout: float = DEFAULT_DISPATCH_TIMEOUT,
    max_concurrent_dispatches: int = DEFAULT_MAX_CONCURRENT_DISPATCHES,
    quiet: bool = True,
    stderr: int | object | None = None,
    ready_timeout: float = 30.0,
) -> EmulatorProcess:
    """Start the emulator in ``.venv-tasks`` on 127.0.0.1 and wait until it accepts gRPC.

    ``port=0`` lets the kernel pick a free port; the bound port is read from the child's ready
    line. ``stderr`` is passed to Popen (default: inherit; the emulator logs there).
    """
    python = ensure_venv(repo_root)
    cmd = [
        python, str(Path(__file__).resolve()),
        "--port", str(port),
        "--max-retries", str(max_retries),
        "--dispatch-timeout", str(dispatch_timeout),
        "--max-concurrent-dispatches", str(max_concurrent_dispatches),
    ]
    for queue in queues:
        cmd += ["--queue", queue]
    if quiet:
        cmd.append("--quiet")
    env = dict(os.environ)
    if quiet:  # google-api-core's Python-version FutureWarnings are noise here
        env["PYTHONWARNINGS"] = "ignore::FutureWarning"
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,  # type: ignore[arg-type]
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=str(Path(repo_root or REPO_ROOT)),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + ready_timeout
    buffered = ""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"tasks emulator not ready after {ready_timeout}s")
            readable, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.5))
            if not readable:
                if proc.poll() is not None:
                    raise RuntimeError(f"tasks emulator exited with {proc.returncode}")
                continue
            line = proc.stdout.readline()
            if not line:
                proc.wait(5)
                raise RuntimeError(f"tasks emulator exited with {proc.returncode}: {buffered}")
            if line.startswith(READY_PREFIX):
                host, _, bound = line[len(READY_PREFIX):].strip().rpartition(":")
                return EmulatorProcess(proc=proc, host=host, port=int(bound))
            buffered += line
    except BaseException:
        EmulatorProcess(proc=proc, host=HOST, port=port).stop()
        raise


# --------------------------------------------------------------------------------------------
# Server side (runs inside .venv-tasks)
# --------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cloud Tasks emulator (gcloud-tasks-emulator 0.6.2) bound to 127.0.0.1 only"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"gRPC port on 127.0.0.1 (0 = pick a free one; default {DEFAULT_PORT})")
    parser.add_argument("--queue", action="append", default=[], metavar="QUEUE_PATH",
                        help="queue to pre-create: projects/P/locations/L/queues/Q (repeatable)")
    parser.add_argument("-r", "--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                        help="retries of a failed dispatch, every ~0.1 s (-1 = forever)")
    parser.add_argument("--dispatch-timeout", type=float, default=DEFAULT_DISPATCH_TIMEOUT,
                        help="seconds before a dispatch HTTP request is abandoned (counts as 500)")
    parser.add_argument("--max-concurrent-dispatches", type=int,
                        default=DEFAULT_MAX_CONCURRENT_DISPATCHES,
                        help="tasks of one queue dispatched at once, unless the queue sets "
                             "rate_limits.max_concurrent_dispatches itself "
                             f"(default {DEFAULT_MAX_CONCURRENT_DISPATCHES})")
    parser.add_argument("--dispatch-threads", type=int, default=DEFAULT_DISPATCH_THREADS,
                        help="dispatches in flight across all queues "
                             f"(default {DEFAULT_DISPATCH_THREADS})")
    parser.add_argument("--quiet", action="store_true", help="log errors only")
    args = parser.parse_args(argv)
    if args.max_concurrent_dispatches < 1 or args.dispatch_threads < 1:
        parser.error("--max-concurrent-dispatches and --dispatch-threads must be at least 1")
    for queue in args.queue:
        if not _QUEUE_RE.match(queue):
            parser.error(f"--queue must be projects/P/locations/L/queues/Q, got {queue!r}")
    return args


# Upstream logs two INFO lines per waiting task on every 0.1 s poll ("Processing next task",
# "scheduled for future execution"): a few delayed tasks grew the log by hundreds of MB an hour.
# Only those per-poll lines are dropped; creations, dispatches and failures are still logged.
POLL_NOISE = ("[TASKS] Processing next task", "is scheduled for future execution", "[TASKS] Tasks were:")


def _drop_poll_noise(record) -> bool:  # a logging filter: False drops the record
    return not any(marker in str(record.msg) for marker in POLL_NOISE)


# A failed dispatch goes to the back of its queue and waits for the next pass, as upstream's
# 0.1 s loop did: the retry gap the ADR documents stays ~0.1 s.
RETRY_GAP_SECONDS = 0.1
POLL_SECONDS = 0.1          # ETAs are honoured within this (the dispatcher also wakes on changes)
MIN_SCAN_GAP_SECONDS = 0.005  # a burst of CreateTask calls wakes the dispatcher; scan at most this often


def _concurrent_dispatch(upstream, *, max_concurrent: int, threads: int):  # type: ignore[no-untyped-def]
    """(QueueState, Processor) replacements that dispatch due tasks in parallel.

    Why: upstream runs one thread per queue that dispatches ONE task at a time (blocking
    ``urlopen``), so one slow target (a webhook receiver that hangs until our 15 s timeout)
    delays every other task of its queue. Real Cloud Tasks runs up to the queue's
    ``max_concurrent_dispatches`` at once. Here one dispatcher thread takes due tasks out of the
    queues under one lock and runs them on a shared pool of ``threads`` workers, at most
    ``max_concurrent`` in flight per queue (or the queue's own
    ``rate_limits.max_concurrent_dispatches`` when it sets one). A task is out of its queue's list
    while it is dispatched, so it is never dispatched twice at once; the rest is upstream's
    semantics: success drops it, a 4xx/5xx or connection error puts it at the back of its queue
    (retried after ~0.1 s, at most ``max_retries`` times), a task not yet due stays queued.
    """
    import logging
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime
    from urllib import error
    from urllib.parse import parse_qs

    from google.api_core.exceptions import NotFound
    from google.cloud.tasks_v2 import Attempt, Queue
    from google.protobuf import timestamp_pb2

    log = logging.getLogger("gcloud-tasks-emulator")
    running_state = Queue.State.RUNNING

    def now_ts() -> timestamp_pb2.Timestamp:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(datetime.utcnow())
        return ts

    class LockedQueueState(upstream.QueueState):
        """Upstream's in-memory queues, every read and write of the task lists under ``lock``."""

        def __init__(self, target_host, target_port, max_retries):  # type: ignore[no-untyped-def]
            super().__init__(target_host, target_port, max_retries)
            self.lock = threading.RLock()
            self.changed = threading.Event()     # a task was created or finished: scan again
            self.inflight: dict[str, int] = {}   # queue -> tasks being dispatched now
            # Keyed by id(task), kept only while the task is queued or in flight (an id is
            # never reused while its object is alive). ETA as epoch seconds, read once at
            # creation: proto-plus' datetime conversion on every 0.1 s scan is what costs.
            self._eta: dict[int, float] = {}
            self._retry_at: dict[int, float] = {}  # monotonic time a failed task waits for

        # -- upstream API, made thread-safe --------------------------------------------------
        def create_queue(self, parent, queue):  # type: ignore[no-untyped-def]
            with self.lock:
                return super().create_queue(parent, queue)

        def update_queue(self, queue):  # type: ignore[no-untyped-def]
            with self.lock:
                return super().update_queue(queue)

        def pause_queue(self, queue_name):  # type: ignore[no-untyped-def]
            with self.lock:
                return super().pause_queue(queue_name)

        def resume_queue(self, queue_name):  # type: ignore[no-untyped-def]
            with self.lock:
                result = super().resume_queue(queue_name)
            self.changed.set()
            return result

        def purge_queue(self, queue_name):  # type: ignore[no-untyped-def]
            with self.lock:
                self._forget(self._queue_tasks.get(queue_name, ()))
                return super().purge_queue(queue_name)

        def delete_queue(self, name):  # type: ignore[no-untyped-def]
            with self.lock:
                self._forget(self._queue_tasks.get(name, ()))
                super().delete_queue(name)

        def list_tasks(self, queue_name):  # type: ignore[no-untyped-def]
            with self.lock:
                return list(super().list_tasks(queue_name))

        def queue_names(self):  # type: ignore[no-untyped-def]
            with self.lock:
                return super().queue_names()

        def queues(self):  # type: ignore[no-untyped-def]
            with self.lock:
                return super().queues()

        def create_task(self, queue, task):  # type: ignore[no-untyped-def]
            eta = task.schedule_time.timestamp() if task.schedule_time else 0.0
            with self.lock:
                created = super().create_task(queue, task)
                self._eta[id(created)] = eta
            self.changed.set()
            return created

        def submit_task(self, task_name, force_run=False):  # type: ignore[no-untyped-def]
            """RunTask: dispatch one named task now, in the caller's thread (as upstream)."""
            port = self._target_port
            if "?" in task_name:
                task_name, _, qs = task_name.partition("?")
                port = int(parse_qs(qs).get("port", [port])[0])
            queue_name = task_name.rsplit("/", 2)[0]
            with self.lock:
                tasks = self._queue_tasks.get(queue_name)
                if tasks is None:
                    raise ValueError(f"'{queue_name}' is not a valid queue name.")
                for i, task in enumerate(tasks):
                    if task.name == task_name:
                        break
                else:
                    raise NotFound(f"Task not found: {task_name}")
                if not force_run and self._eta.get(id(task), 0.0) > time.time():
                    return task
                tasks.pop(i)
                self.inflight[queue_name] = self.inflight.get(queue_name, 0) + 1
            self.finish(queue_name, task, self.dispatch(queue_name, task, port))
            return task

        # -- concurrent dispatch -----------------------------------------------------------------
        def _forget(self, tasks) -> None:  # type: ignore[no-untyped-def]
            for task in tasks:
                self._eta.pop(id(task), None)
                self._retry_at.pop(id(task), None)

        def _cap(self, queue) -> int:  # type: ignore[no-untyped-def]
            own = queue.rate_limits.max_concurrent_dispatches
            return own if own > 0 else max_concurrent

        def take_due(self, budget: int) -> list[tuple[str, object]]:
            """Remove and return up to ``budget`` due tasks (queue order, per-queue caps);
            they count as in flight until ``finish``."""
            taken: list[tuple[str, object]] = []
            wall, mono = time.time(), time.monotonic()
            with self.lock:
                for queue_name, tasks in self._queue_tasks.items():
                    if budget <= 0:
                        break
                    queue = self._queues.get(queue_name)
                    if not tasks or queue is None or queue.state != running_state:
                        continue
                    free = min(budget, self._cap(queue) - self.inflight.get(queue_name, 0))
                    picked = []
                    for i, task in enumerate(tasks):
                        if len(picked) >= free:
                            break
                        key = id(task)
                        if self._eta.get(key, 0.0) <= wall and self._retry_at.get(key, 0.0) <= mono:
                            picked.append(i)
                    if not picked:
                        continue
                    chosen = set(picked)
                    taken += [(queue_name, tasks[i]) for i in picked]
                    tasks[:] = [t for i, t in enumerate(tasks) if i not in chosen]
                    self.inflight[queue_name] = self.inflight.get(queue_name, 0) + len(picked)
                    budget -= len(picked)
            return taken

        def dispatch(self, queue_name: str, task, port: int | None = None) -> int:  # type: ignore[no-untyped-def]
            """Send one task (outside the lock); the answer's status, 500 for a transport error.
            Only this thread touches ``task`` until ``finish``."""
            schedule_time, dispatch_time = now_ts(), None
            task.dispatch_count += 1
            try:
                dispatch_time = now_ts()
                response = upstream._make_task_request(
                    queue_name, task, self._target_host, self._target_port if port is None else port)
            except error.HTTPError as e:
                status = e.code
                e.close()
                log.error("[TASKS] Error submitting task %s, reason: %s", task.name, e.reason)
            except (ConnectionError, error.URLError) as e:
                status = 500
                log.error("[TASKS] Error submitting task %s, reason: %s: %s",
                          task.name, type(e).__name__, getattr(e, "reason", e))
            except Exception:  # noqa: BLE001 - e.g. a socket timeout: counts as a failure
                status = 500
                log.exception("[TASKS] Unexpected exception while submitting task %s.", task.name)
            else:
                status = response.status
                response.close()
            attempt = Attempt(schedule_time=schedule_time, dispatch_time=dispatch_time,
                              response_status={"code": status})
            task.first_attempt = task.first_attempt or attempt
            task.last_attempt = attempt
            return status

        def finish(self, queue_name: str, task, status: int) -> None:  # type: ignore[no-untyped-def]
            """Back to the end of its queue after a failure with retries left; else forgotten."""
            retry = 400 <= status < 600 and (
                self._max_retries < 0 or task.dispatch_count <= self._max_retries)
            with self.lock:
                self.inflight[queue_name] = max(0, self.inflight.get(queue_name, 0) - 1)
                tasks = self._queue_tasks.get(queue_name)
                if retry and tasks is not None:
                    log.info("[TASKS] Moving failed task %s to the back of the queue.", task.name)
                    self._retry_at[id(task)] = time.monotonic() + RETRY_GAP_SECONDS
                    tasks.append(task)
                else:
                    if retry:
                        log.info("[TASKS] Queue of task %s is gone; dropping it", task.name)
                    elif 400 <= status < 600:
                        log.info("[TASKS] Giving up failed task %s", task.name)
                    self._forget((task,))
            self.changed.set()

    class ConcurrentProcessor(threading.Thread):
        """Replaces upstream's Processor (a thread per queue, one dispatch at a time)."""

        def __init__(self, state: LockedQueueState) -> None:
            super().__init__(name="tasks-dispatcher", daemon=True)
            self._state = state
            self._running = threading.Event()
            self._busy = 0  # workers dispatching now: a task is taken only for a free worker
            self._busy_lock = threading.Lock()
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dispatch")

        def run(self) -> None:
            self._running.set()
            log.info("[PROCESSOR] Starting concurrent task dispatcher (%s workers, %s per queue)",
                     threads, max_concurrent)
            state, last_scan = self._state, 0.0
            while self._running.is_set():
                gap = MIN_SCAN_GAP_SECONDS - (time.monotonic() - last_scan)
                if gap > 0:
                    time.sleep(gap)
                state.changed.clear()
                last_scan = time.monotonic()
                with self._busy_lock:
                    free = threads - self._busy
                batch = state.take_due(free) if free > 0 else []
                with self._busy_lock:
                    self._busy += len(batch)
                for queue_name, task in batch:
                    self._pool.submit(self._dispatch, queue_name, task)
                state.changed.wait(POLL_SECONDS)

        def _dispatch(self, queue_name: str, task) -> None:  # type: ignore[no-untyped-def]
            status = 500
            try:
                status = self._state.dispatch(queue_name, task)
            except Exception:  # noqa: BLE001 - never lose the task or the worker slot
                log.exception("[TASKS] dispatch of %s crashed", task.name)
            finally:
                with self._busy_lock:
                    self._busy -= 1
                self._state.finish(queue_name, task, status)

        def join(self, timeout=None):  # type: ignore[no-untyped-def]
            self._running.clear()
            self._state.changed.set()
            self._pool.shutdown(wait=False, cancel_futures=True)
            super().join(timeout)

    return LockedQueueState, ConcurrentProcessor


def _serve(args: argparse.Namespace) -> int:
    import logging
    import socket
    import threading
    from concurrent import futures

    import grpc
    from gcloud_tasks_emulator import server as upstream

    log = logging.getLogger("gcloud-tasks-emulator")

    class LoopbackAPIThread(upstream.APIThread):
        """Upstream APIThread, except that it binds ``<host>:<port>`` instead of ``[::]:<port>``."""

        def __init__(self, state, host, port, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(state, host, port, *a, **kw)
            self.daemon = True
            self._bind_host = host
            self.bound_port: int | None = None
            self.error: BaseException | None = None
            self.ready = threading.Event()

        def run(self) -> None:
            try:
                self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
                upstream.add_CloudTasksServicer_to_server(
                    upstream.Greeter(self._state), self._httpd
                )
                address = f"{self._bind_host}:{self._port}"
                bound = self._httpd.add_insecure_port(address)
                if not bound:
                    raise OSError(f"could not bind {address}")
                self._httpd.start()
                self.bound_port = bound
                log.info("[API] Started API server at %s:%s", self._bind_host, bound)
            except BaseException as exc:  # reported by the main thread
                self.error = exc
            finally:
                self.ready.set()

    upstream.APIThread = LoopbackAPIThread  # Server.__init__ looks the names up at call time
    upstream.QueueState, upstream.Processor = _concurrent_dispatch(
        upstream, max_concurrent=args.max_concurrent_dispatches, threads=args.dispatch_threads)

    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_drop_poll_noise)
    root.addHandler(handler)
    root.setLevel(logging.ERROR if args.quiet else logging.INFO)

    # Dispatch uses urllib.request.urlopen() without a timeout; gRPC's sockets are unaffected.
    socket.setdefaulttimeout(args.dispatch_timeout)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    srv = upstream.create_server(
        HOST, args.port,
        default_queue_names=list(dict.fromkeys(args.queue)),
        max_retries=args.max_retries,
    )
    srv.start()
    api = srv._api
    assert isinstance(api, LoopbackAPIThread)
    if not api.ready.wait(30) or api.error is not None or api.bound_port is None:
        print(f"tasks emulator failed to start: {api.error!r}", file=sys.stderr, flush=True)
        os._exit(1)
    print(f"{READY_PREFIX}{HOST}:{api.bound_port}", flush=True)
    sys.stdout = sys.stderr  # the launcher stops reading stdout after the ready line
    while not stop.wait(0.5):
        pass
    try:
        srv.stop()
    finally:
        sys.stderr.flush()
        # Upstream's per-queue threads are non-daemon and may sit in a dispatch; don't wait.
        os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse_args(argv)
    try:
        import gcloud_tasks_emulator.server  # noqa: F401
    except ImportError:
        if os.environ.get(_REEXEC_GUARD):
            print(f"{PACKAGE} is not importable in {sys.executable}", file=sys.stderr)
            return 2
        python = ensure_venv()
        env = dict(os.environ, **{_REEXEC_GUARD: "1"})
        os.execve(python, [python, str(Path(__file__).resolve()), *argv], env)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
