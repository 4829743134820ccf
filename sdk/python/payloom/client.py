"""The HTTP client: authentication, idempotency keys, retries with back-off, typed errors.

Why these rules (the API's own, see its README and DESIGN):

* Every mutating call (POST, PATCH, DELETE) carries an ``Idempotency-Key`` (a uuid4 unless the
  caller gives one) and the SAME key on each of its retries: the API stores the first answer
  for 24 h and replays it, so a retry after a dropped connection never creates twice.
* Retried: connection errors and timeouts, 5xx (the API never stores a 5xx under a key),
  429 (after ``Retry-After``), 409 ``idempotency_key_in_use`` (the first request with the key
  is still running; the API answers ``Retry-After: 1``). Never retried: any other 4xx, which
  would fail the same way again. A ``Retry-After`` longer than ``max_retry_after`` seconds
  (a locked login, an hourly quota) is not waited for: the error is raised at once.
* Back-off: ``initial_network_retry_delay * 2**n`` capped at ``max_network_retry_delay``,
  with jitter (×0.5–1.0), and never less than ``Retry-After``. Default 2 retries, as
  stripe-python.
* Test or live: an API key's prefix decides (``sk_test_``/``sk_live_``); a user's access token
  chooses with ``mode`` (the ``Payloom-Mode`` header). ``merchant`` sends ``Payloom-Merchant``
  (a user acting for a merchant; a key may only name its own).

Nothing here logs a key, a token or a body: debug logs carry method, path, status, attempt and
the request id only.
"""
from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import random
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import requests

from payloom import errors
from payloom._version import VERSION
from payloom.objects import ListObject, PayloomObject, convert

_log = logging.getLogger("payloom")
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
DEFAULT_API_BASE = "http://127.0.0.1:8000"   # the local stack (``make run``)
MODES = ("test", "live")


@dataclasses.dataclass(frozen=True)
class RequestOptions:
    """Per-call overrides of the client's settings (``api_key``, ``merchant``, ``mode``) and
    the call's own ``idempotency_key``. Follow-up calls (next pages, instance methods) inherit
    all but the idempotency key."""
    api_key: Optional[str] = None
    merchant: Optional[str] = None
    mode: Optional[str] = None
    idempotency_key: Optional[str] = None
    headers: Optional[Tuple[Tuple[str, str], ...]] = None

    def inherited(self) -> "RequestOptions":
        return dataclasses.replace(self, idempotency_key=None, headers=None)

    def overridden_by(self, other: Optional["RequestOptions"]) -> "RequestOptions":
        """These options with every field that ``other`` sets taking precedence."""
        if other is None:
            return self
        return dataclasses.replace(self, **{f.name: getattr(other, f.name)
                                            for f in dataclasses.fields(other)
                                            if getattr(other, f.name) is not None})


OPTION_NAMES = ("api_key", "merchant", "mode", "idempotency_key", "headers")


def split_options(params: Dict[str, Any]) -> Tuple[Dict[str, Any], RequestOptions]:
    """Take the reserved keyword arguments out of a call's parameters (no API field uses
    these names)."""
    opts = {name: params.pop(name) for name in OPTION_NAMES if name in params}
    if opts.get("headers") is not None:
        opts["headers"] = tuple(dict(opts["headers"]).items())
    return params, RequestOptions(**opts)


@dataclasses.dataclass
class Response:
    """What came back: ``obj.last_response`` on every returned object."""
    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: Optional[str]
    idempotency_key: Optional[str]
    attempts: int

    @property
    def idempotent_replayed(self) -> bool:
        return (self.headers.get("Idempotent-Replayed") or "").lower() == "true"

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def livemode_of_key(api_key: Optional[str]) -> Optional[bool]:
    """True for ``sk_live_``, False for ``sk_test_``, None for anything else (a user token)."""
    if not api_key:
        return None
    if api_key.startswith("sk_live_"):
        return True
    if api_key.startswith("sk_test_"):
        return False
    return None


def _check_mode(api_key: Optional[str], mode: Optional[str]) -> None:
    if mode is None:
        return
    if mode not in MODES:
        raise ValueError("mode must be 'test' or 'live'")
    key_live = livemode_of_key(api_key)
    if key_live is not None and key_live != (mode == "live"):
        raise ValueError(f"mode={mode!r} contradicts the API key (an API key's mode is its own)")


class Client:
    """An explicit client: ``payloom.Client(api_key="sk_test_…")``.

    Resources are reached through it (``client.PaymentIntent.create(...)``, also spelled
    ``client.payment_intents.create(...)``) or, for anything the SDK does not wrap yet,
    ``client.request("get", "/v1/...", params)``. Thread-safe: one HTTP session per thread.
    """

    def __init__(self, api_key: Optional[str] = None, *, merchant: Optional[str] = None,
                 mode: Optional[str] = None, api_base: str = DEFAULT_API_BASE,
                 max_network_retries: int = 2, timeout: float = 30.0,
                 initial_network_retry_delay: float = 0.5, max_network_retry_delay: float = 5.0,
                 max_retry_after: float = 60.0,
                 session_factory: Optional[Callable[[], requests.Session]] = None,
                 sleep: Callable[[float], None] = time.sleep):
        _check_mode(api_key, mode)
        if max_network_retries < 0:
            raise ValueError("max_network_retries must be 0 or more")
        self.api_key = api_key
        self.merchant = merchant
        self.mode = mode
        self.api_base = api_base.rstrip("/")
        self.max_network_retries = max_network_retries
        self.timeout = timeout
        self.initial_network_retry_delay = initial_network_retry_delay
        self.max_network_retry_delay = max_network_retry_delay
        self.max_retry_after = max_retry_after
        self._session_factory = session_factory or requests.Session
        self._local = threading.local()
        self._sleep = sleep
        self._bound: Dict[type, type] = {}
        from payloom import resources  # the resource namespaces (import here: no cycle)
        for attr, cls in resources.NAMESPACES.items():
            bound = self.bound(cls)
            setattr(self, cls.__name__, bound)
            setattr(self, attr, bound)

    def __repr__(self) -> str:  # never the key itself
        mode = "live" if self.livemode else "test"
        return f"<payloom.Client {mode} api_base={self.api_base!r} merchant={self.merchant!r}>"

    @property
    def livemode(self) -> bool:
        """Live or test, from the key's prefix (a user token: from ``mode``; default test)."""
        key_live = livemode_of_key(self.api_key)
        return key_live if key_live is not None else self.mode == "live"

    def bound(self, cls: type) -> type:
        """``cls`` with this client as its default (class methods then use this client)."""
        if getattr(cls, "_bound_client", None) is self:
            return cls
        base = getattr(cls, "_unbound", cls)
        hit = self._bound.get(base)
        if hit is None:
            hit = type(base.__name__, (base,), {"_bound_client": self, "_unbound": base,
                                                "__module__": base.__module__,
                                                "__doc__": base.__doc__})
            self._bound[base] = hit
        return hit

    # --- public calls ---------------------------------------------------------------------
    def request(self, method: str, path: str, params: Optional[Mapping[str, Any]] = None, *,
                options: Optional[RequestOptions] = None, **option_kw: Any) -> Any:
        """Call any route; JSON answers become objects, 204 is None, other types are bytes."""
        opts = _merge(options, option_kw)
        response = self.request_raw(method, path, params, options=opts)
        return self.interpret(response, opts)

    def request_list(self, path: str, params: Optional[Mapping[str, Any]] = None, *,
                     options: Optional[RequestOptions] = None) -> ListObject:
        result = self.request("GET", path, params, options=options)
        if not isinstance(result, ListObject):
            raise errors.APIError(f"GET {path} did not answer a list", http_status=None)
        object.__setattr__(result, "_params", {k: v for k, v in (params or {}).items()
                                               if k != "starting_after"})
        return result

    def interpret(self, response: Response, options: Optional[RequestOptions] = None) -> Any:
        if response.status == 204 or not response.body:
            return None
        ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return response.body
        try:
            payload = response.json()
        except ValueError:
            raise errors.APIError("The API answered invalid JSON.", http_status=response.status,
                                  request_id=response.request_id) from None
        inherited = (options or RequestOptions()).inherited()
        obj = convert(payload, self, inherited)
        if isinstance(obj, PayloomObject):
            object.__setattr__(obj, "last_response", response)
        return obj

    # --- transport ------------------------------------------------------------------------
    def request_raw(self, method: str, path: str, params: Optional[Mapping[str, Any]] = None, *,
                    options: Optional[RequestOptions] = None) -> Response:
        """Send with retries; a 2xx ``Response`` or a typed error."""
        opts = options or RequestOptions()
        method = method.upper()
        api_key = opts.api_key if opts.api_key is not None else self.api_key
        mode = opts.mode if opts.mode is not None else self.mode
        merchant = opts.merchant if opts.merchant is not None else self.merchant
        _check_mode(api_key, mode)
        headers = {"Accept": "application/json", "User-Agent": f"payloom-python/{VERSION}"}
        if api_key:  # public routes (rates, a payer's client-secret calls) need none
            headers["Authorization"] = f"Bearer {api_key}"
        if merchant:
            headers["Payloom-Merchant"] = merchant
        if mode:
            headers["Payloom-Mode"] = mode
        idempotency_key = None
        if method in MUTATING:
            idempotency_key = opts.idempotency_key or str(uuid.uuid4())
            headers["Idempotency-Key"] = idempotency_key
        headers.update(dict(opts.headers or ()))
        url = self._url(path)
        data = None
        query: Optional[list] = None
        if method in ("GET", "DELETE", "HEAD"):
            query = encode_query(params or {})
        elif params:
            data = json.dumps(dict(params), separators=(",", ":"), default=_json_default).encode()
            headers["Content-Type"] = "application/json"

        attempt = 0
        while True:
            try:
                raw = self._session().request(method, url, params=query, data=data,
                                              headers=headers, timeout=self.timeout,
                                              allow_redirects=False)
            except requests.RequestException as exc:
                if attempt < self.max_network_retries:
                    delay = self._backoff(attempt, None)
                    _log.debug("payloom %s %s: %s; retry %d in %.2fs", method, path,
                               type(exc).__name__, attempt + 1, delay)
                    attempt += 1
                    self._sleep(delay)
                    continue
                raise errors.APIConnectionError(
                    f"Could not reach Payloom at {self.api_base} ({type(exc).__name__}: "
                    f"{_without_query(str(exc))}). "
                    + ("Retry with the same idempotency_key to be safe." if idempotency_key else ""),
                    idempotency_key=idempotency_key) from None  # the cause's text has the URL
            response = Response(raw.status_code, raw.headers, raw.content,
                                raw.headers.get("Request-Id"), idempotency_key, attempt + 1)
            _log.debug("payloom %s %s -> %d request_id=%s attempt=%d", method, path,
                       raw.status_code, response.request_id, attempt + 1)
            if 200 <= raw.status_code < 300:
                return response
            body = _json_or_none(raw)
            retry_after = parse_retry_after(raw.headers.get("Retry-After"))
            if attempt < self.max_network_retries and self._should_retry(raw.status_code, body, retry_after):
                delay = self._backoff(attempt, retry_after)
                attempt += 1
                self._sleep(delay)
                continue
            error = errors.from_response(raw.status_code, body, raw.headers,
                                         idempotency_key=idempotency_key)
            if raw.status_code == 401 and not api_key:
                error.message += (" No API key was sent: set payloom.api_key or pass api_key= "
                                  "(sk_test_… or sk_live_…).")
            raise error

    def _should_retry(self, status: int, body: Any, retry_after: Optional[float]) -> bool:
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        if status == 409:
            error = body.get("error") if isinstance(body, dict) else None
            return isinstance(error, dict) and error.get("code") == "idempotency_key_in_use"
        return status == 429 or status >= 500

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> float:
        delay = min(self.initial_network_retry_delay * (2 ** attempt), self.max_network_retry_delay)
        delay *= 0.5 + random.random() / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._session_factory()
            self._local.session = session
        return session

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if not path.startswith(self.api_base + "/"):
                raise ValueError("absolute URLs must be under the client's api_base")
            return path
        return self.api_base + ("" if path.startswith("/") else "/") + path

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None


def _merge(options: Optional[RequestOptions], option_kw: Dict[str, Any]) -> RequestOptions:
    base = options or RequestOptions()
    if not option_kw:
        return base
    unknown = set(option_kw) - set(OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown request options: {sorted(unknown)}")
    return base.overridden_by(split_options(dict(option_kw))[1])


def _without_query(text: str) -> str:
    """An exception's text without query strings (a ``client_secret`` may be in one)."""
    return re.sub(r"\?[^\s'\")]*", "?…", text)


def _json_or_none(raw: requests.Response) -> Any:
    try:
        return raw.json()
    except ValueError:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, PayloomObject):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """RFC 9110 10.2.3: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def encode_query(params: Mapping[str, Any]) -> list:
    """Query pairs: booleans as true/false, ``{"created": {"gte": 1}}`` as ``created[gte]=1``,
    ``from_`` as ``from`` (a Python keyword), None left out."""
    pairs: list = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, Mapping):
            for sub, v in value.items():
                add(f"{key}[{sub}]", v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(key, v)
        else:
            pairs.append((key, str(value)))

    for key, value in params.items():
        add(key[:-1] if key.endswith("_") else key, value)
    return pairs


def quote_id(value: str) -> str:
    """An id as one path segment (nothing in it can change the route)."""
    if not isinstance(value, str) or not value:
        raise ValueError("an object id must be a non-empty string")
    return urllib.parse.quote(value, safe="")
