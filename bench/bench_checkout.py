"""The hosted payment page (issue 10, Measure): its weight, and the time from the confirming
block to the page showing success.

Everything runs on ``bench/run.py``'s stack (the gateway under gunicorn serves ``/pay``; the
``payments_events`` consumer is pushed by the Pub/Sub emulator; anvil carries the tokens). The
merchant is made over HTTP like bench_payments' (``bench_payments.Merchant``).

* (a) page weight: a fresh load of an intent's page by Debian's Chromium (Playwright, no
  cache): requests and bytes on the wire (the responses' encoded bodies plus headers), for the
  method chooser and for the crypto payment request (its QR code is an inline PNG), then a
  reload (static files cached ``immutable``: one request); plus the same documents fetched with
  ``requests`` (raw and gzip-compressed body bytes, what a compressing front end would send),
  and one status poll (304 and 200). Without Chromium only the ``requests`` rows are given.
* (b) confirming block → page shows success: per sample an ETH intent (1 confirmation),
  crypto chosen, its page open in Chromium; the payer's transaction waits in the mempool
  (automine off) and the page polls as a payer's would (a random 5–12 s pause first, so its
  back-off has grown as on a real visit); t0 just before ``anvil_mine``, t1 when the page's
  ``main[data-state=succeeded]`` appears. The watcher runs in a thread of this process with its
  production settings (``bench_payments.Follower``, header poll 1 s). Split: block → intent
  ``succeeded_at`` (watcher + consumer) and the rest (the page's poll).
"""
from __future__ import annotations

import gzip
import os
import random
import re
import statistics
import time
import uuid
from typing import Any

import requests

from bench.bench_payments import (
    ETH_PAYER,
    INTENTS,
    Chain,
    Follower,
    Merchant,
    _network,
    _pct,
    _wait,
)
from bench.harness import BenchEnv


def _intent(m: Merchant, amount: int, currency: str, **kw: Any) -> dict:
    return m.call("POST", INTENTS, m.key, json={"amount": amount, "currency": currency, **kw})


def _browser():
    """Playwright and Debian's Chromium, or None when either is missing."""
    path = os.environ.get("PAYLOOM_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(path):
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    from tests.support.browser import FLAGS
    p = sync_playwright().start()
    return p, p.chromium.launch(executable_path=path, headless=True, args=FLAGS)


def _weight_in_browser(browser, url: str, name: str) -> list[dict]:
    """Requests that reached the network and their bytes on the wire (Chromium's own count,
    ``encodedDataLength``: headers plus body), for a first view and a reload."""
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sent: dict[str, str] = {}
    cached: set[str] = set()
    wire: dict[str, int] = {}
    cdp.on("Network.requestWillBeSent", lambda e: sent.__setitem__(e["requestId"],
                                                                    e["request"]["url"]))
    cdp.on("Network.requestServedFromCache", lambda e: cached.add(e["requestId"]))
    cdp.on("Network.loadingFinished", lambda e: wire.__setitem__(e["requestId"],
                                                                 int(e["encodedDataLength"])))
    try:
        rows = []
        for label in ("first view", "reload"):
            sent.clear(), cached.clear(), wire.clear()
            if label == "first view":
                page.goto(url)
            else:
                page.reload()
            page.wait_for_load_state("load")
            page.wait_for_timeout(200)
            net = [i for i, u in sent.items() if not u.startswith("data:") and i not in cached
                   and wire.get(i, 0) > 0]
            rows.append({"name": f"page weight in Chromium: {name}, {label}",
                         "requests": len(net), "bytes": sum(wire[i] for i in net),
                         "from_cache": len([i for i in sent if i in cached])})
        return rows
    finally:
        context.close()


def _weight_by_http(base: str, path: str, name: str) -> list[dict]:
    s = requests.Session()
    html = s.get(base + path, timeout=30)
    refs = re.findall(r'(?:href|src)="(/pay/static/[^"]+)"', html.text)
    parts = [("html", html.content)] + [(r.split("?")[0].rsplit(".", 1)[-1],
                                          s.get(base + r, timeout=30).content) for r in refs]
    raw = sum(len(b) for _, b in parts)
    packed = sum(len(gzip.compress(b, 6)) for _, b in parts)
    row = {"name": f"page weight over HTTP: {name}", "requests": len(parts), "bytes": raw,
           "gzip_bytes": packed}
    row.update({f"{kind}_bytes": len(b) for kind, b in parts})
    return [row]


def _poll_cost(base: str, path: str) -> dict:
    s = requests.Session()
    first = s.get(f"{base}{path}/status", timeout=30)
    again = s.get(f"{base}{path}/status", headers={"If-None-Match": first.headers["ETag"]},
                  timeout=30)
    return {"name": "status poll (JSON with the panel's HTML; then 304 while unchanged)",
            "status_200_bytes": len(first.content), "status_200_gzip_bytes":
            len(gzip.compress(first.content, 6)), "unchanged_status": again.status_code,
            "unchanged_bytes": len(again.content)}


def _weight(env: BenchEnv, m: Merchant, browser) -> list[dict]:
    base = env.base_url
    it = _intent(m, 1250, "USD", description="page weight")
    path = f"/pay/{it['client_secret']}"
    crypto = _intent(m, 1_000_000, "ETH", description="page weight, crypto")
    cpath = f"/pay/{crypto['client_secret']}"
    m.choose(crypto, "ETH")
    rows = _weight_by_http(base, path, "method chooser") + \
        _weight_by_http(base, cpath, "crypto payment request")
    rows.append(_poll_cost(base, path))
    if browser is None:
        rows.append({"name": "page weight in Chromium: skipped (no Chromium or Playwright)"})
        return rows
    other = _intent(m, 1250, "USD", description="page weight")
    rows += _weight_in_browser(browser, base + f"/pay/{other['client_secret']}",
                               "method chooser")
    pick = _intent(m, 1_000_000, "ETH", description="page weight, crypto")
    m.choose(pick, "ETH")
    rows += _weight_in_browser(browser, base + f"/pay/{pick['client_secret']}",
                               "crypto payment request")
    return rows


def _sample(env: BenchEnv, m: Merchant, chain: Chain, browser, pause: tuple[float, float]) -> dict:
    from shared.payments import intents
    it = _intent(m, 1_000_000, "ETH", payment_method_types=["crypto"],
                 description="page latency")                       # 0.001 ETH
    crypto = m.choose(it, "ETH")
    context = browser.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{env.base_url}/pay/{it['client_secret']}")
        page.wait_for_selector("#crypto-address")
        chain.send(chain.sign_uri(crypto["uri"], ETH_PAYER))     # waits in the mempool
        time.sleep(random.uniform(*pause))
        t0 = time.time()
        chain.mine(1)                                             # the confirming block
        page.wait_for_selector("main[data-state='succeeded']", timeout=60_000)
        t1 = time.time()
        doc = _wait(lambda: intents.intent_ref(env.deps.db, it["id"]).get().to_dict() or {}, 5,
                    enough=lambda d: d.get("succeeded_at") is not None)
        succeeded = doc.get("succeeded_at")
        out = {"ms": (t1 - t0) * 1000}
        if succeeded is not None:
            out["intent_ms"] = (succeeded.timestamp() - t0) * 1000
        return out
    except Exception as exc:  # noqa: BLE001 - one failed sample, reported in the row
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        context.close()


def _latency(env: BenchEnv, m: Merchant, browser) -> list[dict]:
    if browser is None:
        return [{"name": "confirming block → page shows success: skipped (no Chromium)"}]
    net = _network(env)
    chain = Chain(net)
    n, pause = (2, (1.0, 2.5)) if env.quick else (12, (5.0, 12.0))
    chain.automine(False)
    try:
        with Follower(env.deps, net) as follower:
            chain.mine(1)
            target = chain.head()
            _wait(lambda: follower.watcher.cursor.number >= target or follower.errors, 30)
            samples = [_sample(env, m, chain, browser, pause) for _ in range(n)]
    finally:
        chain.automine(True)
    good = [s for s in samples if "error" not in s]
    ms = [s["ms"] for s in good] or [float("nan")]
    row = {"name": "confirming block → page shows success (ETH, 1 confirmation, Chromium, "
                   "watcher poll 1 s, page poll ≤ 4 s)",
           "n": len(good), "p50_ms": round(statistics.median(ms), 1),
           "p99_ms": round(_pct(ms, 0.99), 1), "max_ms": round(max(ms), 1),
           "errors": len(samples) - len(good)}
    part = [s["intent_ms"] for s in good if "intent_ms" in s]
    if part:
        row["to_intent_succeeded_p50_ms"] = round(statistics.median(part), 1)
    if len(good) < len(samples):
        row["error"] = next(s["error"] for s in samples if "error" in s)
    return [row]


def run(env: BenchEnv) -> list[dict]:
    tag = uuid.uuid4().hex[:8]
    try:
        m = Merchant(env.base_url, tag)
    except Exception as exc:  # noqa: BLE001 - one failed row, not a failed bench run
        return [{"name": "checkout bench setup: FAILED", "errors": 1,
                 "error": f"{type(exc).__name__}: {exc}"[:1000]}]
    started = _browser()
    browser = started[1] if started else None
    rows: list[dict] = []
    try:
        for name, part in (("page weight", lambda: _weight(env, m, browser)),
                           ("latency", lambda: _latency(env, m, browser))):
            t0 = time.perf_counter()
            try:
                rows += part()
            except Exception as exc:  # noqa: BLE001 - report it, keep the other figures
                rows.append({"name": f"{name}: FAILED", "errors": 1,
                             "error": f"{type(exc).__name__}: {exc}"[:1000]})
            rows.append({"name": f"({name}: part took {time.perf_counter() - t0:.1f} s)"})
    finally:
        if started:
            started[1].close()
            started[0].stop()
    return rows
