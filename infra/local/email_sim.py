"""Loopback transactional-email API for local runs and tests (SendGrid v3 ``mail/send`` shape).

Serves, on 127.0.0.1 only:

* ``POST /v3/mail/send`` with ``{"personalizations": [{"to": [{"email"}]}], "from": {"email"},
  "subject", "content": [{"type", "value"}], "categories"?, "custom_args"?}`` and
  ``Authorization: Bearer <any key>``. Answers ``202`` with an ``X-Message-Id`` header and an
  empty body, like SendGrid. Errors use SendGrid's ``{"errors": [{"message", "field", "help"}]}``:
  a missing key is 401, a malformed message 400. Recipients whose address starts with
  ``bounce`` get 400 (an invalid recipient); ``unavailable…`` get 503 once, then succeed.
* ``GET /_inbox[?to=ADDRESS]``: JSON list of delivered messages, oldest first, one entry per
  recipient: ``{id, to, from, subject, text, html, categories, custom_args, received_at}``.
* ``DELETE /_inbox``: empties the inbox.
* ``GET /_health``: ``{"status": "ok"}``.

Point the production adapter (shared/identity/email.py) at it with
``PAYLOOM_IDENTITY_EMAIL_API_URL=http://127.0.0.1:<port>``.
In-process: ``server, base_url = start()`` ... ``server.stop()``.
CLI: ``python -m infra.local.email_sim --port 9325``.
"""
from __future__ import annotations

import argparse
import json
import logging
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
DEFAULT_PORT = 9325
MAX_BODY = 1_000_000
log = logging.getLogger("payloom.email_sim")


class EmailSimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__((HOST, port), _Handler)
        self._lock = threading.Lock()
        self._inbox: list[dict[str, Any]] = []
        self._failed_once: set[str] = set()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def inbox(self, to: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._inbox)
        return [m for m in items if to is None or m["to"].lower() == to.lower()]

    def clear(self) -> None:
        with self._lock:
            self._inbox.clear()
            self._failed_once.clear()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _deliver(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._inbox.extend(entries)

    def _first_failure(self, address: str) -> bool:
        with self._lock:
            if address in self._failed_once:
                return False
            self._failed_once.add(address)
            return True


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field, "help": None}]}


def _validate(body: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """(error body or None, recipient addresses)."""
    if not isinstance(body, dict):
        return _error("The request body must be a JSON object."), []
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        return _error("The personalizations field is required and must have at least one "
                      "personalization.", "personalizations"), []
    recipients = []
    for i, p in enumerate(pers):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            return _error("The to array is required for all personalization objects, and must "
                          "have at least one email object with a valid email address.",
                          f"personalizations.{i}.to"), []
        for r in to:
            addr = r.get("email") if isinstance(r, dict) else None
            if not isinstance(addr, str) or "@" not in addr:
                return _error("Does not contain a valid address.",
                              f"personalizations.{i}.to"), []
            recipients.append(addr)
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) \
            or "@" not in sender["email"]:
        return _error("The from object must be provided for every email send.", "from.email"), []
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        return _error("The subject is required.", "subject"), []
    content = body.get("content")
    if not isinstance(content, list) or not content or not all(
            isinstance(c, dict) and isinstance(c.get("type"), str)
            and isinstance(c.get("value"), str) and c["value"] for c in content):
        return _error("Unless a valid template_id is provided, the content parameter is "
                      "required.", "content"), []
    return None, recipients


class _Handler(BaseHTTPRequestHandler):
    server: EmailSimServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/_health":
            return self._send(200, {"status": "ok"})
        if url.path == "/_inbox":
            to = (parse_qs(url.query).get("to") or [None])[0]
            return self._send(200, self.server.inbox(to))
        self._send(404, _error("Not found."))

    def do_DELETE(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/_inbox":
            self.server.clear()
            return self._send(204)
        self._send(404, _error("Not found."))

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/v3/mail/send":
            return self._send(404, _error("Not found."))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._send(413, _error("Payload too large."))
        raw = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._send(401, _error("The provided authorization grant is invalid, expired, "
                                          "or revoked"))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._send(400, _error("Bad Request: the body is not valid JSON."))
        problem, recipients = _validate(body)
        if problem:
            return self._send(400, problem)
        for addr in recipients:
            if addr.lower().startswith("bounce"):
                return self._send(400, _error("Does not contain a valid address.",
                                              "personalizations.0.to"))
            if addr.lower().startswith("unavailable") and self.server._first_failure(addr.lower()):
                return self._send(503, _error("Service unavailable, retry later."))
        message_id = secrets.token_urlsafe(16)
        now = datetime.now(timezone.utc).isoformat()
        text = next((c["value"] for c in body["content"] if c["type"] == "text/plain"), None)
        html = next((c["value"] for c in body["content"] if c["type"] == "text/html"), None)
        self.server._deliver([{
            "id": f"{message_id}.{i}", "to": addr, "from": body["from"]["email"],
            "subject": body["subject"], "text": text, "html": html,
            "categories": list(body.get("categories") or []),
            "custom_args": dict(body.get("custom_args") or {}), "received_at": now,
        } for i, addr in enumerate(recipients)])
        self._send(202, None, {"X-Message-Id": message_id})


def start(port: int = 0) -> tuple[EmailSimServer, str]:
    """Serve in a daemon thread on 127.0.0.1:<port> (0 = any free port)."""
    server = EmailSimServer(port)
    thread = threading.Thread(target=server.serve_forever, name="email-sim", daemon=True)
    server._thread = thread
    thread.start()
    return server, server.base_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback transactional email API (SendGrid v3)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = EmailSimServer(args.port)
    print(f"email sim listening on {server.base_url} (inbox: /_inbox?to=)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
