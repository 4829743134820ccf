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

Point the production adapter (shared/identity/users/email.py) at it with
``PAYLOOM_IDENTITY_EMAIL_API_URL=http://127.0.0.1:<port>``.
In-process: ``server, base_url = start()`` ... ``server.stop()``.
CLI: ``python -m infra.local.email_sim --port 9325``.
"""
from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from infra.local.simserver import HOST  # noqa: F401 - kept as part of this module's API
from infra.local.simserver import InboxServer, LoopbackHandler, serve_cli, start_in_thread

DEFAULT_PORT = 9325
MAX_BODY = 1_000_000
log = logging.getLogger("payloom.email_sim")


class EmailSimServer(InboxServer):
    inbox_field = "to"
    inbox_fold_case = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(port, _Handler)

    def inbox(self, to: str | None = None) -> list[dict[str, Any]]:
        return super().inbox(to)


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


class _Handler(LoopbackHandler):
    server: EmailSimServer
    logger = log
    cleared_response = (204, None)

    def do_GET(self) -> None:  # noqa: N802
        if not self.serve_inbox_get():
            self.json_response(404, _error("Not found."))

    def do_DELETE(self) -> None:  # noqa: N802
        if not self.serve_inbox_delete():
            self.json_response(404, _error("Not found."))

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/v3/mail/send":
            return self.json_response(404, _error("Not found."))
        if self.content_length() > MAX_BODY:
            return self.json_response(413, _error("Payload too large."))
        raw = self.read_body()
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self.json_response(401, _error("The provided authorization grant is invalid, "
                                                  "expired, or revoked"))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self.json_response(400, _error("Bad Request: the body is not valid JSON."))
        problem, recipients = _validate(body)
        if problem:
            return self.json_response(400, problem)
        for addr in recipients:
            if addr.lower().startswith("bounce"):
                return self.json_response(400, _error("Does not contain a valid address.",
                                                      "personalizations.0.to"))
            if addr.lower().startswith("unavailable") and self.server._first_failure(addr.lower()):
                return self.json_response(503, _error("Service unavailable, retry later."))
        message_id = secrets.token_urlsafe(16)
        now = datetime.now(timezone.utc).isoformat()
        text = next((c["value"] for c in body["content"] if c["type"] == "text/plain"), None)
        html = next((c["value"] for c in body["content"] if c["type"] == "text/html"), None)
        self.server._deliver(*[{
            "id": f"{message_id}.{i}", "to": addr, "from": body["from"]["email"],
            "subject": body["subject"], "text": text, "html": html,
            "categories": list(body.get("categories") or []),
            "custom_args": dict(body.get("custom_args") or {}), "received_at": now,
        } for i, addr in enumerate(recipients)])
        self.json_response(202, None, {"X-Message-Id": message_id})


def start(port: int = 0) -> tuple[EmailSimServer, str]:
    """Serve in a daemon thread on 127.0.0.1:<port> (0 = any free port)."""
    return start_in_thread(EmailSimServer(port), "email-sim")


def main(argv: list[str] | None = None) -> int:
    return serve_cli(
        lambda args: EmailSimServer(args.port), argv=argv, default_port=DEFAULT_PORT,
        description="Loopback transactional email API (SendGrid v3)",
        banner=lambda server: f"email sim listening on {server.base_url} (inbox: /_inbox?to=)")


if __name__ == "__main__":
    raise SystemExit(main())
