"""The sample page in a real browser: the CSP lets our nonce'd script and style run and blocks
an injected inline script; axe-core finds no serious violation; the CSRF round trip works."""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from tests.support.browser import axe_violations, screenshot


@pytest.fixture
def served(page_app):
    server = make_server("127.0.0.1", 0, page_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_page_runs_its_script_and_blocks_injected_ones(served, browser_page):
    page = browser_page
    page.goto(f"{served}/sample/things/th_1")
    page.wait_for_function("() => document.documentElement.dataset.ready === '1'")
    page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = "document.documentElement.dataset.injected = '1'";
        document.head.appendChild(s); }""")
    assert page.evaluate("() => document.documentElement.dataset.injected") is None
    assert any("Content Security Policy" in p for p in page.problems)
    assert screenshot(page, "sample").stat().st_size > 1000


def test_form_round_trip_and_accessibility(served, browser_page):
    page = browser_page
    page.goto(f"{served}/sample/things/th_1?lang=km")
    assert "បង់ឥឡូវនេះ" in page.inner_text("button")
    assert axe_violations(page) == []
    page.fill("#note", "hello")
    page.click("button")
    page.wait_for_url("**done=1")
    assert page.problems == []
