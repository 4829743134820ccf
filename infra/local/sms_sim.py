"""Loopback SMS provider speaking Twilio's Messages API, with an inbox for tests and developers.

Serves, on 127.0.0.1 only:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` — form encoded ``To``, ``Body`` and
  ``From`` or ``MessagingServiceSid``; HTTP basic auth ``AccountSid:AuthToken``. Answers 201 with a
  Twilio Message resource (``sid`` ``SM…``, ``status`` ``queued``), or Twilio's error body
  ``{"code", "message", "more_info", "status"}``:

  - wrong or missing credentials        -> 401, code 20003
  - path AccountSid differs from login  -> 404, code 20404
  - ``To`` not E.164                    -> 400, code 21211
  - missing ``From``/service            -> 400, code 21603
  - missing ``Body`` / over 1600 chars  -> 400, code 21602 / 21617
  - Twilio's magic test numbers: ``+15005550001`` 21211 (invalid), ``+15005550009`` 21614 (not a
    mobile), ``+15005550004`` 21610 (recipient unsubscribed)
  - ``fail_next(status)`` makes the next send answer that status (e.g. 503) once.

* ``GET /_inbox[?to=+E164]`` — delivered messages, oldest first.
* ``DELETE /_inbox`` — clear it. ``GET /_health`` — ``{"status": "ok"}``.

Production code reaches it only through ``PAYLOOM_SMS_BASE_URL`` (``shared.identity.ports_sms``).

In-process: ``server, base_url = start()`` … ``server.stop()``.
CLI: ``python -m infra.local.sms_sim --port 9098``.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import re
import secrets
import threading
from email.utils import format_datetime
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
DEFAULT_PORT = 9098
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "local-sms-auth-token"
MAX_BODY_CHARS = 1600
_SEND_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAGIC = {"+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
          "+15005550009": (21614, "'To' number is not a valid mobile number"),
          "+15005550004": (21610, "Attempt to send to unsubscribed recipient")}


class SmsSimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, *, account_sid: str = DEFAULT_ACCOUNT_SID,
                 auth_token: str = DEFAULT_AUTH_TOKEN) -> None:
        super().__init__((HOST, port), _Handler)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self._inbox: list[dict[str, Any]] = []
        self._fail_next: list[int] = []
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def inbox(self, to: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._inbox)
        return [m for m in items if to is None or m["to"] == to]

    def clear(self) -> None:
        with self._lock:
            self._inbox.clear()
            self._fail_next.clear()

    def fail_next(self, status: int = 503) -> None:
        with self._lock:
            self._fail_next.append(status)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._fail_next.pop(0) if self._fail_next else None

    def _deliver(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._inbox.append(entry)


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class _Handler(BaseHTTPRequestHandler):
    server: SmsSimServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # bodies carry codes: stay quiet
        return

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_health":
            return self._send(200, {"status": "ok"})
        if url.path == "/_inbox":
            to = parse_qs(url.query).get("to", [None])[0]
            return self._send(200, self.server.inbox(to))
        return self._send(*_error(404, 20404, "The requested resource was not found"))

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path == "/_inbox":
            self._read()
            self.server.clear()
            return self._send(200, {"cleared": True})
        return self._send(*_error(404, 20404, "The requested resource was not found"))

    def do_POST(self) -> None:
        raw = self._read()
        match = _SEND_PATH.match(urlsplit(self.path).path)
        if not match:
            return self._send(*_error(404, 20404, "The requested resource was not found"))
        login = self._basic_auth()
        if login is None or not (hmac.compare_digest(login[0], self.server.account_sid)
                                 and hmac.compare_digest(login[1], self.server.auth_token)):
            return self._send(*_error(401, 20003, "Authenticate"))
        if match.group(1) != login[0]:
            return self._send(*_error(404, 20404, "The requested resource was not found"))
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != \
                "application/x-www-form-urlencoded":
            return self._send(*_error(400, 21000, "Content-Type must be application/x-www-form-urlencoded"))
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        status, payload = self._create_message(login[0], form)
        return self._send(status, payload)

    def _basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def _create_message(self, account_sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (sender or service):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in _MAGIC:
            return _error(400, *_MAGIC[to])
        failure = self.server._take_failure()
        if failure is not None:
            return _error(failure, 20500 if failure >= 500 else 20429, "Simulated provider failure")
        sid = "SM" + secrets.token_hex(16)
        now = datetime.now(timezone.utc)
        self.server._deliver({"sid": sid, "to": to, "from": sender or service, "body": body,
                              "received_at": now.isoformat()})
        segments = 1 if len(body) <= 160 else -(-len(body) // 153)
        return 201, {
            "account_sid": account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": format_datetime(now, usegmt=True), "date_sent": None,
            "date_updated": format_datetime(now, usegmt=True), "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": sender or None,
            "messaging_service_sid": service or None, "num_media": "0",
            "num_segments": str(segments), "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued", "to": to,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
        }


def start(port: int = 0, **kwargs: Any) -> tuple[SmsSimServer, str]:
    server = SmsSimServer(port, **kwargs)
    thread = threading.Thread(target=server.serve_forever, name="sms-sim", daemon=True)
    server._thread = thread
    thread.start()
    return server, server.base_url


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args()
    server = SmsSimServer(args.port, account_sid=args.account_sid, auth_token=args.auth_token)
    print(f"sms simulator on {server.base_url} (account {args.account_sid})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":  # pragma: no cover
    main()
