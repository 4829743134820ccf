"""Loopback FCM HTTP v1 endpoint for local runs and tests (there is no official FCM emulator).

Serves, on 127.0.0.1 only:

* ``POST /v1/projects/{project}/messages:send`` with ``{"message": {...}, "validate_only"?: bool}``
  answering ``{"name": "projects/{project}/messages/<id>"}`` like FCM. Errors use FCM's JSON error
  shape (``error.code/message/status/details`` with a
  ``type.googleapis.com/google.firebase.fcm.v1.FcmError`` detail) so firebase-admin raises the same
  exception classes as in production. Token conventions:

  - ``unregistered...`` -> 404 NOT_FOUND / UNREGISTERED (``messaging.UnregisteredError``)
  - ``unavailable...``  -> 503 UNAVAILABLE the first time per token, then success
                           (exercises the SDK's own retry on 500/503)
  - ``invalid...``      -> 400 INVALID_ARGUMENT, field violation on ``message.token``
  - ``mismatch...``     -> 403 PERMISSION_DENIED / SENDER_ID_MISMATCH
  - malformed messages  -> 400 INVALID_ARGUMENT
  - a missing ``Authorization: Bearer`` header -> 401 UNAUTHENTICATED

* ``GET /_inbox[?token=T]``: JSON list of delivered messages (oldest first) with receive times.
* ``DELETE /_inbox``: clears the inbox, the per-token attempt counts and the "already failed
  once" memory of ``unavailable`` tokens.
* ``GET /_health``: ``{"status": "ok"}``.
* Forwards, so simulated phones receive their pushes as a real phone would (the phone fleet,
  ``infra/local/phone_fleet.py``): ``PUT /_forwards`` with ``{"prefix": P, "url": U}`` makes
  every message delivered to a token starting with ``P`` (the longest matching prefix wins)
  also be POSTed, as its inbox entry in JSON, to ``U`` (a loopback URL) from a background
  thread, best effort (one try, 5 s timeout; the inbox keeps the message either way).
  ``GET /_forwards`` lists them, ``DELETE /_forwards?prefix=P`` removes one. In process,
  ``server.forward(P, callable_or_url)`` does the same (a callable gets the entry).
  ``DELETE /_inbox`` does not remove forwards.

firebase-admin is pointed here by infra/local/fcm_wiring.py, and only there.

In-process use: ``server, base_url = start()`` ... ``server.stop()``.
CLI: ``python -m infra.local.fcm_sim --port 9099``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from infra.local.simserver import HOST  # noqa: F401 - kept as part of this module's API
from infra.local.simserver import InboxServer, LoopbackHandler, serve_cli, start_in_thread

DEFAULT_PORT = 9099
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
MAX_DATA_BYTES = 4096

log = logging.getLogger("payloom.fcm_sim")

_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
_MESSAGE_FIELDS = {
    "name", "data", "notification", "android", "webpush", "apns", "fcm_options", "fcmOptions",
    "token", "topic", "condition",
}
_ANDROID_FIELDS = {
    "collapse_key", "collapseKey", "priority", "ttl", "restricted_package_name",
    "restrictedPackageName", "data", "notification", "fcm_options", "fcmOptions",
    "direct_boot_ok", "directBootOk", "bandwidth_constrained_ok", "restricted_satellite_ok",
}
_RESERVED_DATA_KEYS = {"from", "notification", "message_type"}


class FcmSimServer(InboxServer):
    """The HTTP server plus the simulator's state (inbox, one-shot 503 memory)."""

    inbox_field = "token"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port, _Handler)
        self._attempts: dict[str, int] = {}
        self._forwards: dict[str, str | Callable[[dict[str, Any]], Any]] = {}

    # -- forwards -------------------------------------------------------------------------
    def forward(self, prefix: str, target: str | Callable[[dict[str, Any]], Any]) -> None:
        """Also hand every message for a token starting with ``prefix`` to ``target`` (a
        loopback URL that gets the entry POSTed as JSON, or a callable)."""
        if not prefix:
            raise ValueError("a forward needs a non-empty token prefix")
        if isinstance(target, str) and not _is_loopback_url(target):
            raise ValueError("forwards only go to http://127.0.0.1 or http://localhost")
        with self._lock:
            self._forwards[prefix] = target

    def unforward(self, prefix: str) -> None:
        with self._lock:
            self._forwards.pop(prefix, None)

    def forwards(self) -> dict[str, str]:
        with self._lock:
            return {p: t if isinstance(t, str) else repr(t) for p, t in self._forwards.items()}

    def _deliver(self, *entries: dict[str, Any]) -> None:
        super()._deliver(*entries)
        for entry in entries:
            target = self._forward_for(entry.get("token") or "")
            if target is not None:
                threading.Thread(target=_hand_over, args=(target, entry), daemon=True,
                                 name="fcm-forward").start()

    def _forward_for(self, token: str):
        with self._lock:
            matches = [p for p in self._forwards if token.startswith(p)]
            return self._forwards[max(matches, key=len)] if matches else None

    def inbox(self, token: str | None = None) -> list[dict[str, Any]]:
        return super().inbox(token)

    def attempts(self, token: str) -> int:
        """How many well-formed send requests arrived for ``token`` (including failed ones)."""
        with self._lock:
            return self._attempts.get(token, 0)

    def _reset_state(self) -> None:
        self._attempts.clear()

    # -- used by the handler --------------------------------------------------------------
    def _count_attempt(self, token: str) -> None:
        with self._lock:
            self._attempts[token] = self._attempts.get(token, 0) + 1


def _is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")


def _hand_over(target, entry: dict[str, Any]) -> None:
    """Give one delivered message to its forward (never raises: a phone that is down just
    misses it, as a real one would until FCM redelivers)."""
    try:
        if callable(target):
            target(entry)
            return
        req = urllib.request.Request(target, data=json.dumps(entry).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    except Exception:  # noqa: BLE001
        log.debug("forward of an FCM message failed", exc_info=True)


def _error_body(
    code: int,
    status: str,
    message: str,
    fcm_code: str | None = None,
    violations: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if fcm_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if violations:
        details.append({
            "@type": BAD_REQUEST_TYPE,
            "fieldViolations": [{"field": f, "description": d} for f, d in violations],
        })
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return {"error": body}


def _invalid(message: str, field: str | None = None) -> tuple[int, dict[str, Any]]:
    violations = [(field, message)] if field else None
    return 400, _error_body(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", violations)


def _validate_string_map(value: Any, field: str) -> tuple[int, dict[str, Any]] | None:
    if not isinstance(value, dict):
        return _invalid(f"Invalid value at '{field}': expected a map of strings", field)
    for key, val in value.items():
        if not isinstance(val, str):
            return _invalid(
                f"Invalid value at '{field}[{key}]' (TYPE_STRING), {json.dumps(val)}", field
            )
    return None


def _validate_message(message: Any) -> tuple[int, dict[str, Any]] | None:
    """None when the message is acceptable, else (http status, error body)."""
    if not isinstance(message, dict):
        return _invalid("Invalid JSON payload received. 'message' must be an object", "message")
    unknown = sorted(set(message) - _MESSAGE_FIELDS)
    if unknown:
        return _invalid(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message': "
            "Cannot find field.", "message"
        )
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if len(targets) != 1:
        return _invalid(
            "Exactly one of message.token, message.topic or message.condition must be set",
            "message",
        )
    target = targets[0]
    if not isinstance(message[target], str) or not message[target]:
        return _invalid(f"message.{target} must be a non-empty string", f"message.{target}")

    if "data" in message:
        problem = _validate_string_map(message["data"], "message.data")
        if problem:
            return problem
        size = 0
        for key, val in message["data"].items():
            lowered = key.lower()
            if lowered in _RESERVED_DATA_KEYS or lowered.startswith(("google", "gcm")):
                return _invalid(f"Invalid data payload key: {key}", "message.data")
            size += len(key.encode()) + len(val.encode())
        if size > MAX_DATA_BYTES:
            return _invalid("Message is too big", "message.data")

    if "android" in message:
        android = message["android"]
        if not isinstance(android, dict):
            return _invalid("message.android must be an object", "message.android")
        unknown = sorted(set(android) - _ANDROID_FIELDS)
        if unknown:
            return _invalid(
                f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at "
                "'message.android': Cannot find field.", "message.android"
            )
        priority = android.get("priority")
        if priority is not None and str(priority).lower() not in ("normal", "high"):
            return _invalid(
                f"Invalid value at 'message.android.priority', \"{priority}\"",
                "message.android.priority",
            )
        ttl = android.get("ttl")
        if ttl is not None and not (isinstance(ttl, str) and _DURATION.match(ttl)):
            return _invalid(
                f"Invalid value at 'message.android.ttl' (type.googleapis.com/"
                f"google.protobuf.Duration), {json.dumps(ttl)}", "message.android.ttl"
            )
        for key in ("collapse_key", "collapseKey"):
            if key in android and not isinstance(android[key], str):
                return _invalid(f"message.android.{key} must be a string", f"message.android.{key}")
        if "data" in android:
            problem = _validate_string_map(android["data"], "message.android.data")
            if problem:
                return problem
    return None


def _token_outcome(server: FcmSimServer, token: str) -> tuple[int, dict[str, Any]] | None:
    """The simulated FCM verdict for a registration token; None means deliver."""
    if token.startswith("unregistered"):
        return 404, _error_body(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    if token.startswith("invalid"):
        return _invalid(
            "The registration token is not a valid FCM registration token", "message.token"
        )
    if token.startswith("mismatch"):
        return 403, _error_body(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
    if token.startswith("unavailable") and server._first_failure(token):
        return 503, _error_body(
            503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"
        )
    return None


def _rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class _Handler(LoopbackHandler):
    server: FcmSimServer
    server_version = "payloom-fcm-sim"
    logger = log
    json_content_type = "application/json; charset=UTF-8"

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = urlsplit(self.path).path
        if path == "/_forwards":
            self.json_response(200, self.server.forwards())
            return
        if not self.serve_inbox_get():
            self.json_response(404, _error_body(404, "NOT_FOUND", f"No route for GET {path}"))

    def do_DELETE(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/_forwards":
            self.read_body()
            prefix = (parse_qs(url.query).get("prefix") or [""])[0]
            self.server.unforward(prefix)
            self.json_response(200, self.server.forwards())
            return
        if not self.serve_inbox_delete():
            self.json_response(
                404, _error_body(404, "NOT_FOUND", f"No route for DELETE {self.path}")
            )

    def do_PUT(self) -> None:  # noqa: N802
        raw = self.read_body()
        if urlsplit(self.path).path != "/_forwards":
            self.json_response(404, _error_body(404, "NOT_FOUND", f"No route for PUT {self.path}"))
            return
        try:
            body = json.loads(raw or b"null")
            self.server.forward(str(body["prefix"]), str(body["url"]))
        except (ValueError, KeyError, TypeError) as exc:
            self.json_response(*_invalid(f"PUT /_forwards takes {{prefix, url}}: {exc}"))
            return
        self.json_response(200, self.server.forwards())

    def do_POST(self) -> None:  # noqa: N802
        raw = self.read_body()
        match = _SEND_PATH.match(urlsplit(self.path).path)
        if not match:
            self.json_response(404, _error_body(404, "NOT_FOUND", f"No route for POST {self.path}"))
            return
        project = match.group(1)
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            self.json_response(401, _error_body(
                401, "UNAUTHENTICATED",
                "Request is missing required authentication credential.",
            ))
            return
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            self.json_response(*_invalid("Invalid JSON payload received."))
            return
        if not isinstance(payload, dict) or "message" not in payload:
            self.json_response(*_invalid("Request must contain 'message'", "message"))
            return
        extra = sorted(set(payload) - {"message", "validate_only", "validateOnly"})
        if extra:
            self.json_response(*_invalid(
                f"Invalid JSON payload received. Unknown name \"{extra[0]}\": Cannot find field."
            ))
            return
        problem = _validate_message(payload["message"])
        if problem:
            self.json_response(*problem)
            return
        message = payload["message"]
        token = message.get("token")
        if token is not None:
            self.server._count_attempt(token)
            outcome = _token_outcome(self.server, token)
            if outcome:
                self.json_response(*outcome)
                return
        if payload.get("validate_only") or payload.get("validateOnly"):
            self.json_response(200, {"name": f"projects/{project}/messages/fake_message_id"})
            return
        now = time.time()
        name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        self.server._deliver({
            "name": name,
            "project": project,
            "token": token,
            "topic": message.get("topic"),
            "condition": message.get("condition"),
            "message": message,
            "received_at": _rfc3339(now),
            "received_at_unix": now,
        })
        self.json_response(200, {"name": name})


def start(port: int = 0) -> tuple[FcmSimServer, str]:
    """Serve in a daemon thread on 127.0.0.1:<port> (0 = any free port)."""
    return start_in_thread(FcmSimServer(port), "fcm-sim")


def main(argv: list[str] | None = None) -> int:
    return serve_cli(lambda args: FcmSimServer(args.port), argv=argv,
                     description="Loopback FCM HTTP v1 endpoint", default_port=DEFAULT_PORT,
                     banner=lambda server: f"fcm sim listening on {server.base_url}")


if __name__ == "__main__":
    raise SystemExit(main())
