"""``Pages``: the router of a function's server-rendered pages (``/<web_root>/...``).

The JSON API has ``shared.platform.router.Router``; pages differ in what they owe a browser:
HTML errors instead of the JSON envelope, a strict CSP with a fresh nonce on every response,
CSRF checked on every POST before the handler runs, the language negotiated per request, and
static files. A handler gets a ``PageContext`` and returns a ``Page`` (template + context) or a
``flask.Response`` of its own (a redirect, JSON for polling, an event stream).

Errors: a ``PayloomError`` renders ``web/error.html`` with its status and its (user-facing)
message; anything else is logged and answers a plain 500 page that says nothing internal.
``shared/web``'s own refusals (``messages``) are translated through its catalogue, the
fallback of every capability's (``i18n.chain``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flask
import jinja2
from werkzeug.exceptions import HTTPException

from shared.platform import logs
from shared.platform.deps import Deps, get_deps
from shared.platform.errors import MethodNotAllowed, NotFound, PayloomError
from shared.platform.ids import new_id
from shared.platform.models import is_doc_id
from shared.platform.safe_imports import restore_recursion_limit
from shared.web import i18n, messages, security
from shared.web.assets import WEB_DIR, StaticFiles
from shared.web.config import get_web_settings

_log = logs.get_logger(__name__)
PAGES: list["Pages"] = []   # every page router created in this process (tests discover routes)


@dataclasses.dataclass
class Page:
    template: str
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PageContext:
    request: flask.Request
    deps: Deps
    lang: str
    translations: Any
    csrf: security.Csrf
    nonce: str
    static: Callable[[str], str]
    root: str
    params: dict[str, str]

    @property
    def now(self) -> dt.datetime:
        return self.deps.clock.now()

    @property
    def form(self) -> Mapping[str, str]:
        return self.request.form

    def gettext(self, message: str, **values: Any) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    _ = gettext


@dataclasses.dataclass
class _Route:
    method: str
    path: str
    handler: Callable[[PageContext], Page | flask.Response]
    csrf: bool
    regex: re.Pattern = dataclasses.field(init=False)

    def __post_init__(self):
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path.rstrip("/") or "/")
        self.regex = re.compile(f"^{pattern}/?$")


class Pages:
    """``Pages("checkout", web_root="pay", package_dir=Path(__file__).parent)``: templates in
    ``<package_dir>/templates`` (then ``shared/web/templates``), static files in
    ``<package_dir>/static``, catalogues in ``<package_dir>/locale``. ``csp`` adds sources to the
    policy (e.g. ``form_action=["https://checkout.processor.example"]``)."""

    def __init__(self, name: str, *, web_root: str, package_dir: Path,
                 csp: Mapping[str, Any] | None = None):
        PAGES.append(self)
        self.name = name
        self.web_root = web_root.strip("/")
        self.prefixes = [f"/{self.web_root}", f"/_fn/{name}", f"/_fn/{name.replace('_', '-')}"]
        self.package_dir = Path(package_dir)
        self.csp = dict(csp or {})
        self.routes: list[_Route] = []
        self.static_files = StaticFiles(self.package_dir / "static"
                                        if (self.package_dir / "static").is_dir() else None,
                                        f"/{self.web_root}/static")
        self._envs: dict[str, jinja2.Environment] = {}

    # --- registration ----------------------------------------------------------------------
    def route(self, method: str, path: str, *, csrf: bool = True):
        def register(fn):
            self.routes.append(_Route(method.upper(), path, fn, csrf))
            return fn
        return register

    def get(self, path: str):
        return self.route("GET", path)

    def post(self, path: str, *, csrf: bool = True):
        return self.route("POST", path, csrf=csrf)

    # --- templates ---------------------------------------------------------------------------
    def translations(self, lang: str):
        """The capability's catalogue, falling back to ``shared/web``'s."""
        return i18n.chain((str(self.package_dir / "locale"), i18n.WEB_LOCALE), lang)

    def environment(self, lang: str) -> jinja2.Environment:
        env = self._envs.get(lang)
        if env is None:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader([str(self.package_dir / "templates"),
                                                str(WEB_DIR / "templates")]),
                autoescape=True, extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined,
                trim_blocks=True, lstrip_blocks=True)
            env.install_gettext_translations(  # type: ignore[attr-defined]
                self.translations(lang), newstyle=True)
            self._envs[lang] = env
        return env

    def render(self, ctx: PageContext, template: str, values: Mapping[str, Any]) -> str:
        return self.environment(ctx.lang).get_template(template).render(
            lang=ctx.lang, nonce=ctx.nonce, csrf_token=ctx.csrf.token, static=ctx.static,
            root=ctx.root, csrf_field=security.CSRF_FIELD, languages=get_web_settings().languages,
            request_path=ctx.request.path, **values)

    # --- dispatch ------------------------------------------------------------------------------
    def relative_path(self, path: str) -> str:
        for prefix in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix):] or "/"
        return path or "/"

    def match(self, method: str, rel: str) -> tuple[_Route, dict[str, str]]:
        found = [(r, m) for r in self.routes if (m := r.regex.match(rel))]
        if not found:
            raise NotFound(messages.PAGE_MISSING, code="unknown_route")
        wanted = "GET" if method == "HEAD" else method
        for route, m in found:
            if route.method == wanted:
                params = m.groupdict()
                if not all(is_doc_id(v) for v in params.values()):
                    raise NotFound(messages.PAGE_MISSING, code="resource_missing")
                return route, params
        allow = ", ".join(sorted({r.method for r, _ in found}))
        raise MethodNotAllowed(messages.METHOD_REFUSED, headers={"Allow": allow})

    def __call__(self, request: flask.Request) -> flask.Response:
        restore_recursion_limit()
        deps = get_deps()
        web = get_web_settings()
        request_id = request.headers.get("X-Request-Id") or new_id("req", 20)
        logs.bind(request_id=request_id, function=self.name,
                  trace_header=request.headers.get("X-Cloud-Trace-Context", ""))
        request.max_content_length = deps.settings.max_body_bytes
        lang = i18n.negotiate(request, web.languages)
        nonce = security.new_nonce()
        csrf = security.Csrf(request, web.csrf_key(deps.settings), secure=web.cookie_secure(deps.settings))
        ctx = PageContext(request=request, deps=deps, lang=lang,
                          translations=self.translations(lang),
                          csrf=csrf, nonce=nonce, static=self.static_files.url,
                          root=f"/{self.web_root}", params={})
        rel = self.relative_path(request.path)
        try:
            if rel.startswith("/static/") and request.method in ("GET", "HEAD"):
                return self.static_files.response(rel[len("/static/"):], request)
            route, ctx.params = self.match(request.method, rel)
            if route.method == "POST" and route.csrf:
                csrf.verify(request.form)
            result = route.handler(ctx)
            response = (result if isinstance(result, flask.Response)
                        else self._html(ctx, result.template, result.context, result.status,
                                        result.headers))
        except PayloomError as exc:
            if exc.status >= 500:
                logs.log(_log, logging.ERROR, "page service error", code=exc.code)
            message = ctx.gettext(exc.message) if exc.message in messages.OWN else exc.message
            response = self._error(ctx, exc.status, message, exc.headers)
        except HTTPException as exc:  # a malformed or oversized form, raised by werkzeug
            status = exc.code if exc.code and 400 <= exc.code < 500 else 400
            response = self._error(ctx, status, ctx.gettext(messages.UNREADABLE), {})
        except Exception:  # noqa: BLE001 — never show internals
            _log.exception("unhandled error in page %s %s", request.method, request.path)
            response = self._error(ctx, 500, ctx.gettext(messages.FAILED), {})
        csrf.set_cookie(response)
        if request.args.get("lang") in web.languages:
            response.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax",
                                secure=web.cookie_secure(deps.settings), path="/", httponly=True)
        response.headers.setdefault("Request-Id", request_id)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.add("Vary", "Accept-Language, Cookie")
        return response

    def _html(self, ctx: PageContext, template: str, values: Mapping[str, Any], status: int,
              headers: Mapping[str, str]) -> flask.Response:
        body = self.render(ctx, template, values)
        response = flask.Response(body, status=status, content_type="text/html; charset=utf-8")
        for k, v in security.security_headers(ctx.nonce, **self.csp).items():
            response.headers[k] = v
        for k, v in headers.items():
            response.headers[k] = v
        return response

    def _error(self, ctx: PageContext, status: int, message: str,
               headers: Mapping[str, str]) -> flask.Response:
        try:
            return self._html(ctx, "web/error.html", {"status": status, "message": message},
                              status, headers)
        except Exception:  # noqa: BLE001 — a broken template must not hide the error
            _log.exception("error page failed to render")
            return flask.Response("Error", status=status, content_type="text/plain; charset=utf-8")
