"""The HTTP plumbing shared by the loopback third-party simulators in infra/local/.

Why this module: fcm_sim, email_sim, sms_sim and oidc_sim each used to carry their own copy of
the same server code: a ThreadingHTTPServer bound to 127.0.0.1, a locked inbox with
``inbox()``/``clear()``, JSON replies, reading the request body, ``start(port=0)`` serving in a
daemon thread, ``stop()`` and a ``--port`` CLI. It lives here once, so a fix (to the loopback
bind, to shutdown, to keep-alive) reaches every simulator, and each simulator file keeps only
the provider protocol it imitates.

* ``LoopbackServer``: bound to ``HOST`` only, ``base_url``, ``stop()``, a ``_lock`` for state.
* ``InboxServer``: adds the thread-safe inbox (``inbox(value)`` filtered on ``inbox_field``,
  ``clear()``) and the "fail once per key" memory several simulators use.
* ``LoopbackHandler``: ``json_response`` / ``send_body`` / ``read_body`` and the shared
  ``GET /_health``, ``GET /_inbox[?<inbox_field>=]`` and ``DELETE /_inbox`` routes.
* ``start_in_thread(server, name)`` and ``serve_cli(...)`` for in-process and ``python -m`` use.

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"

S = TypeVar("S", bound="LoopbackServer")


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that only ever listens on 127.0.0.1 (port 0 = any free port)."""

    daemon_threads = True
    allow_reuse_address = True
    # The default listen backlog (5) resets connections when a test or a client library bursts.
    request_queue_size = 128

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__((HOST, port), handler)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the ``start_in_thread`` thread."""
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class InboxServer(LoopbackServer):
    """A ``LoopbackServer`` that records what it delivered, for tests and developers to read."""

    inbox_field: str = "to"        # the entry key ``inbox(value)`` and ``GET /_inbox?<key>=`` match
    inbox_fold_case: bool = False  # match that key case-insensitively (e-mail addresses)

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(port, handler)
        self._inbox: list[dict[str, Any]] = []
        self._failed_once: set[str] = set()

    def inbox(self, value: str | None = None) -> list[dict[str, Any]]:
        """Delivered entries, oldest first; with ``value``, those whose ``inbox_field`` is it."""
        with self._lock:
            items = list(self._inbox)
        if value is None:
            return items
        return [m for m in items if self._matches(m.get(self.inbox_field), value)]

    def clear(self) -> None:
        """Empty the inbox and forget every simulated failure."""
        with self._lock:
            self._inbox.clear()
            self._failed_once.clear()
            self._reset_state()

    def _reset_state(self) -> None:
        """Hook for subclasses: forget their own state too (called by ``clear`` under the lock)."""

    def _matches(self, got: Any, wanted: str) -> bool:
        if self.inbox_fold_case and isinstance(got, str):
            return got.lower() == wanted.lower()
        return got == wanted

    def _deliver(self, *entries: dict[str, Any]) -> None:
        with self._lock:
            self._inbox.extend(entries)

    def _first_failure(self, key: str) -> bool:
        """True the first time ``key`` asks (since the last ``clear``): fail once, then succeed."""
        with self._lock:
            if key in self._failed_once:
                return False
            self._failed_once.add(key)
            return True


def parse_form(raw: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as {name: first value}, blanks kept."""
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                         keep_blank_values=True).items()}


class LoopbackHandler(BaseHTTPRequestHandler):
    """Request handler base: HTTP/1.1 keep-alive, JSON replies, body reading, inbox routes."""

    protocol_version = "HTTP/1.1"
    logger: logging.Logger | None = None          # None: no access log at all
    json_content_type = "application/json"
    default_headers: dict[str, str] = {}          # sent on every response (e.g. Cache-Control)
    cleared_response: tuple[int, Any] = (200, {})  # what ``DELETE /_inbox`` answers

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.logger is not None:
            self.logger.debug("%s - " + format, self.address_string(), *args)

    # -- responses --------------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str | None,
                  headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**self.default_headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def json_response(self, status: int, payload: Any = None,
                      headers: dict[str, str] | None = None) -> None:
        """``payload`` as JSON; ``None`` sends an empty body without a Content-Type (202, 204)."""
        if payload is None:
            return self.send_body(status, b"", None, headers)
        return self.send_body(status, json.dumps(payload).encode(), self.json_content_type, headers)

    # -- requests ---------------------------------------------------------------------------------
    def content_length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def read_body(self) -> bytes:
        length = self.content_length()
        return self.rfile.read(length) if length > 0 else b""

    # -- shared routes (for handlers of an ``InboxServer``) ----------------------------------------
    def serve_inbox_get(self) -> bool:
        """Answer ``GET /_health`` and ``GET /_inbox[?<inbox_field>=v]``; False for other paths."""
        url = urlsplit(self.path)
        if url.path == "/_health":
            self.json_response(200, {"status": "ok"})
            return True
        if url.path == "/_inbox":
            server: InboxServer = self.server  # type: ignore[assignment]
            value = (parse_qs(url.query).get(server.inbox_field) or [None])[0]
            self.json_response(200, server.inbox(value))
            return True
        return False

    def serve_inbox_delete(self) -> bool:
        """Answer ``DELETE /_inbox`` (clears it); False for other paths. Drains the body either
        way, so a keep-alive connection stays in step."""
        self.read_body()
        if urlsplit(self.path).path != "/_inbox":
            return False
        self.server.clear()  # type: ignore[attr-defined]
        self.json_response(*self.cleared_response)
        return True


def start_in_thread(server: S, name: str) -> tuple[S, str]:
    """Run ``server.serve_forever`` in a daemon thread; ``server.stop()`` ends it."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    server._thread = thread
    thread.start()
    return server, server.base_url


def serve_cli(make_server: Callable[[argparse.Namespace], LoopbackServer], *, description: str,
              default_port: int, banner: Callable[[LoopbackServer], str],
              add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
              argv: list[str] | None = None) -> int:
    """The ``python -m infra.local.<sim> --port N ...`` entry point: parse the flags, build the
    server with ``make_server(args)``, print ``banner(server)`` and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = make_server(args)
    print(banner(server), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
