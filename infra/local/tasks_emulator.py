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

Upstream ``APIThread.run`` hard-codes ``[::]:<port>`` (all interfaces) and ignores its ``host``
argument. We replace ``gcloud_tasks_emulator.server.APIThread`` with a subclass whose ``run`` binds
``127.0.0.1:<port>`` before ``create_server`` builds the server; nothing else of the package is
changed. Facts about the emulator's dispatch behaviour are recorded in
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
    parser.add_argument("--quiet", action="store_true", help="log errors only")
    args = parser.parse_args(argv)
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

    upstream.APIThread = LoopbackAPIThread  # Server.__init__ looks the name up at call time

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
