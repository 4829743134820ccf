"""infra/local/simserver.py: the plumbing every loopback simulator is built on."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from infra.local import email_sim, fcm_sim, oidc_sim, simserver, sms_sim
from infra.local.simserver import (
    HOST,
    InboxServer,
    LoopbackHandler,
    LoopbackServer,
    parse_form,
    serve_cli,
    start_in_thread,
)


class _Handler(LoopbackHandler):
    """A minimal simulator: POST /deliver puts the JSON body in the inbox."""

    server: "_Server"
    default_headers = {"X-Sim": "test"}
    cleared_response = (204, None)

    def do_GET(self) -> None:  # noqa: N802
        if not self.serve_inbox_get():
            self.json_response(404, {"error": "nope"})

    def do_DELETE(self) -> None:  # noqa: N802
        if not self.serve_inbox_delete():
            self.json_response(404, {"error": "nope"})

    def do_POST(self) -> None:  # noqa: N802
        entry = json.loads(self.read_body() or b"null")
        self.server._deliver(entry)
        self.json_response(202, None, {"X-Count": str(len(self.server.inbox()))})


class _Server(InboxServer):
    inbox_field = "to"
    inbox_fold_case = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(port, _Handler)
        self.resets = 0

    def _reset_state(self) -> None:
        self.resets += 1


@pytest.fixture
def sim():
    server, base_url = start_in_thread(_Server(), "test-sim")
    yield server, base_url
    server.stop()


def _call(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# -- loopback only ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: _Server(),
    lambda: fcm_sim.FcmSimServer(),
    lambda: email_sim.EmailSimServer(),
    lambda: sms_sim.SmsSimServer(),
    lambda: oidc_sim.OidcSimServer(),
], ids=["base", "fcm", "email", "sms", "oidc"])
def test_every_simulator_binds_to_loopback_only(make):
    server = make()
    try:
        assert isinstance(server, LoopbackServer)
        host, port = server.server_address[:2]
        assert host == HOST == "127.0.0.1"
        assert port != 0  # port 0 picked a free port
        assert server.base_url == f"http://127.0.0.1:{port}"
    finally:
        server.server_close()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_not_reachable_on_other_interfaces(sim):
    server, _ = sim
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with pytest.raises(OSError):
        socket.create_connection((address, server.server_address[1]), timeout=1).close()


# -- inbox -----------------------------------------------------------------------------------------

def test_inbox_filters_on_the_inbox_field(sim):
    server, base_url = sim
    for to in ("A@x.io", "b@x.io", "a@X.IO"):
        assert _call("POST", f"{base_url}/deliver", {"to": to})[0] == 202
    assert [m["to"] for m in server.inbox()] == ["A@x.io", "b@x.io", "a@X.IO"]
    assert [m["to"] for m in server.inbox("a@x.io")] == ["A@x.io", "a@X.IO"]  # folded case
    status, headers, body = _call("GET", f"{base_url}/_inbox?to=B@X.IO")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == [{"to": "b@x.io"}]
    assert json.loads(_call("GET", f"{base_url}/_inbox")[2]) == server.inbox()


def test_inbox_matches_exactly_unless_folding():
    server = InboxServer(0, _Handler)
    try:
        server._deliver({"to": "+1555"}, {"to": "+1556"}, {"token": "t"})
        assert server.inbox("+1555") == [{"to": "+1555"}]
        server.inbox_field = "token"
        assert server.inbox("t") == [{"token": "t"}]
        assert server.inbox("T") == []
    finally:
        server.server_close()


def test_inbox_returns_a_copy(sim):
    server, _ = sim
    server._deliver({"to": "x@y.z"})
    server.inbox().clear()
    assert len(server.inbox()) == 1


def test_clear_empties_inbox_failures_and_subclass_state(sim):
    server, base_url = sim
    server._deliver({"to": "x@y.z"})
    assert server._first_failure("k") is True
    assert server._first_failure("k") is False  # fails once, then succeeds
    status, headers, body = _call("DELETE", f"{base_url}/_inbox")
    assert (status, body) == (204, b"") and "Content-Type" not in headers
    assert server.inbox() == [] and server.resets == 1
    assert server._first_failure("k") is True  # forgotten by clear()


def test_inbox_is_thread_safe(sim):
    server, base_url = sim
    writers, per_writer, posts = 8, 200, 40
    stop = threading.Event()
    seen: list[list[int]] = [[], []]

    def write(w: int) -> None:
        for i in range(per_writer):
            server._deliver({"to": f"w{w}", "i": i})

    def post(n: int) -> int:  # over HTTP: each request on its own server thread
        return _call("POST", f"{base_url}/deliver", {"to": "http", "n": n})[0]

    def read(sizes: list[int]) -> None:
        while not stop.is_set():
            sizes.append(len(server.inbox()))

    readers = [threading.Thread(target=read, args=(sizes,)) for sizes in seen]
    for r in readers:
        r.start()
    with ThreadPoolExecutor(16) as pool:
        written = [pool.submit(write, w) for w in range(writers)]
        posted = [pool.submit(post, n) for n in range(posts)]
        for f in written:
            f.result()
        codes = [f.result() for f in posted]
    stop.set()
    for r in readers:
        r.join()
    assert codes == [202] * posts
    assert len(server.inbox()) == writers * per_writer + posts
    for w in range(writers):
        assert [m["i"] for m in server.inbox(f"w{w}")] == list(range(per_writer))  # order kept
    assert sorted(m["n"] for m in server.inbox("http")) == list(range(posts))
    for sizes in seen:
        assert sizes == sorted(sizes)  # each reader only ever saw the inbox grow


# -- handler helpers -------------------------------------------------------------------------------

def test_health_default_headers_and_empty_json_body(sim):
    _, base_url = sim
    status, headers, body = _call("GET", f"{base_url}/_health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["X-Sim"] == "test" and headers["Content-Length"] == str(len(body))
    status, headers, body = _call("POST", f"{base_url}/deliver", {"to": "a@b.c"})
    assert (status, body, headers["X-Count"]) == (202, b"", "1")
    assert "Content-Type" not in headers
    assert _call("GET", f"{base_url}/elsewhere")[0] == 404


def test_keep_alive_survives_a_body_on_delete(sim):
    server, _ = sim
    conn = http.client.HTTPConnection(HOST, server.server_address[1], timeout=5)
    try:
        for path in ("/unknown", "/_inbox"):
            conn.request("DELETE", path, body=b'{"ignored": true}')
            resp = conn.getresponse()
            resp.read()
            assert resp.status == (404 if path == "/unknown" else 204)
        conn.request("GET", "/_health")  # same connection: the bodies above were drained
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (200, {"status": "ok"})
    finally:
        conn.close()


def test_parse_form_keeps_blanks_and_first_values():
    assert parse_form(b"To=%2B855&Body=&To=ignored&x=a+b") == {"To": "+855", "Body": "", "x": "a b"}


# -- start / stop ----------------------------------------------------------------------------------

def test_start_in_thread_and_stop():
    server, base_url = start_in_thread(_Server(), "test-sim-lifecycle")
    thread = server._thread
    assert thread is not None and thread.daemon and thread.name == "test-sim-lifecycle"
    assert thread.is_alive()
    assert base_url == server.base_url
    assert _call("GET", f"{base_url}/_health")[0] == 200
    server.stop()
    assert not thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection((HOST, server.server_address[1]), timeout=1).close()


@pytest.mark.parametrize("module", [fcm_sim, email_sim, sms_sim, oidc_sim],
                         ids=["fcm", "email", "sms", "oidc"])
def test_simulator_start_and_stop(module):
    server, base_url = module.start()
    assert isinstance(server, LoopbackServer)
    assert base_url.startswith("http://127.0.0.1:")
    assert server._thread.is_alive()
    server.stop()
    assert not server._thread.is_alive()


def test_serve_cli_parses_flags_prints_banner_and_closes(capsys):
    built: list[LoopbackServer] = []

    def make(args) -> LoopbackServer:
        assert (args.port, args.colour) == (0, "blue")
        server = _Server(args.port)
        built.append(server)
        threading.Timer(0.2, server.shutdown).start()  # ends serve_forever
        return server

    code = serve_cli(make, description="test", default_port=1,
                     add_arguments=lambda p: p.add_argument("--colour"),
                     banner=lambda s: f"test sim on {s.base_url}",
                     argv=["--port", "0", "--colour", "blue"])
    assert code == 0
    assert capsys.readouterr().out == f"test sim on {built[0].base_url}\n"
    assert built[0].socket.fileno() == -1  # server_close() ran


@pytest.mark.parametrize("module, argv, expected", [
    (fcm_sim, [], "fcm sim listening on http://127.0.0.1:"),
    (email_sim, [], "email sim listening on http://127.0.0.1:"),
    (sms_sim, ["--account-sid", "ACcli", "--auth-token", "tok"], "(account ACcli)"),
    (oidc_sim, ["--client", "google:cid:secret"], "oidc simulator on http://127.0.0.1:"),
], ids=["fcm", "email", "sms", "oidc"])
def test_simulator_cli_flags(module, argv, expected, monkeypatch, capsys):
    made: list[LoopbackServer] = []

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        made.append(self)
        raise KeyboardInterrupt  # as Ctrl-C would

    monkeypatch.setattr(simserver.LoopbackServer, "serve_forever", serve_forever)
    module.main(["--port", "0", *argv])
    assert expected in capsys.readouterr().out
    [server] = made
    assert server.server_address[0] == HOST
    if module is sms_sim:
        assert (server.account_sid, server.auth_token) == ("ACcli", "tok")
    if module is oidc_sim:
        assert server._client("google", "cid")["secret"] == "secret"
