"""Static files of the pages: the capability's own (``<package>/static``) and vendored npm files.

Vendored files come from ``node_modules`` at the exact versions of ``package-lock.json``
(``npm ci``); the build copies them into ``shared/web/static/vendor`` of each function with a
``web_root`` (``infra/build.py``), so a deployed function serves them itself. No CDN, ever.

URLs carry the content hash (``?v=<sha256[:12]>``): a response with the right hash is cached for
a year (``immutable``); anything else is served ``no-cache`` with an ETag.
"""
from __future__ import annotations

import functools
import hashlib
import mimetypes
from pathlib import Path

import flask

from shared.platform.errors import NotFound
from shared.web import messages

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(__file__).resolve().parent
VENDOR_DIR = WEB_DIR / "static" / "vendor"

# public name → path under node_modules (the package is a devDependency pinned in package.json)
VENDOR: dict[str, str] = {
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}
MAX_NAME = 200   # longer names are no file of ours (and would make the OS raise)
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
         ".woff2": "font/woff2", ".json": "application/json"}


def vendor_source(name: str) -> Path | None:
    """Where a vendored file is read from: the built copy, else node_modules."""
    rel = VENDOR.get(name)
    if rel is None:
        return None
    built = VENDOR_DIR / name
    return built if built.is_file() else REPO_ROOT / "node_modules" / rel


@functools.lru_cache(maxsize=256)
def _load(path: str) -> tuple[bytes, str]:
    data = Path(path).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


class StaticFiles:
    """The static files of one page capability, served under ``/<web_root>/static/``."""

    def __init__(self, static_dir: Path | None, url_prefix: str):
        self.static_dir = static_dir.resolve() if static_dir else None
        self.url_prefix = url_prefix.rstrip("/")

    def path_of(self, name: str) -> Path | None:
        if not name or len(name) > MAX_NAME or "\x00" in name or "\\" in name:
            return None
        if name.startswith("vendor/"):
            return vendor_source(name[len("vendor/"):])
        if self.static_dir is None or name.startswith((".", "/")):
            return None
        try:
            path = (self.static_dir / name).resolve()
        except (OSError, ValueError):
            return None
        if self.static_dir not in path.parents:   # no ../ escapes
            return None
        return path

    def _file(self, name: str) -> Path | None:
        path = self.path_of(name)
        try:
            return path if path is not None and path.is_file() else None
        except (OSError, ValueError):
            return None

    def url(self, name: str) -> str:
        """``/<root>/static/<name>?v=<hash>``, for templates (``static('checkout.js')``)."""
        path = self._file(name)
        if path is None:
            raise LookupError(f"no static file {name!r}")
        return f"{self.url_prefix}/{name}?v={_load(str(path))[1]}"

    def response(self, name: str, request: flask.Request) -> flask.Response:
        path = self._file(name)
        if path is None:
            raise NotFound(messages.FILE_MISSING, code="unknown_route")
        data, digest = _load(str(path))
        etag = f'"{digest}"'
        cache = ("public, max-age=31536000, immutable" if request.args.get("v") == digest
                 else "no-cache")
        if etag in request.headers.get("If-None-Match", ""):
            return flask.Response(status=304, headers={"ETag": etag, "Cache-Control": cache})
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return flask.Response(data, status=200, headers={
            "Content-Type": kind, "ETag": etag, "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "same-origin"})
