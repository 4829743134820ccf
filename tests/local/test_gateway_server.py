"""The local gateway as `make run` serves it: gunicorn, several workers, loopback only.

- gunicorn's own refusals (414 over-long URL, 431 over-large headers, 400 malformed) are the
  error envelope, not HTML;
- a worker that dies takes only its own connections with it: the others keep serving, and the
  master replaces it.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from infra.local.stack import Ports, Stack, gateway_argv

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def gateway():
    stack = Stack(Ports.free(), project_id="demo-gateway-server", components=("firestore", "gateway")).start()
    try:
        yield stack
    finally:
        stack.stop()


def _workers(stack) -> list[int]:
    master = stack.procs[-1].popen.pid
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _request(port: int, method: str, path: str, headers=None, conn=None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.getheader("Content-Type"), resp.read()


def _envelope(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert set(error) == {"type", "code", "message", "param"}
    return error


def test_argv_binds_loopback_with_several_workers():
    argv = gateway_argv(8000)
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8000"
    assert int(argv[argv.index("--workers") + 1]) >= 2
    assert int(gateway_argv(8000, workers=1)[argv.index("--workers") + 1]) >= 2


def test_server_level_refusals_are_envelopes(gateway):
    port = gateway.ports.gateway
    status, ctype, body = _request(port, "GET", "/v1/platform/" + "a" * 9000)
    assert (status, ctype) == (414, "application/json") and _envelope(body)["code"] == "uri_too_long"
    status, ctype, body = _request(port, "GET", "/v1/platform/ping", {"X-Big": "b" * 9000})
    assert (status, ctype) == (431, "application/json")
    assert _envelope(body)["code"] == "header_fields_too_large"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /v1/platform/ping HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        reply = raw.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Content-Type: application/json" in head
    assert _envelope(body)["type"] == "invalid_request_error"
    status, ctype, body = _request(port, "GET", "/v1/events/evt_x%0A")
    assert (status, ctype) == (404, "application/json") and _envelope(body)["code"] == "unknown_route"
    assert _request(port, "GET", "/v1/platform/ping")[0] == 200  # the workers survived all that


def _server_pid_of(conn: http.client.HTTPConnection, port: int, workers: list[int]) -> int | None:
    """The worker holding the server side of ``conn`` (Linux: /proc/net/tcp inode -> /proc/<pid>/fd)."""
    client_port = conn.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
                inode = fields[9]
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_a_dying_worker_does_not_take_the_others_connections(gateway):
    port = gateway.ports.gateway
    workers = _workers(gateway)
    assert len(workers) >= 2, workers
    # Open keep-alive connections until two different workers hold some (the others may still
    # be loading the functions right after start-up; whoever accepts first gets the connection).
    by_worker: dict[int, list[http.client.HTTPConnection]] = {}
    deadline = time.monotonic() + 60
    while len(by_worker) < 2 and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        assert _request(port, "GET", "/v1/platform/ping", conn=conn)[0] == 200
        pid = _server_pid_of(conn, port, workers)
        if pid is None:
            conn.close()
        else:
            by_worker.setdefault(pid, []).append(conn)
        time.sleep(0.05)
    assert len(by_worker) >= 2, "connections never spread over two workers"
    victim, survivor = list(by_worker)[:2]
    os.kill(victim, signal.SIGKILL)  # what a SIGSEGV does to the process
    time.sleep(0.3)
    for conn in by_worker[survivor]:  # the same open connections, answered by the live worker
        status, ctype, body = _request(port, "GET", "/v1/platform/ping", conn=conn)
        assert status == 200 and json.loads(body) == {"object": "ping", "ok": True}
    for conn in by_worker[victim]:
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            _request(port, "GET", "/v1/platform/ping", conn=conn)
    # New connections are served meanwhile, and the master replaces the dead worker.
    assert all(_request(port, "GET", "/v1/platform/ping")[0] == 200 for _ in range(10))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _workers(gateway)
        if len(now) == len(workers) and victim not in now:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the master did not replace worker {victim}: {_workers(gateway)}")
    for conns in by_worker.values():
        for conn in conns:
            conn.close()
