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
from pydantic_core import to_jsonable_python

from shared.platform import auth as auth_mod
from shared.platform import jsonbody, logs
from shared.platform.safe_imports import restore_recursion_limit
from shared.platform.deps import Deps, get_deps
from shared.platform.errors import (INTERNAL_ERROR, InvalidRequest, MethodNotAllowed, NotFound,
                                    PayloadTooLarge, PayloomError, PermissionDenied,
                                    UnsupportedMediaType, www_authenticate)
from shared.platform.ids import new_id
from shared.platform.models import is_doc_id
from shared.platform.errors import IdempotencyError
from shared.platform.idempotency import (AtomicKey, IdempotencyStore, Replay, StoredResponse,
                                         fingerprint, validate_key)
from shared.platform.uow import Conflicted, Contention, UnitOfWork, run_unit
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
    atomic: bool = True
    secret_fields: tuple[str, ...] = ()
    other_statuses: tuple[int, ...] = ()
    regex: re.Pattern = dataclasses.field(init=False)
    specificity: tuple[int, ...] = dataclasses.field(init=False)

    def __post_init__(self):
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path.rstrip("/") or "/")
        self.regex = re.compile(f"^{pattern}/?$")
        # Literal segments outrank parameters, left to right: /dids/challenge beats /dids/{did}.
        self.specificity = tuple(0 if seg.startswith("{") else 1 for seg in self.path.strip("/").split("/"))


@dataclasses.dataclass
class Context:
    """What a handler may use: the caller, the parsed input and the ports."""
    request: flask.Request
    principal: auth_mod.Principal
    deps: Deps
    body: Any = None
    query: Any = None
    request_id: str = ""
    raw_body: bytes = b""   # the exact bytes the body was parsed from (signature checks)
    idempotency_key: str | None = None
    uow: UnitOfWork | None = None
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
                 rate_limits: Sequence[tuple[Limit, str]] = (), tags: Sequence[str] = (),
                 localize_errors: "ErrorLocalizer | None" = None):
        """``localize_errors(request, error)``: called on every error this router answers (the
        router's own too: unknown route, 401, 405, 415, body validation, rate limits; and
        idempotent replays), may add fields to the envelope's ``error`` object, e.g. a
        translated message for a phone app; ``Vary: Accept-Language`` is then set."""
        ROUTERS.append(self)
        self.localize_errors = localize_errors
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
              summary: str = "", form: bool = False, atomic: bool = True,
              secret_fields: Sequence[str] = (), other_statuses: Sequence[int] = ()):
        """``rate_limits``: (Limit, keyed-by) pairs, keyed by "ip", "principal" or "tenant";
        the router's defaults apply too unless ``inherit_limits=False``. ``form=True`` also
        accepts application/x-www-form-urlencoded bodies (providers that POST forms, e.g. Apple's
        form_post callback). ``atomic=False`` is for the rare route that must call the outside
        world between its reads and its writes: the key is claimed with a lease first and the
        handler runs once. ``secret_fields``: top-level response fields shown once and never
        stored under an Idempotency-Key nor replayed (API key secrets). ``other_statuses``: the
        other 2xx statuses the route answers with the same model (201 created or 200 existing),
        so the OpenAPI document lists every one (checked in tests)."""
        def register(fn):
            self.routes.append(Route(
                method.upper(), path, fn, body, query, response, auth, tuple(scopes), status,
                method.upper() == "POST" if idempotent is None else idempotent,
                (tuple(self.default_rate_limits) if inherit_limits else ()) + tuple(rate_limits),
                summary or (fn.__doc__ or "").strip().split("\n")[0], self.tags, form,
                atomic, tuple(secret_fields), tuple(other_statuses)))
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
        restore_recursion_limit()
        deps = get_deps()
        request_id = request.headers.get("X-Request-Id") or new_id("req", 20)
        logs.bind(trace_header=request.headers.get("X-Cloud-Trace-Context", ""),
                  request_id=request_id, function=self.name)
        headers = {"Request-Id": request_id}
        try:
            if request.method == "OPTIONS":
                response = self._options(request.path)
            else:
                response = self._dispatch(request, deps, request_id)
        except PayloomError as exc:
            if exc.status >= 500:
                logs.log(_log, logging.ERROR, "service error", code=exc.code)
            response = _json_response(exc.status, exc.envelope(), exc.headers)
        except Exception:  # noqa: BLE001 — never leak internals
            _log.exception("unhandled error in %s %s", request.method, request.path)
            response = _json_response(500, INTERNAL_ERROR)
        if self.localize_errors is not None:
            response = _localized(response, request, self.localize_errors)
        if response.status_code == 401:
            token = auth_mod.bearer_token(request.headers, forwarded=deps.settings.is_production)
            headers["WWW-Authenticate"] = www_authenticate(token_rejected=token is not None)
        for k, v in headers.items():
            response.headers.setdefault(k, v)
        return response

    def relative_path(self, path: str) -> str:
        for prefix in self.prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix):] or "/"
        return path or "/"

    def resource_routes(self, method: str, path: str) -> list[tuple[Route, re.Match]]:
        """The routes of the resource at ``path``: those of its most specific template only, so
        ``/dids/challenge`` is not also ``/dids/{did}``. NotFound when nothing matches."""
        rel = self.relative_path(path)
        found = [(route, m) for route in self.routes if (m := route.regex.match(rel))]
        if not found:
            raise NotFound(f"Unrecognized request URL ({method}: {path[:200]}).", code="unknown_route")
        best = max(route.specificity for route, _ in found)
        return [(route, m) for route, m in found if route.specificity == best]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        routes = self.resource_routes(method, path)
        wanted = "GET" if method == "HEAD" else method  # HEAD is GET without the body (werkzeug drops it)
        for route, m in routes:
            if route.method == wanted:
                params = m.groupdict()
                for name, value in params.items():
                    if not _valid_path_value(value):  # no object can have this id
                        raise NotFound(f"No such object: {value[:64]!r}", param=name)
                return route, params
        allow = _allow_header(route.method for route, _ in routes)
        raise MethodNotAllowed(f"{method} is not allowed on {path[:200]}; use {allow}.", headers={"Allow": allow})

    def _options(self, path: str) -> flask.Response:
        """OPTIONS lists exactly the methods routed for this path (RFC 9110 9.3.7)."""
        allow = _allow_header(route.method for route, _ in self.resource_routes("OPTIONS", path))
        response = flask.Response(status=204, headers={"Allow": allow})
        del response.headers["Content-Type"]
        return response

    def _dispatch(self, request: flask.Request, deps: Deps, request_id: str) -> flask.Response:
        route, path_params = self.match(request.method, request.path)
        raw = _read_body(request, deps.settings.max_body_bytes)
        principal = self._authenticate(route, request, deps)  # 401 before describing the schema
        body = _parse_body(route, request, raw)
        query = _parse_query(route, request)
        ctx = Context(request, principal, deps, body, query, request_id, raw_body=raw)
        now = deps.clock.now()
        rate_headers: dict[str, str] = {}
        for rule, keyed_by in route.rate_limits:
            key = {"ip": ctx.ip, "principal": principal.id, "tenant": principal.tenant_id}[keyed_by]
            rate_headers = enforce(deps.db, rule, key, now).headers()

        idem_key = request.headers.get("Idempotency-Key")
        keyed = idem_key is not None and route.idempotent and request.method in MUTATING
        if keyed:
            ctx.idempotency_key = validate_key(idem_key)
        scope = f"{principal.kind}:{principal.tenant_id}:{principal.id}"
        if principal.kind == "anonymous":  # strangers must not share one key space
            scope += f":{ctx.ip}"
        fp = fingerprint(request.method, self.relative_path(request.path), raw) if keyed else ""
        if route.atomic:
            response = self._run_atomic(route, ctx, path_params, scope if keyed else None, fp, now)
        else:
            response = self._run_claimed(route, ctx, path_params, scope if keyed else None, fp, now)
        for k, v in rate_headers.items():
            response.headers.setdefault(k, v)
        return response

    def _call(self, route: Route, ctx: Context, path_params: dict[str, str]) -> flask.Response:
        """Run the handler and render its result or its error (writes are decided by caller).
        Errors about the Idempotency-Key itself and contention propagate: they are not the
        request's outcome and are never stored under the key."""
        try:
            return self._render(route, route.handler(ctx, **path_params), ctx)
        except (Contention, IdempotencyError):
            if ctx.uow is not None:
                ctx.uow.discard()
            raise
        except PayloomError as exc:
            if ctx.uow is not None and not ctx.uow.keep_writes_on_error:
                ctx.uow.discard()
            return _json_response(exc.status, exc.envelope(), exc.headers)

    def _run_atomic(self, route: Route, ctx: Context, path_params: dict[str, str],
                    scope: str | None, fp: str, now) -> flask.Response:
        """The atomic phase: reads, writes, events and the stored response in ONE commit,
        run again with fresh reads when a concurrent writer got there first."""
        deps = ctx.deps

        def attempt(uow: UnitOfWork) -> flask.Response:
            ctx.uow = uow
            key = None
            if scope is not None:
                key = AtomicKey(deps.db, scope, ctx.idempotency_key, fp, now,
                                ttl_seconds=deps.settings.idempotency_ttl_seconds)
                uow.prefetch(key.ref, key.check)
                if uow.attempt:  # we lost a race: a duplicate may have completed meanwhile
                    uow.flush_prefetch()
            response = self._call(route, ctx, path_params)
            if response.status_code in RETRYABLE or response.status_code >= 500:
                uow.discard()  # nothing is committed: the same request may succeed later
            elif key is not None:
                body = _redact(response, route.secret_fields)
                write = uow.set if uow.was_read(key.ref) else uow.create
                write(key.ref, key.record(response.status_code, body, response.content_type))
            return response

        try:
            return run_unit(deps, attempt, now=now)
        except Replay as replay:
            return _replayed(replay.stored)
        except IdempotencyError as exc:
            return _json_response(exc.status, exc.envelope(), exc.headers)

    def _run_claimed(self, route: Route, ctx: Context, path_params: dict[str, str],
                     scope: str | None, fp: str, now) -> flask.Response:
        """Routes that call the outside world mid-request: claim the key first (a lease), run
        once, commit once, then store the response."""
        deps = ctx.deps
        store = claim = None
        if scope is not None:
            store = IdempotencyStore(deps.db, ttl_seconds=deps.settings.idempotency_ttl_seconds,
                                     lock_seconds=deps.settings.idempotency_lock_seconds)
            outcome = store.claim(scope, ctx.idempotency_key, fp, now)
            if isinstance(outcome, StoredResponse):
                return _replayed(outcome)
            claim = outcome
        ctx.uow = UnitOfWork(deps, now=now)
        try:
            response = self._call(route, ctx, path_params)
            ctx.uow.commit()
            ctx.uow.publish()
        except Conflicted:
            response = _json_response(503, Contention().envelope(), {"Retry-After": "1"})
        except Contention as exc:
            response = _json_response(exc.status, exc.envelope(), exc.headers)
        except Exception:
            _log.exception("unhandled error in %s %s", ctx.request.method, ctx.request.path)
            response = _json_response(500, INTERNAL_ERROR)
        if claim is not None:
            if response.status_code in RETRYABLE or response.status_code >= 500:
                store.release(claim)  # "try again later" is not an outcome
            else:
                store.complete(claim, response.status_code, _redact(response, route.secret_fields),
                               response.content_type)
        return response

    def _authenticate(self, route: Route, request: flask.Request, deps: Deps) -> auth_mod.Principal:
        if route.auth == PUBLIC:
            return dataclasses.replace(auth_mod.ANONYMOUS, ip=client_ip(request, deps.settings))
        if route.auth == SERVICE:
            return auth_mod.authenticate_service(request.headers, deps.settings)
        principal = auth_mod.authenticate(request.headers, deps.settings, ip=client_ip(request, deps.settings))
        principal = auth_mod.resolve(principal, request.headers, deps.settings, self.name)
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
        payload = to_jsonable_python(result, by_alias=True)
        if ctx.deps.settings.strict_checks:
            if status != route.status and status not in route.other_statuses:
                raise ResponseMismatch(f"{route.method} {route.path} answered {status}, which it "
                                       f"does not declare (status/other_statuses)")
            if route.response is not None:
                problem = untyped_answer(route, result)
                if problem:
                    raise ResponseMismatch(problem)
                _check_response(route, payload)
        return _json_response(status, payload, headers)


def untyped_answer(route: Route, body: Any) -> str | None:
    """Why ``body`` (what a handler returned) is not its route's declared model, or None.

    Services build the models: a hand-built dict is refused even when it happens to validate,
    so the OpenAPI schema stays what the code really sends. A generic list answers with any
    parametrisation of ``ListResponse`` (its items are checked by validation)."""
    if route.response is None:
        return None if body is None else (
            f"{route.method} {route.path} declares no response but returned {type(body).__name__}")
    expected = route.response.__pydantic_generic_metadata__.get("origin") or route.response
    if not isinstance(body, expected):
        return (f"{route.method} {route.path} returned {type(body).__name__}, "
                f"not its declared {route.response.__name__}")
    return None


def _check_response(route: Route, payload: Any) -> None:
    """In tests every response is validated against its declared model, so the OpenAPI
    document's response schemas are exact (a mismatch is a bug: a logged 500)."""
    try:
        route.response.model_validate(payload)
    except ValidationError as exc:
        raise ResponseMismatch(f"{route.method} {route.path} returned a body that does not match "
                               f"{route.response.__name__}: {exc.errors()[:3]}") from None


class ResponseMismatch(Exception):
    """A handler returned something other than its declared response model."""


def _replayed(stored: StoredResponse) -> flask.Response:
    resp = flask.Response(stored.body, status=stored.status, content_type=stored.content_type)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _redact(response: flask.Response, fields: tuple[str, ...]) -> bytes:
    """The body to store under the key: a secret shown once is never stored nor replayed."""
    body = response.get_data()
    if not fields or response.content_type != "application/json":
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if isinstance(payload, dict):
        for name in fields:
            if payload.get(name) is not None:
                payload[name] = None
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return body


def _allow_header(methods: Iterable[str]) -> str:
    methods = set(methods) | {"OPTIONS"}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _valid_path_value(value: str) -> bool:
    """Path parameters become Firestore document ids: refuse what Firestore cannot name."""
    return is_doc_id(value)


ErrorLocalizer = Callable[[flask.Request, dict], None]


def _localized(response: flask.Response, request: flask.Request,
               localize: ErrorLocalizer) -> flask.Response:
    """The error envelope of ``response`` passed through ``localize`` (other answers as is)."""
    response.vary.add("Accept-Language")
    if response.status_code < 400 or response.mimetype != "application/json":
        return response
    payload = response.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return response
    before = dict(payload["error"])
    try:
        localize(request, payload["error"])
    except Exception:  # noqa: BLE001 — a translation must never turn an error into a 500
        _log.exception("error localizer failed")
        return response
    if payload["error"] != before:
        response.set_data(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
    return response


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
        payload = jsonbody.loads(raw) if raw.strip() else {}
    except jsonbody.TooDeep:
        raise InvalidRequest(f"The request body nests deeper than {jsonbody.MAX_DEPTH} levels.",
                             code="invalid_json") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
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
