"""The HTTP router every HTTP, task and scheduler function uses.

One place parses and limits the request, validates it with pydantic, authenticates, applies rate
limits and idempotency, calls the service and renders the response or the error envelope.
Bad input is always a 4xx envelope; anything unexpected is a logged 500 with no internals.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import urllib.parse
from typing import Any, Callable, Iterable, Sequence

import flask
from pydantic import BaseModel, ValidationError

from shared.platform import auth as auth_mod
from shared.platform import logs
from shared.platform.deps import Deps, get_deps
from shared.platform.errors import (INTERNAL_ERROR, InvalidRequest, MethodNotAllowed, NotFound,
                                    PayloadTooLarge, PayloomError, PermissionDenied,
                                    UnsupportedMediaType)
from shared.platform.ids import new_id
from shared.platform.idempotency import (IdempotencyStore, StoredResponse, fingerprint,
                                         validate_key)
from shared.platform.ratelimit import Limit, enforce

_log = logs.get_logger(__name__)
MUTATING = {"POST", "PATCH", "DELETE", "PUT"}
RETRYABLE = {429, 503}  # responses never stored under an Idempotency-Key
# Route auth modes: who may call.
PUBLIC, SERVICE = "public", "service"
USER_KINDS = ("user", "api_key", "service")


@dataclasses.dataclass
class Route:
    method: str
    path: str
    handler: Callable[..., Any]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    auth: str | tuple[str, ...]
    scopes: tuple[str, ...]
    status: int
    idempotent: bool
    rate_limits: tuple[tuple[Limit, str], ...]
    summary: str
    tags: tuple[str, ...]
    form: bool = False
    regex: re.Pattern = dataclasses.field(init=False)

    def __post_init__(self):
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path.rstrip("/") or "/")
        self.regex = re.compile(f"^{pattern}/?$")


@dataclasses.dataclass
class Context:
    """What a handler may use: the caller, the parsed input and the ports."""
    request: flask.Request
    principal: auth_mod.Principal
    deps: Deps
    body: Any = None
    query: Any = None
    request_id: str = ""
    idempotency_key: str | None = None
    response_headers: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def now(self):
        return self.deps.clock.now()

    @property
    def ip(self) -> str:
        return client_ip(self.request, self.deps.settings)


@dataclasses.dataclass
class Result:
    """A handler may return this to choose the status or add headers."""
    body: Any
    status: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def client_ip(request: flask.Request, settings=None) -> str:
    """The caller's address for per-IP limits.

    In production only the entries our own proxies appended can be trusted: Google's front end
    appends the address it saw, so the client is the entry ``forwarded_trusted_hops`` from the
    end (a client-supplied X-Forwarded-For only adds entries to the left). Locally there is no
    proxy and tests name the client with the first entry.
    """
    entries = [e.strip() for e in request.headers.get("X-Forwarded-For", "").split(",") if e.strip()]
    if not entries:
        return request.remote_addr or "unknown"
    settings = settings or get_deps().settings
    if settings.is_production:
        return entries[max(0, len(entries) - settings.forwarded_trusted_hops)]
    return entries[0]


ROUTERS: list["Router"] = []  # every router created in this process, for the OpenAPI document


class Router:
    def __init__(self, name: str, *, public_prefix: str | None = None,
                 rate_limits: Sequence[tuple[Limit, str]] = (), tags: Sequence[str] = ()):
        ROUTERS.append(self)
        self.name = name
        self.public_prefix = public_prefix and f"/v1/{public_prefix.strip('/')}"
        self.prefixes = [p for p in (public_prefix and f"/v1/{public_prefix.strip('/')}",
                                     f"/_fn/{name}", f"/_fn/{name.replace('_', '-')}") if p]
        self.routes: list[Route] = []
        self.default_rate_limits = tuple(rate_limits)
        self.tags = tuple(tags) or (name,)

    # --- registration -------------------------------------------------------------------
    def route(self, method: str, path: str, *, body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, response: type[BaseModel] | None = None,
              auth: str | tuple[str, ...] = USER_KINDS, scopes: Iterable[str] = (),
              status: int = 200, idempotent: bool | None = None,
              rate_limits: Sequence[tuple[Limit, str]] = (), inherit_limits: bool = True,
              summary: str = "", form: bool = False):
        """``rate_limits``: (Limit, keyed-by) pairs, keyed by "ip", "principal" or "tenant";
        the router's defaults apply too unless ``inherit_limits=False``. ``form=True`` also
        accepts application/x-www-form-urlencoded bodies (providers that POST forms, e.g. Apple's
        form_post callback)."""
        def register(fn):
            self.routes.append(Route(
                method.upper(), path, fn, body, query, response, auth, tuple(scopes), status,
                method.upper() == "POST" if idempotent is None else idempotent,
                (tuple(self.default_rate_limits) if inherit_limits else ()) + tuple(rate_limits),
                summary or (fn.__doc__ or "").strip().split("\n")[0], self.tags, form))
            return fn
        return register

    def get(self, path: str, **kw):
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw):
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw):
        return self.route("DELETE", path, **kw)

    # --- dispatch ------------------------------------------------------------------------
    def __call__(self, request: flask.Request) -> flask.Response:
        deps = get_deps()
        request_id = request.headers.get("X-Request-Id") or new_id("req", 20)
        logs.bind(trace_header=request.headers.get("X-Cloud-Trace-Context", ""),
                  request_id=request_id, function=self.name)
        headers = {"Request-Id": request_id}
        try:
            response = self._dispatch(request, deps, request_id)
        except PayloomError as exc:
            if exc.status >= 500:
                logs.log(_log, logging.ERROR, "service error", code=exc.code)
            response = _json_response(exc.status, exc.envelope(), exc.headers)
        except Exception:  # noqa: BLE001 — never leak internals
            _log.exception("unhandled error in %s %s", request.method, request.path)
            response = _json_response(500, INTERNAL_ERROR)
        for k, v in headers.items():
            response.headers.setdefault(k, v)
        return response

    def relative_path(self, path: str) -> str:
        for prefix in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix):] or "/"
        return path or "/"

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        rel = self.relative_path(path)
        allowed = []
        for route in self.routes:
            m = route.regex.match(rel)
            if m:
                if route.method == method:
                    params = m.groupdict()
                    for name, value in params.items():
                        if not _valid_path_value(value):  # no object can have this id
                            raise NotFound(f"No such object: {value[:64]!r}", param=name)
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path}; use {', '.join(sorted(set(allowed)))}.",
                                   headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise NotFound(f"Unrecognized request URL ({method}: {path}).", code="unknown_route")

    def _dispatch(self, request: flask.Request, deps: Deps, request_id: str) -> flask.Response:
        route, path_params = self.match(request.method, request.path)
        raw = _read_body(request, deps.settings.max_body_bytes)
        principal = self._authenticate(route, request, deps)  # 401 before describing the schema
        body = _parse_body(route, request, raw)
        query = _parse_query(route, request)
        ctx = Context(request, principal, deps, body, query, request_id)
        now = deps.clock.now()
        rate_headers: dict[str, str] = {}
        for rule, keyed_by in route.rate_limits:
            key = {"ip": ctx.ip, "principal": principal.id, "tenant": principal.tenant_id}[keyed_by]
            rate_headers = enforce(deps.db, rule, key, now).headers()

        store = claim = None
        idem_key = request.headers.get("Idempotency-Key")
        if idem_key is not None and route.idempotent and request.method in MUTATING:
            ctx.idempotency_key = validate_key(idem_key)
            store = IdempotencyStore(deps.db, ttl_seconds=deps.settings.idempotency_ttl_seconds,
                                     lock_seconds=deps.settings.idempotency_lock_seconds)
            scope = f"{principal.kind}:{principal.tenant_id}:{principal.id}"
            if principal.kind == "anonymous":  # strangers must not share one key space
                scope += f":{ctx.ip}"
            outcome = store.claim(scope, ctx.idempotency_key,
                                  fingerprint(request.method, self.relative_path(request.path), raw), now)
            if isinstance(outcome, StoredResponse):
                resp = flask.Response(outcome.body, status=outcome.status,
                                      content_type=outcome.content_type)
                resp.headers["Idempotent-Replayed"] = "true"
                return resp
            claim = outcome
        try:
            result = route.handler(ctx, **path_params)
            response = self._render(route, result, ctx)
        except PayloomError as exc:
            response = _json_response(exc.status, exc.envelope(), exc.headers)
        except Exception:
            _log.exception("unhandled error in %s %s", request.method, request.path)
            response = _json_response(500, INTERNAL_ERROR)
        if claim is not None:
            if response.status_code in RETRYABLE:
                # "Try again later" is not an outcome: the same key must be able to succeed.
                store.release(claim)
            else:
                # Like Stripe, the first outcome is stored whatever it is, even a 500.
                store.complete(claim, response.status_code, response.get_data(), response.content_type)
        for k, v in rate_headers.items():
            response.headers.setdefault(k, v)
        return response

    def _authenticate(self, route: Route, request: flask.Request, deps: Deps) -> auth_mod.Principal:
        if route.auth == PUBLIC:
            return dataclasses.replace(auth_mod.ANONYMOUS, ip=client_ip(request, deps.settings))
        if route.auth == SERVICE:
            return auth_mod.authenticate_service(request.headers, deps.settings)
        principal = auth_mod.authenticate(request.headers, deps.settings, ip=client_ip(request, deps.settings))
        kinds = (route.auth,) if isinstance(route.auth, str) else route.auth
        if principal.kind not in kinds:
            raise PermissionDenied("This credential type cannot call this endpoint.",
                                   code="principal_not_allowed")
        principal.require_scopes(route.scopes)
        return principal

    def _render(self, route: Route, result: Any, ctx: Context) -> flask.Response:
        status, headers = route.status, dict(ctx.response_headers)
        if isinstance(result, Result):
            status = result.status or status
            headers.update(result.headers)
            result = result.body
        if isinstance(result, flask.Response):  # a ready non-JSON response (CSV, HTML)
            for k, v in headers.items():
                result.headers.setdefault(k, v)
            return result
        if result is None:
            return flask.Response(status=204 if status == 200 else status, headers=headers)
        if isinstance(result, BaseModel):
            payload = result.model_dump(mode="json", by_alias=True)
        else:
            payload = result
        return _json_response(status, payload, headers)


def _valid_path_value(value: str) -> bool:
    """Path parameters become Firestore document ids: refuse what Firestore cannot name
    ('.', '..', '__x__', over 256 characters, control characters)."""
    return (0 < len(value) <= 256 and value not in (".", "..") and value.isprintable()
            and not (value.startswith("__") and value.endswith("__")))


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> flask.Response:
    resp = flask.Response(json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                          status=status, content_type="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _read_body(request: flask.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Request bodies are limited to {limit} bytes.")
    data = request.stream.read(limit + 1) if length is None else request.get_data(cache=True)
    if len(data) > limit:
        raise PayloadTooLarge(f"Request bodies are limited to {limit} bytes.")
    return data


def _parse_body(route: Route, request: flask.Request, raw: bytes) -> Any:
    if route.body is None:
        if raw.strip() and route.method in MUTATING and raw.strip() not in (b"{}", b"null"):
            raise InvalidRequest("This endpoint takes no request body.", code="unexpected_body")
        return None
    ctype = (request.mimetype or "").lower()
    if raw and route.form and ctype == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("The form body is malformed.", code="invalid_form") from None
        return _validate(route.body, dict(pairs))
    if raw and ctype != "application/json":
        raise UnsupportedMediaType("Send the request body as Content-Type: application/json.")
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return _validate(route.body, payload)


def _parse_query(route: Route, request: flask.Request) -> Any:
    if route.query is None:
        return None
    return _validate(route.query, request.args.to_dict(flat=True))


def _validate(model: type[BaseModel], payload: dict) -> BaseModel:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            message, code = f"Received unknown parameter: {param}", "parameter_unknown"
        elif kind == "missing":
            message, code = f"Missing required param: {param}.", "parameter_missing"
        else:
            message, code = f"Invalid {param}: {first.get('msg', 'invalid value')}", "parameter_invalid"
        raise InvalidRequest(message, code=code, param=param) from None
