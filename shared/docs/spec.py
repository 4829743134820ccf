"""Where the docs function gets the OpenAPI document it renders.

A deployed docs function runs alone: it does not import the other functions' routers (nor
should it, with their secrets and chain clients), so the build freezes the document into
``shared/docs/openapi.json`` of the docs function's folder (``freeze``, called by the build
with every function loaded). Without that file (the local gateway, tests) the document is built
live from the routers this process has loaded, and rebuilt when more are loaded.

Either way the bytes and their hash are computed once: ``/docs/openapi.json?v=<hash>`` is
cached for a year and the unversioned URL revalidates with its ETag.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

from shared.platform import catalog, logs
from shared.platform.openapi import build_openapi
from shared.platform.router import ROUTERS

FROZEN = Path(__file__).resolve().parent / "openapi.json"
_log = logs.get_logger(__name__)
_lock = threading.Lock()
_cache: dict[tuple, Document] = {}


@dataclasses.dataclass(frozen=True)
class Document:
    spec: dict[str, Any]
    body: bytes
    digest: str   # sha256[:12] of body

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _document(spec: dict[str, Any]) -> Document:
    body = json.dumps(spec, separators=(",", ":"), ensure_ascii=False).encode()
    return Document(spec, body, hashlib.sha256(body).hexdigest()[:12])


def _fingerprint() -> tuple:
    """Changes when this process loads more routers or event types."""
    return ("live", len(ROUTERS), sum(len(r.routes) for r in ROUTERS), len(catalog.CATALOG))


def current(frozen: Path = FROZEN) -> Document:
    key = ("frozen", str(frozen), frozen.stat().st_mtime_ns) if frozen.is_file() else _fingerprint()
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(key)
        if found is None:
            if key[0] == "frozen":
                found = _document(json.loads(frozen.read_bytes()))
            else:
                found = _document(build_openapi())
                key = _fingerprint()   # building loads the whole event catalogue
                if not found.spec["paths"]:
                    logs.log(_log, logging.WARNING, "the API reference has no operations: the "
                             "build did not freeze openapi.json and no router is loaded")
            _cache.clear()
            _cache[key] = found
    return found


def freeze(dest_dir: Path, spec: dict[str, Any] | None = None) -> Path:
    """Write the document into ``dest_dir/openapi.json`` (the build's docs function folder,
    ``<out>/docs/shared/docs``), from a process where every function is loaded."""
    spec = spec if spec is not None else build_openapi(strict=True)
    if not spec["paths"]:
        raise RuntimeError("freeze the OpenAPI document with every function loaded (no routes found)")
    path = Path(dest_dir) / FROZEN.name
    path.write_bytes(_document(spec).body)
    return path
