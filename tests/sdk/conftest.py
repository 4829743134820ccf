"""SDK test wiring: ``sdk/python`` on sys.path (until requirements-dev installs it with
``-e sdk/python``), merchants and API keys made like the payments tests make them, and SDK
clients pointed at the in-process gateway. A tiny scripted HTTP server (``StubServer``) serves
the transport tests that need answers the real API would not give on demand (503, 429)."""
from __future__ import annotations

import http.server
import json
import pathlib
import sys
import threading
from typing import Any

import pytest

SDK = pathlib.Path(__file__).resolve().parents[2] / "sdk" / "python"
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))

from tests.payments.conftest import api_key, make_merchant  # noqa: E402,F401  (fixtures)


class StubServer:
    """Answers from a script: each request pops the next ``(status, headers, body)`` (the last
    one repeats); records method, path, headers and body of every request."""

    def __init__(self):
        self.script: list[tuple[int, dict[str, str], Any]] = [(200, {}, {"object": "ok"})]
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with stub.lock:
                    stub.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers), "body": body})
                    status, headers, payload = (stub.script.pop(0) if len(stub.script) > 1
                                                else stub.script[0])
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, *responses: tuple[int, dict[str, str], Any]) -> None:
        with self.lock:
            self.script = list(responses)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> list[float]:
    """The delays a client asked to sleep (tests assert the back-off, never wall time)."""
    return []


@pytest.fixture
def stub_client(stub, sleeps):
    import payloom

    def make(**kw):
        return payloom.Client(kw.pop("api_key", "sk_test_" + "a" * 43), api_base=stub.url,
                              sleep=sleeps.append, **kw)
    return make


@pytest.fixture
def sdk(inprocess_gateway, make_merchant, api_key):  # noqa: F811  (the imported fixtures)
    """``sdk(scopes=..., livemode=False, merchant=None)`` → (payloom.Client, merchant id): a
    client with a real API key of a (new) merchant, on the in-process gateway."""
    import payloom

    def make(scopes=("payments:read", "payments:write"), livemode=False, merchant=None, **kw):
        mch = merchant or make_merchant(("owner",)).id
        secret = api_key(mch, scopes=scopes, livemode=livemode)
        return payloom.Client(secret, api_base=inprocess_gateway, **kw), mch
    return make
