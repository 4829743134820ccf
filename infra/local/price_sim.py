"""Loopback price feed speaking CoinGecko's HTTP API (v3, the parts Payloom uses).

Serves, on 127.0.0.1 only:

* ``GET /api/v3/simple/price?ids=ethereum,usd-coin&vs_currencies=usd,khr
  [&include_last_updated_at=true][&precision=full|0..18]`` answering like CoinGecko:
  ``{"ethereum": {"usd": 3000.5, "khr": 12302050.5, "last_updated_at": 1767225600}, ...}``.
  Unknown ids are left out (``{}`` when none is known), unknown vs currencies likewise; prices
  are JSON numbers written from exact decimals (``precision=full``: every digit; ``N``: rounded
  half-even to N places; absent: 2 places at or above 1, 8 significant digits below).
  A coin's price in a vs currency other than ``usd`` is its USD price times that currency's
  rate per USD (``fx``), as CoinGecko derives its fiat prices.
* ``GET /api/v3/simple/supported_vs_currencies`` and ``GET /api/v3/ping``.
* Authentication as CoinGecko: the demo key in the ``x-cg-demo-api-key`` header (or the
  ``x_cg_demo_api_key`` query parameter), the pro key in ``x-cg-pro-api-key`` /
  ``x_cg_pro_api_key``. Errors use CoinGecko's ``{"status": {"error_code", "error_message"}}``:
  no key 401/10002, a pro key sent to this (demo) server 401/10010, a demo key sent to a pro
  server 401/10011, a wrong key 401/10002. A server started without a key accepts any caller
  (the keyless public API).
* Rate limiting: ``rate_limit`` calls per ``rate_window`` seconds (fixed window, every call
  counted, errors included, as CoinGecko counts them); beyond, ``429`` with ``Retry-After``
  (seconds to the window's end) and the ``{"status": {"error_code": 429, ...}}`` body.

Controls for tests and developers (no key needed):

* ``PUT /_prices`` ``{"prices": {"ethereum": "3000.5", ...}, "fx": {"khr": "4100"},
  "last_updated_at": 1767225600?}``: USD prices per coin id and vs-currency rates per USD
  (decimal strings or numbers); ``null`` removes a coin. Each set price remembers when it was
  set (or the given ``last_updated_at``). ``GET /_prices`` shows them.
* ``PUT /_config`` ``{"fail_status": 500|503|..., "fail_count": n|null, "delay_ms": n,
  "stale_by": seconds, "frozen": bool, "rate_limit": n|null, "rate_window": s,
  "malformed": bool}``: fail the next ``n`` price calls (``null``: all of them) with that status,
  answer slowly, report ``last_updated_at`` ``stale_by`` seconds in the past, report the
  time each price was set instead of now (``frozen``), limit the call rate, answer a body that
  is not JSON. Merged into the current config; ``{}`` changes nothing.
* ``GET /_inbox``: every API call received, oldest first: ``{path, query, key_header, status,
  at}`` (the key itself is never recorded). ``DELETE /_inbox`` empties it and resets the
  rate-limit window. ``GET /_health``.

Default prices (``DEFAULT_PRICES``): ethereum 3000, usd-coin 1, mezo-usd 1, peerpower 0.05 USD;
KHR 4100 per USD. ``mezo-usd`` and ``peerpower`` are made-up ids for Payloom's MUSD and PPT
(the production feed maps its own ids: ``PAYLOOM_RATES_COIN_IDS``).

Point the production adapter (shared/adapters/price_coingecko.py) at it with
``PAYLOOM_COINGECKO_API_BASE=http://127.0.0.1:<port>/api/v3`` and
``PAYLOOM_COINGECKO_API_KEY=<key>``. In-process: ``server, base_url = start(api_key=...)``;
``server.clock`` may be replaced (tests pass a frozen clock's time). CLI:
``python -m infra.local.price_sim --port 9327 --api-key CG-local``.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.local.simserver import (
    InboxServer,
    LoopbackHandler,
    serve_cli,
    start_in_thread,
)

DEFAULT_PORT = 9327
MAX_BODY = 100_000
log = logging.getLogger("payloom.price_sim")

DEFAULT_PRICES = {"ethereum": "3000", "usd-coin": "1", "mezo-usd": "1", "peerpower": "0.05"}
DEFAULT_FX = {"khr": "4100"}
# A subset of CoinGecko's vs currencies: the crypto ones and a few fiat ones it really lists.
SUPPORTED_VS = ("btc", "eth", "usd", "eur", "gbp", "jpy", "sgd", "thb", "vnd", "khr")
RATE_LIMIT_MESSAGE = ("You've exceeded the Rate Limit. Please visit "
                      "https://www.coingecko.com/en/api/pricing to subscribe to our API plans "
                      "for higher rate limits.")
DEFAULT_CONFIG: dict[str, Any] = {"fail_status": None, "fail_count": 0, "delay_ms": 0,
                                  "stale_by": 0, "frozen": False, "rate_limit": None,
                                  "rate_window": 60, "malformed": False}


def _status(code: int, message: str) -> dict[str, Any]:
    return {"status": {"error_code": code, "error_message": message}}


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() and d > 0 else None


def _number(d: Decimal, precision: str | None) -> Decimal:
    if precision == "full":
        return d
    if precision is not None:
        return d.quantize(Decimal(1).scaleb(-int(precision)), rounding=ROUND_HALF_EVEN)
    if d >= 1:
        return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return d.quantize(Decimal(1).scaleb(d.adjusted() - 7), rounding=ROUND_HALF_EVEN)


def _json(value: Any) -> str:
    """JSON with Decimals written as exact numbers (CoinGecko's prices are JSON numbers)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    return json.dumps(value)


class PriceSimServer(InboxServer):
    inbox_field = "path"

    def __init__(self, port: int = 0, *, api_key: str | None = None, key_kind: str = "demo",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(port, _Handler)
        if key_kind not in ("demo", "pro"):
            raise ValueError("key_kind is demo or pro")
        self.api_key = api_key
        self.key_kind = key_kind
        self.clock = clock
        self._prices: dict[str, tuple[Decimal, int]] = {}
        self._fx: dict[str, Decimal] = {}
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self._window: tuple[int, int] = (0, 0)   # (window start, calls in it)
        self.set_prices(DEFAULT_PRICES, DEFAULT_FX)

    # -- state ------------------------------------------------------------------------------
    def set_prices(self, prices: dict[str, Any] | None = None, fx: dict[str, Any] | None = None,
                   last_updated_at: int | None = None) -> None:
        """USD prices per coin id (``None`` removes one) and vs-currency rates per USD."""
        at = int(self.clock()) if last_updated_at is None else int(last_updated_at)
        parsed_prices, parsed_fx = {}, {}
        for coin, value in (prices or {}).items():
            d = None if value is None else _decimal(value)
            if value is not None and d is None:
                raise ValueError(f"price of {coin!r} is not a positive decimal")
            parsed_prices[coin] = d
        for cur, value in (fx or {}).items():
            d = _decimal(value)
            if d is None or cur.lower() == "usd":
                raise ValueError(f"fx rate of {cur!r} is not a positive decimal")
            parsed_fx[cur.lower()] = d
        with self._lock:
            for coin, d in parsed_prices.items():
                if d is None:
                    self._prices.pop(coin, None)
                else:
                    self._prices[coin] = (d, at)
            self._fx.update(parsed_fx)

    def prices(self) -> dict[str, Any]:
        with self._lock:
            return {"prices": {c: str(p) for c, (p, _) in self._prices.items()},
                    "last_updated_at": {c: t for c, (_, t) in self._prices.items()},
                    "fx": {c: str(r) for c, r in self._fx.items()}}

    def configure(self, **changes: Any) -> dict[str, Any]:
        unknown = set(changes) - set(DEFAULT_CONFIG)
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        with self._lock:
            self.config.update(changes)
            return dict(self.config)

    def _reset_state(self) -> None:  # called by clear() under the lock
        self._window = (0, 0)

    def _count_call(self) -> int | None:
        """Count a call in the fixed window; seconds to wait when over the limit, else None."""
        now = self.clock()
        with self._lock:
            limit, window = self.config["rate_limit"], max(1, int(self.config["rate_window"]))
            start = int(now // window * window)
            begun, calls = self._window
            calls = calls + 1 if begun == start else 1
            self._window = (start, calls)
            if limit is not None and calls > limit:
                return max(1, int(start + window - now + 0.999))
            return None

    def _take_failure(self) -> int | None:
        with self._lock:
            status, count = self.config["fail_status"], self.config["fail_count"]
            if status is None or count == 0:
                return None
            if count is not None:
                self.config["fail_count"] = count - 1
            return int(status)

    def quote(self, ids: list[str], vs: list[str], *, precision: str | None,
              with_updated: bool) -> dict[str, Any]:
        now = int(self.clock())
        with self._lock:
            prices, fx, cfg = dict(self._prices), dict(self._fx), dict(self.config)
        out: dict[str, Any] = {}
        for coin in ids:
            if coin not in prices:
                continue
            usd, set_at = prices[coin]
            entry: dict[str, Any] = {}
            for cur in vs:
                if cur == "usd":
                    entry[cur] = _number(usd, precision)
                elif cur in fx:
                    entry[cur] = _number(usd * fx[cur], precision)
            if with_updated:
                entry["last_updated_at"] = (set_at if cfg["frozen"] else now) - int(cfg["stale_by"])
            out[coin] = entry
        return out


class _Handler(LoopbackHandler):
    server: PriceSimServer
    logger = log

    def _record(self, status: int, key_header: str | None) -> None:
        url = urlsplit(self.path)
        self.server._deliver({"path": url.path, "query": {k: v[0] for k, v in
                                                         parse_qs(url.query).items()
                                                         if not k.startswith("x_cg_")},
                              "key_header": key_header, "status": status,
                              "at": self.server.clock()})

    def _answer(self, status: int, payload: Any, key_header: str | None,
                headers: dict[str, str] | None = None) -> None:
        self._record(status, key_header)
        body = _json(payload).encode()
        self.send_body(status, body, "application/json; charset=utf-8", headers)

    def _authenticate(self, query: dict[str, str]) -> tuple[str | None, tuple[int, str] | None]:
        """(the header or parameter that carried a key, an error (code, message) or None)."""
        srv = self.server
        given = {}
        for kind in ("demo", "pro"):
            value = self.headers.get(f"x-cg-{kind}-api-key") or query.get(f"x_cg_{kind}_api_key")
            if value:
                given[kind] = value
        carried = next((f"x-cg-{k}-api-key" for k in given), None)
        if srv.api_key is None:
            return carried, None
        if srv.key_kind not in given:
            if given and srv.key_kind == "demo":
                return carried, (10010, ("If you are using Pro API key, please change your root "
                                         "URL from api.coingecko.com to pro-api.coingecko.com"))
            if given:
                return carried, (10011, ("If you are using Demo API key, please change your root "
                                         "URL from pro-api.coingecko.com to api.coingecko.com"))
            return carried, (10002, ("API Key Missing. Please make sure you're using the right "
                                     "authentication method."))
        if given[srv.key_kind] != srv.api_key:
            return carried, (10002, "You have provided incorrect API key credentials.")
        return carried, None

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_prices":
            return self.json_response(200, self.server.prices())
        if not url.path.startswith("/api/v3/"):
            if not self.serve_inbox_get():
                self.json_response(404, {"error": "Not found"})
            return
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        key_header, problem = self._authenticate(query)
        retry_after = self.server._count_call()
        if retry_after is not None:
            return self._answer(429, _status(429, RATE_LIMIT_MESSAGE), key_header,
                                {"Retry-After": str(retry_after)})
        if problem is not None:
            return self._answer(401, _status(*problem), key_header)
        delay = self.server.config["delay_ms"]
        if delay:
            time.sleep(delay / 1000)
        if url.path == "/api/v3/ping":
            return self._answer(200, {"gecko_says": "(V3) To the Moon!"}, key_header)
        if url.path == "/api/v3/simple/supported_vs_currencies":
            return self._answer(200, list(SUPPORTED_VS), key_header)
        if url.path != "/api/v3/simple/price":
            return self._answer(404, {"error": "Not found"}, key_header)
        failure = self.server._take_failure()
        if failure is not None:
            return self._answer(failure, _status(failure, "Service unavailable (simulated)."),
                                key_header)
        ids = [i.strip() for i in query.get("ids", "").split(",") if i.strip()]
        vs = [v.strip().lower() for v in query.get("vs_currencies", "").split(",") if v.strip()]
        if not query.get("vs_currencies", "").strip():
            return self._answer(400, {"error": "Missing parameter vs_currencies"}, key_header)
        if not ids:
            return self._answer(400, {"error": "Missing parameter ids"}, key_header)
        precision = query.get("precision") or None
        if precision is not None and precision != "full" and not (
                precision.isdigit() and 0 <= int(precision) <= 18):
            return self._answer(400, {"error": "invalid precision"}, key_header)
        if self.server.config["malformed"]:
            self._record(200, key_header)
            return self.send_body(200, b"<html>gateway hiccup</html>", "text/html")
        body = self.server.quote(ids, vs, precision=precision,
                                 with_updated=query.get("include_last_updated_at") == "true")
        self._answer(200, body, key_header)

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        if self.content_length() > MAX_BODY:
            return self.json_response(413, {"error": "too large"})
        try:
            body = json.loads(self.read_body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError("the body is a JSON object")
            if path == "/_prices":
                self.server.set_prices(body.get("prices"), body.get("fx"),
                                       body.get("last_updated_at"))
                return self.json_response(200, self.server.prices())
            if path == "/_config":
                return self.json_response(200, self.server.configure(**body))
        except (ValueError, TypeError) as exc:
            return self.json_response(400, {"error": str(exc)})
        self.json_response(404, {"error": "Not found"})

    def do_DELETE(self) -> None:
        if not self.serve_inbox_delete():
            self.json_response(404, {"error": "Not found"})


def start(port: int = 0, *, api_key: str | None = None, key_kind: str = "demo",
          clock: Callable[[], float] = time.time) -> tuple[PriceSimServer, str]:
    """Serve in a daemon thread on 127.0.0.1:<port> (0 = any free port)."""
    return start_in_thread(PriceSimServer(port, api_key=api_key, key_kind=key_kind, clock=clock),
                           "price-sim")


def main(argv: list[str] | None = None) -> int:
    def add(parser):
        parser.add_argument("--api-key", default=None, help="the key callers must send")
        parser.add_argument("--key-kind", choices=("demo", "pro"), default="demo")
    return serve_cli(
        lambda args: PriceSimServer(args.port, api_key=args.api_key, key_kind=args.key_kind),
        argv=argv, default_port=DEFAULT_PORT, add_arguments=add,
        description="Loopback price feed (CoinGecko API v3 simple/price)",
        banner=lambda server: f"price sim listening on {server.base_url}/api/v3 "
                              f"(controls: PUT /_prices, PUT /_config; inbox: /_inbox)")


if __name__ == "__main__":
    raise SystemExit(main())
