"""Loopback webhook receiver for local runs and tests: the merchant's end of an outbound webhook.

Why: deliveries (shared/webhooks) are judged by what a receiver answers (2xx, 410, 429 with
Retry-After, 5xx, a timeout, a redirect) and by what it gets (Standard Webhooks headers, the exact
body). This server plays any number of receivers at once, each with a behaviour set at run time,
and records every request so a test or a developer running ``make run`` sees deliveries arrive.

Serves, on 127.0.0.1 only:

* ``POST /<name>`` (any path not starting with ``/_``, e.g. ``/hooks/a``): one receiver. By
  default it answers ``200 {"received": true}``. ``PUT /_config/<name>`` with a JSON object
  changes that receiver's answer; every field is optional:

  ============================ ==============================================================
  ``mode``                     ``ok`` (200) | ``fail`` (``status``, default 500) | ``gone``
                               (410) | ``throttle`` (429 + ``Retry-After``) | ``hang`` (sleep
                               ``hang_seconds``, default 20, then 200) | ``redirect``
                               (``status``, default 302, to ``location``)
  ``status``                   the status ``fail``/``redirect`` answer
  ``fail_times``               any mode but ``ok`` applies to the next N requests only, then
                               200; absent or null: forever
  ``retry_after``              ``Retry-After`` value (string; seconds or an HTTP-date) sent by
                               ``throttle`` (default ``"1"``) and, when given, by ``fail``
  ``hang_seconds``             how long ``hang`` sleeps before answering
  ``location``                 where ``redirect`` points (default ``<sim>/redirect-target``;
                               a client that follows it shows up in that path's inbox)
  ``body``                     a text body to answer instead of ``{"received": true}``
  ``secret``                   ``whsec_…`` (or a list of them): verify the Standard Webhooks
                               signature of each request with the PyPI ``standardwebhooks``
                               receiver and record ``verified: true|false``
  ``enforce_signature``        answer 401 when ``verified`` is false (otherwise the answer never
                               depends on the signature)
  ============================ ==============================================================

  ``GET /_config[/<name>]`` shows the configuration (secrets masked); ``DELETE /_config`` resets
  every receiver to ``ok`` (and wakes hanging requests); ``DELETE /_config/<name>`` resets one.
* ``GET /_inbox[?path=/hooks/a]``: every request received, oldest first: ``{id, path, query,
  method, headers (lower-case keys), body (text), received_at (unix seconds, float), status (what
  it answered), mode, verified (null when no secret), verify_error, answered_at (null until the
  answer is written), sender_gone (true when the sender had hung up before the answer)}``.
* ``DELETE /_inbox``: empties the inbox. ``GET /_health``: ``{"status": "ok"}``.

Python API for tests: ``server = WebhookSimServer(port)`` / ``server, url = start()``,
``server.configure("/hooks/a", mode="fail", fail_times=2)``, ``server.inbox("/hooks/a")``,
``server.wait_for(n, path, timeout)``, ``server.clear()``, ``server.reset_config()``, ``server.stop()``.
CLI: ``python -m infra.local.webhook_sim --port 9326``.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.local.simserver import (
    InboxServer,
    LoopbackHandler,
    serve_cli,
    start_in_thread,
)

DEFAULT_PORT = 9326
MAX_BODY = 1_000_000
MODES = ("ok", "fail", "gone", "throttle", "hang", "redirect")
RESERVED_PREFIX = "/_"
log = logging.getLogger("payloom.webhook_sim")

_DEFAULTS: dict[str, Any] = {
    "mode": "ok", "status": None, "fail_times": None, "retry_after": None, "hang_seconds": 20.0,
    "location": None, "body": None, "secret": None, "enforce_signature": False,
}


class ConfigError(ValueError):
    """A receiver configuration the simulator refuses (400 over HTTP)."""


def _endpoint_path(name: str) -> str:
    path = "/" + name.lstrip("/")
    if path == "/" or path.startswith(RESERVED_PREFIX):
        raise ConfigError(f"{path!r} is not a receiver path (use e.g. /hooks/a; /_… is reserved)")
    return path


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` checked and completed with defaults; ConfigError says what is wrong."""
    if not isinstance(cfg, dict):
        raise ConfigError("the configuration must be a JSON object")
    unknown = sorted(set(cfg) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown fields: {', '.join(unknown)} (known: {', '.join(_DEFAULTS)})")
    out = {**_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if out["mode"] not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}")
    status = out["status"]
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                               or not 100 <= status <= 599):
        raise ConfigError("status must be an integer HTTP status (100..599)")
    if out["mode"] == "redirect" and status is not None and not 300 <= status <= 399:
        raise ConfigError("a redirect status must be 3xx")
    times = out["fail_times"]
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise ConfigError("fail_times must be a non-negative integer (or null: forever)")
    if out["retry_after"] is not None:
        if isinstance(out["retry_after"], bool) or not isinstance(out["retry_after"], (str, int, float)):
            raise ConfigError("retry_after must be a string (seconds or an HTTP-date)")
        out["retry_after"] = str(out["retry_after"])
    hang = out["hang_seconds"]
    if isinstance(hang, bool) or not isinstance(hang, (int, float)) or not 0 <= hang <= 600:
        raise ConfigError("hang_seconds must be a number of seconds between 0 and 600")
    for field in ("location", "body"):
        if out[field] is not None and not isinstance(out[field], str):
            raise ConfigError(f"{field} must be a string")
    secret = out["secret"]
    secrets_ = [secret] if isinstance(secret, str) else secret
    if secret is not None and (not isinstance(secrets_, list) or not secrets_
                               or not all(isinstance(s, str) and s for s in secrets_)):
        raise ConfigError("secret must be a whsec_… string or a list of them")
    out["secret"] = secrets_
    if not isinstance(out["enforce_signature"], bool):
        raise ConfigError("enforce_signature must be true or false")
    if out["enforce_signature"] and not secrets_:
        raise ConfigError("enforce_signature needs a secret")
    return out


def verify_signature(secrets_: list[str], body: bytes, headers: dict[str, str]) -> tuple[bool, str | None]:
    """(verified, why not) with the reference receiver, PyPI ``standardwebhooks``: a delivery
    verifies when any configured secret accepts it (rotation: either secret is enough)."""
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return False, "standardwebhooks is not installed"
    why = "no secret"
    for secret in secrets_:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return True, None
        except Exception as exc:  # noqa: BLE001 - malformed headers raise ValueError etc. too
            why = f"{type(exc).__name__}: {exc}"[:200]
    return False, why


class WebhookSimServer(InboxServer):
    """Receivers on every path; behaviour per path; every request recorded."""

    inbox_field = "path"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port, _Handler)
        self._configs: dict[str, dict[str, Any]] = {}
        self._remaining: dict[str, int | None] = {}  # failures left per path (None: forever)
        self._wake = threading.Event()               # set: hanging requests answer now
        self._ids = itertools.count(1)

    # -- configuration ---------------------------------------------------------------------------
    def configure(self, path: str, /, **cfg: Any) -> dict[str, Any]:
        """Set how ``path`` answers from the next request on (replaces its previous config and
        restarts its ``fail_times`` count). Raises ConfigError for a bad config."""
        path = _endpoint_path(path)
        checked = validate_config(cfg)
        with self._lock:
            self._configs[path] = checked
            self._remaining[path] = checked["fail_times"]
        return _public(checked)

    def config(self, path: str | None = None) -> dict[str, Any]:
        """One path's effective config, or every configured path's (secrets masked)."""
        with self._lock:
            if path is not None:
                return _public(self._configs.get(_endpoint_path(path), dict(_DEFAULTS)))
            return {p: _public(c) for p, c in self._configs.items()}

    def reset_config(self, path: str | None = None) -> None:
        """Every receiver (or one) back to ``ok``; requests hanging now answer at once."""
        with self._lock:
            if path is None:
                self._configs.clear()
                self._remaining.clear()
            else:
                self._configs.pop(_endpoint_path(path), None)
                self._remaining.pop(_endpoint_path(path), None)
            self._wake.set()
            self._wake = threading.Event()

    def stop(self) -> None:
        self._wake.set()
        super().stop()

    # -- inbox -----------------------------------------------------------------------------------
    def inbox(self, path: str | None = None) -> list[dict[str, Any]]:
        """Requests received (oldest first), all or those to ``path`` (query string excluded)."""
        return super().inbox(None if path is None else "/" + path.lstrip("/"))

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until ``inbox(path)`` has at least ``count`` entries or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.inbox(path)
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    # -- answering -------------------------------------------------------------------------------
    def _decide(self, path: str) -> tuple[dict[str, Any], bool, threading.Event]:
        """(config, misbehave now?, wake event): consumes one of ``fail_times``."""
        with self._lock:
            cfg = self._configs.get(path, _DEFAULTS)
            misbehave = cfg["mode"] != "ok"
            if misbehave:
                left = self._remaining.get(path)
                if left is not None:
                    misbehave = left > 0
                    self._remaining[path] = max(0, left - 1)
            return cfg, misbehave, self._wake

    def _record(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry["id"] = f"req_{next(self._ids)}"
        self._deliver(entry)
        return entry


def _public(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if k != "secret"}
    out["has_secret"] = bool(cfg.get("secret"))
    return out


class _Handler(LoopbackHandler):
    server: WebhookSimServer
    logger = log

    def _route(self) -> tuple[str, str]:
        url = urlsplit(self.path)
        return unquote(url.path) or "/", url.query

    def _config_name(self, path: str) -> str | None:
        """``/_config/<name>`` → ``<name>``; ``/_config`` → ""; anything else → None."""
        if path in ("/_config", "/_config/"):
            return ""
        if path.startswith("/_config/"):
            return path[len("/_config/"):]
        return None

    # -- developer/test routes -------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path, _ = self._route()
        if self.serve_inbox_get():
            return
        name = self._config_name(path)
        if name is None:
            allow = {} if path.startswith(RESERVED_PREFIX) else {"Allow": "POST"}
            return self.json_response(404 if not allow else 405,
                                      {"error": "receivers accept POST only" if allow else "not found"},
                                      allow)
        try:
            self.json_response(200, self.server.config(name or None))
        except ConfigError as exc:
            self.json_response(400, {"error": str(exc)})

    def do_PUT(self) -> None:  # noqa: N802
        path, _ = self._route()
        name = self._config_name(path)
        if self.content_length() > MAX_BODY:
            return self.json_response(413, {"error": "body too large"}, {"Connection": "close"})
        raw = self.read_body()
        if not name:
            return self.json_response(404, {"error": "PUT /_config/<receiver path> only"})
        try:
            cfg = json.loads(raw or b"{}")
            if not isinstance(cfg, dict):
                raise ConfigError("the configuration must be a JSON object")
            self.json_response(200, {"path": _endpoint_path(name), **self.server.configure(name, **cfg)})
        except ValueError as exc:  # ConfigError and JSON errors
            self.json_response(400, {"error": str(exc)})

    def do_DELETE(self) -> None:  # noqa: N802
        if self.serve_inbox_delete():  # drains the body either way
            return
        path, _ = self._route()
        name = self._config_name(path)
        if name is None:
            return self.json_response(404, {"error": "not found"})
        try:
            self.server.reset_config(name or None)
        except ConfigError as exc:
            return self.json_response(400, {"error": str(exc)})
        self.json_response(200, {})

    # -- receivers -------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        received_at = time.time()
        path, query = self._route()
        if path.startswith(RESERVED_PREFIX) or path == "/":
            self.read_body()
            return self.json_response(404, {"error": "not a receiver path"})
        if self.content_length() > MAX_BODY:
            return self.json_response(413, {"error": "body too large"}, {"Connection": "close"})
        raw = self.read_body()
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        cfg, misbehave, wake = self.server._decide(path)
        verified, verify_error = None, None
        if cfg["secret"]:
            verified, verify_error = verify_signature(cfg["secret"], raw, headers)
        mode = cfg["mode"] if misbehave else "ok"
        extra: dict[str, str] = {}
        if cfg["enforce_signature"] and not verified:
            status, mode = 401, "rejected"
        elif mode == "fail":
            status = cfg["status"] or 500
            if cfg["retry_after"] is not None:
                extra["Retry-After"] = cfg["retry_after"]
        elif mode == "gone":
            status = 410
        elif mode == "throttle":
            status = 429
            extra["Retry-After"] = cfg["retry_after"] or "1"
        elif mode == "redirect":
            status = cfg["status"] or 302
            extra["Location"] = cfg["location"] or f"{self.server.base_url}/redirect-target"
        else:
            status = 200
        entry = self.server._record({
            "path": path, "query": query, "method": self.command, "headers": headers,
            "body": raw.decode("utf-8", "replace"), "received_at": received_at, "status": status,
            "mode": mode, "verified": verified, "verify_error": verify_error, "answered_at": None,
            "sender_gone": False})
        if mode == "hang":
            wake.wait(cfg["hang_seconds"])
        if cfg["body"] is not None:
            body, ctype = cfg["body"].encode(), "text/plain; charset=utf-8"
        elif status == 200:
            body, ctype = b'{"received":true}', "application/json"
        else:
            body, ctype = json.dumps({"error": mode, "status": status}).encode(), "application/json"
        # a line per delivery for developers watching `make run` (never the body)
        log.info("%s %s -> %s (%s) webhook-id=%s verified=%s", self.command, path, status, mode,
                 headers.get("webhook-id"), verified)
        try:
            self.send_body(status, body, ctype, extra)
            entry["answered_at"] = time.time()
        except OSError:  # the sender gave up (its timeout) while we hung: nobody to answer
            entry["sender_gone"] = True
            self.close_connection = True


def start(port: int = 0) -> tuple[WebhookSimServer, str]:
    """Serve in a daemon thread on 127.0.0.1:<port> (0 = any free port)."""
    return start_in_thread(WebhookSimServer(port), "webhook-sim")


def main(argv: list[str] | None = None) -> int:
    return serve_cli(
        lambda args: WebhookSimServer(args.port), argv=argv, default_port=DEFAULT_PORT,
        description="Loopback webhook receiver (modes per path, signature check, inbox)",
        banner=lambda server: (f"webhook receiver listening on {server.base_url} "
                               "(POST /<path>; config: PUT /_config/<path>; inbox: /_inbox?path=)"))


if __name__ == "__main__":
    raise SystemExit(main())
