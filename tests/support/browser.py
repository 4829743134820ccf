"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser).

- ``chromium``: one headless browser per test module (``/usr/bin/chromium``, or
  ``PAYLOOM_CHROMIUM``), started with the flags this machine's closed network needs. Module,
  not session, scope: Playwright's sync API keeps an asyncio loop marked running in the main
  thread while it is started, and later tests that call ``asyncio.run`` would fail;
- ``browser_page``: a fresh context and page per test; console errors, page errors and CSP
  violations are collected on ``page.problems`` so a test can assert there are none;
- ``screenshot(page, name)``: saves ``test-artifacts/screenshots/<test>/<name>.png``;
- ``axe_violations(page)``: runs axe-core (npm, ``node_modules/axe-core/axe.min.js``) in the
  page and returns the serious and critical violations.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-features=Translate,MediaRouter"]


def chromium_path() -> str:
    path = os.environ.get("PAYLOOM_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"Chromium is missing at {path}: `make deps` installs Debian's chromium package")
    return path


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, request):
    context = chromium.new_context(locale="en-US", viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.problems = []   # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    page.test_name = re.sub(r"[^\w.-]+", "_", request.node.name)[:120]   # type: ignore[attr-defined]
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    folder = ARTIFACTS / getattr(page, "test_name", "page")
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", name)
    path = folder / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """axe-core's violations of ``impacts`` on the current page (evaluated through the
    DevTools protocol, so the page's own CSP does not need to allow it)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in impacts]
