"""One local process that serves every function the way Google Cloud would reach it.

- ``/v1/<path>/...``  → the HTTP function whose manifest ``path`` is ``<path>`` (API Gateway)
- ``/_fn/<name>/...`` → any HTTP, task or schedule function by name (Cloud Tasks, Scheduler)
- ``/_push/<name>``   → a Pub/Sub function, fed by the emulator's push subscription
- ``/<web_root>/...`` → the HTTP function whose manifest ``web_root`` it is (HTML pages)
- ``/healthz``, ``/openapi.json`` (``/docs`` is the docs function's web root)

Each function is a real ``functions_framework.create_app`` app; PATH_INFO is left whole (the
router strips its own prefixes), which avoids DispatcherMiddleware's 308 redirects.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse

import functions_framework

from shared.platform import manifest
from shared.platform.config import get_settings

ROOT = manifest.REPO_ROOT


def _load_apps():
    apps, public, internal, push, web = {}, {}, {}, {}, {}
    for fn in manifest.functions():
        source = ROOT / "functions" / fn["name"] / "main.py"
        if not source.exists():  # health reports it as not ok
            continue
        app = functions_framework.create_app(target=fn["entry_point"], source=str(source))
        apps[fn["name"]] = app
        if fn["trigger"] == "pubsub":
            push[fn["name"]] = app
        else:
            internal[fn["name"]] = internal[fn["name"].replace("_", "-")] = app
        if fn["trigger"] == "http":
            public[fn["path"].strip("/")] = app
            if fn.get("well_known"):
                public[".well-known"] = app
            if fn.get("web_root"):
                web[fn["web_root"].strip("/")] = app
    return apps, public, internal, push, web


def _tcp_ok(hostport: str) -> bool:
    if not hostport:
        return False
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _backing_services() -> dict[str, dict]:
    services = {
        "firestore": os.environ.get("FIRESTORE_EMULATOR_HOST", ""),
        "pubsub": os.environ.get("PUBSUB_EMULATOR_HOST", ""),
        "cloud_tasks": get_settings().tasks_emulator_host,
        "anvil": urllib.parse.urlparse(os.environ.get("PAYLOOM_CHAIN_RPC_URL", "")).netloc,
    }
    for item in filter(None, os.environ.get("PAYLOOM_LOCAL_SIMULATORS", "").split(",")):
        name, _, url = item.partition("=")
        services[name] = urllib.parse.urlparse(url).netloc
    return {name: {"address": addr, "ok": _tcp_ok(addr)} for name, addr in services.items()}


class Gateway:
    def __init__(self):
        self.apps, self.public, self.internal, self.push, self.web = _load_apps()
        self.started = time.time()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        parts = path.strip("/").split("/")
        app = None
        if path == "/healthz":
            return self._json(start_response, *self.health())
        if path == "/openapi.json":
            from shared.platform.openapi import build_openapi
            return self._json(start_response, 200, build_openapi())
        if parts[0] in self.web:
            return self.web[parts[0]](environ, start_response)
        if parts[0] == ".well-known":
            app = self.public.get(".well-known")
        elif len(parts) >= 2 and parts[0] == "v1":
            app = self.public.get(parts[1])
        elif len(parts) >= 2 and parts[0] == "_fn":
            app = self.internal.get(parts[1])
        elif len(parts) >= 2 and parts[0] == "_push":
            app = self.push.get(parts[1])
            environ = {**environ, "PATH_INFO": "/"}
        if app is None:
            return self._json(start_response, 404, {"error": {
                "type": "invalid_request_error", "code": "unknown_route",
                "message": f"Unrecognized request URL ({environ.get('REQUEST_METHOD')}: {path}).",
                "param": None}})
        return app(environ, start_response)

    def health(self) -> tuple[int, dict]:
        services = _backing_services()
        functions = {}
        for fn in manifest.functions():
            functions[fn["name"]] = {"trigger": fn["trigger"], "ok": fn["name"] in self.apps,
                                     "path": f"/v1/{fn['path']}" if fn.get("path") else f"/_fn/{fn['name']}"}
        required = ("firestore", "pubsub", "cloud_tasks")
        ok = all(f["ok"] for f in functions.values()) and all(services[s]["ok"] for s in required)
        return (200 if ok else 503), {"ok": ok, "functions": functions, "services": services,
                                      "uptime_seconds": round(time.time() - self.started, 1)}

    @staticmethod
    def _json(start_response, status: int, payload: dict):
        body = json.dumps(payload, indent=1).encode()
        reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "OK")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(body)))])
        return [body]


def create_gateway():
    from infra.local import wiring
    wiring.install_local_adapters()
    return Gateway()


app = None
if os.environ.get("PAYLOOM_GATEWAY_AUTOLOAD") == "1":  # gunicorn entry: infra.local.gateway:app
    app = create_gateway()
