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
import re
import secrets
from email.utils import format_datetime
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from infra.local.simserver import HOST  # noqa: F401 - kept as part of this module's API
from infra.local.simserver import (InboxServer, LoopbackHandler, parse_form, serve_cli,
                                   start_in_thread)

DEFAULT_PORT = 9098
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "local-sms-auth-token"
MAX_BODY_CHARS = 1600
_SEND_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAGIC = {"+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
          "+15005550009": (21614, "'To' number is not a valid mobile number"),
          "+15005550004": (21610, "Attempt to send to unsubscribed recipient")}


class SmsSimServer(InboxServer):
    inbox_field = "to"

    def __init__(self, port: int = 0, *, account_sid: str = DEFAULT_ACCOUNT_SID,
                 auth_token: str = DEFAULT_AUTH_TOKEN) -> None:
        super().__init__(port, _Handler)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._fail_next: list[int] = []

    def inbox(self, to: str | None = None) -> list[dict[str, Any]]:
        return super().inbox(to)

    def fail_next(self, status: int = 503) -> None:
        with self._lock:
            self._fail_next.append(status)

    def _reset_state(self) -> None:
        self._fail_next.clear()

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._fail_next.pop(0) if self._fail_next else None


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class _Handler(LoopbackHandler):
    server: SmsSimServer
    cleared_response = (200, {"cleared": True})
    # no access log: bodies carry codes

    def do_GET(self) -> None:
        if not self.serve_inbox_get():
            self.json_response(*_error(404, 20404, "The requested resource was not found"))

    def do_DELETE(self) -> None:
        if not self.serve_inbox_delete():
            self.json_response(*_error(404, 20404, "The requested resource was not found"))

    def do_POST(self) -> None:
        raw = self.read_body()
        match = _SEND_PATH.match(urlsplit(self.path).path)
        if not match:
            return self.json_response(*_error(404, 20404, "The requested resource was not found"))
        login = self._basic_auth()
        if login is None or not (hmac.compare_digest(login[0], self.server.account_sid)
                                 and hmac.compare_digest(login[1], self.server.auth_token)):
            return self.json_response(*_error(401, 20003, "Authenticate"))
        if match.group(1) != login[0]:
            return self.json_response(*_error(404, 20404, "The requested resource was not found"))
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != \
                "application/x-www-form-urlencoded":
            return self.json_response(*_error(400, 21000, "Content-Type must be application/x-www-form-urlencoded"))
        status, payload = self._create_message(login[0], parse_form(raw))
        return self.json_response(status, payload)

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
    return start_in_thread(SmsSimServer(port, **kwargs), "sms-sim")


def _cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use
    serve_cli(
        lambda args: SmsSimServer(args.port, account_sid=args.account_sid,
                                  auth_token=args.auth_token),
        argv=argv, description=__doc__.split("\n")[0], default_port=DEFAULT_PORT,
        add_arguments=_cli_arguments,
        banner=lambda server: f"sms simulator on {server.base_url} (account {server.account_sid})")


if __name__ == "__main__":  # pragma: no cover
    main()
