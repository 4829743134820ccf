"""Bad input never becomes a 500: every route of every HTTP function, hit with hostile input,
as an anonymous caller and as a signed-in user, answers < 500 in the error envelope.

Routes are discovered from the routers, so a new endpoint is covered without editing this test.
"""
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.platform import manifest
from shared.platform.router import SERVICE
from tests.support.identity import auth_headers, create_user_with_token

HOSTILE_BODIES = [
    b"{", b"[]", b"null", b"123", b'"x"', b"{}", b'{"amount": "1e309"}', b'{"amount": -1}',
    b'{"__proto__": {}}', b'{"a": ' + b"[" * 50 + b"]" * 50 + b"}", "{\"x\": \"\u202e\ud800\"}".encode("utf-8", "surrogatepass"),
    b'\xff\xfe\x00', json.dumps({"to": {"username": "x" * 5000}, "amount": 10**30, "asset": "USD"}).encode(),
]
PATH_VALUES = ["x", "..", "%2e%2e", "a" * 300, "usr_" + "0" * 24, "%00", "did:pkh:eip155:1:0xzz"]
QUERIES = ["", "?limit=-5", "?limit=abc", "?starting_after=" + "z" * 500, "?created[gte]=not-a-date",
           "?asset=XXX&from=2026-13-45", "?unknown=1"]


def http_functions():
    return [f for f in manifest.functions() if f["trigger"] == "http"]


@pytest.fixture
def clients(function_client, deps):
    """One test client per function, built once per test (not per hypothesis example)."""
    return {fn: function_client(fn) for fn in ("auth", "accounts", "wallet", "platform")}


@pytest.fixture
def user_headers(deps):
    _uid, token = create_user_with_token(deps)
    return auth_headers(token)


def _concrete(path: str, value: str) -> str:
    return re.sub(r"\{\w+\}", value, path)


def _assert_sane(resp, what):
    assert resp.status_code < 500, f"{what} -> {resp.status_code} {resp.data[:300]!r}"
    if resp.status_code >= 400 and resp.content_type.startswith("text/html"):
        assert "Traceback" not in resp.get_data(as_text=True), what   # a page's HTML error
    elif resp.status_code >= 400:
        body = resp.get_json(silent=True)
        assert body and set(body["error"]) == {"type", "code", "message", "param"}, f"{what}: {resp.data[:200]!r}"


@pytest.mark.parametrize("fn", [f["name"] for f in http_functions()])
def test_hostile_input_never_500s(fn, function_client, deps, user_headers):
    from shared.platform.router import ROUTERS
    from shared.web.pages import PAGES
    client = function_client(fn)
    routers = [r for r in ROUTERS if r.name == fn]
    checked = _hostile_pages(client, [p for p in PAGES if p.name == fn], user_headers)
    assert routers or checked, f"no router or pages registered for {fn}"
    prefix = f"/v1/{manifest.function(fn)['path']}"
    for router in routers:
        for route in router.routes:
            if route.auth == SERVICE:
                continue
            base = route.path if route.path.startswith("/.well-known") else prefix + ("" if route.path == "/" else route.path)
            for headers in ({}, user_headers, {"Authorization": "Bearer garbage"}):
                for value in PATH_VALUES[:3] if "{" in base else ["-"]:
                    path = _concrete(base, value)
                    if route.method == "GET":
                        for q in QUERIES:
                            _assert_sane(client.get(path + q, headers=headers), f"GET {path}{q}")
                    else:
                        for body in HOSTILE_BODIES:
                            r = client.open(path, method=route.method, data=body, headers=headers,
                                            content_type="application/json")
                            _assert_sane(r, f"{route.method} {path} {body[:40]!r}")
                        r = client.open(path, method=route.method, data="a=1",
                                        content_type="application/x-www-form-urlencoded", headers=headers)
                        _assert_sane(r, f"{route.method} {path} form")
                    checked += 1
    assert checked > 0


def _hostile_pages(client, pages, user_headers) -> int:
    """Server-rendered pages (``shared.web.pages``): every route, hostile path values, query
    strings and forms (with and without a CSRF token), plus static-file escapes."""
    checked = 0
    for pages_ in pages:
        root = f"/{pages_.web_root}"
        for path in (f"{root}/static/..%2f..%2fmain.py", f"{root}/static/%00", f"{root}/static/" + "a" * 300):
            _assert_sane(client.get(path), f"GET {path}")
        for route in pages_.routes:
            base = root + ("" if route.path == "/" else route.path)
            for headers in ({}, user_headers, {"Cookie": "payloom_csrf=" + "x" * 40 + "; lang=%00"}):
                for value in PATH_VALUES if "{" in base else ["-"]:
                    path = _concrete(base, value)
                    if route.method == "GET":
                        for q in QUERIES + ["?lang=../../x", "?secret=" + "%ff" * 40]:
                            _assert_sane(client.get(path + q, headers=headers), f"GET {path}{q}")
                    else:
                        for form in ("a=1", "csrf_token=x&amount=-1", "%zz=%zz", "x=" + "y" * 5000):
                            r = client.open(path, method=route.method, data=form, headers=headers,
                                            content_type="application/x-www-form-urlencoded")
                            _assert_sane(r, f"{route.method} {path} {form[:30]!r}")
                        for body in HOSTILE_BODIES[:4]:
                            r = client.open(path, method=route.method, data=body, headers=headers,
                                            content_type="application/json")
                            _assert_sane(r, f"{route.method} {path} {body[:30]!r}")
                    checked += 1
    return checked


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.dictionaries(st.sampled_from(["amount", "asset", "to", "email", "password", "username",
                                                "phone", "code", "message", "signature", "scopes", "name",
                                                "locale", "token", "delay_seconds", "note"]),
                               st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                                            | st.text(max_size=40),
                                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                                            max_leaves=6), max_size=5))
def test_random_json_bodies_never_500(payload, clients, user_headers):
    from shared.platform.router import ROUTERS
    for fn, client in clients.items():
        prefix = f"/v1/{manifest.function(fn)['path']}"
        for router in [r for r in ROUTERS if r.name == fn]:
            for route in router.routes:
                if route.method != "POST" or route.auth == SERVICE or "{" in route.path:
                    continue
                path = prefix + ("" if route.path == "/" else route.path)
                r = client.post(path, data=json.dumps(payload, allow_nan=True), headers=user_headers,
                                content_type="application/json")
                _assert_sane(r, f"POST {path} {payload!r}")



DEEP = b"[" * 1200 + b"]" * 1200  # what the outside suite sent: a RecursionError escaped as a 500


def _routes(fn):
    from shared.platform.router import ROUTERS
    prefix = f"/v1/{manifest.function(fn)['path']}"
    for router in [r for r in ROUTERS if r.name == fn]:
        for route in router.routes:
            base = route.path if route.path.startswith("/.well-known") else prefix + ("" if route.path == "/" else route.path)
            yield _concrete(base, "x_1"), route


@pytest.mark.parametrize("fn", [f["name"] for f in http_functions()])
def test_deeply_nested_json_is_a_4xx_envelope_on_every_write(fn, function_client, deps, user_headers,
                                                             service_headers):
    client = function_client(fn)
    refused = 0
    for path, route in _routes(fn):
        if route.method == "GET":
            continue
        for headers in ({}, user_headers, service_headers):
            r = client.open(path, method=route.method, data=DEEP, headers=headers, content_type="application/json")
            _assert_sane(r, f"{route.method} {path} deep")
            refused += r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_json"
    assert refused > 0 or fn not in ("auth", "accounts", "wallet", "platform")


def test_deep_body_after_a_web3_import_is_a_400_not_a_crash(function_client, deps):
    """eth_account (SIWE) imports py_ecc, which raised the recursion limit to 100,000; a 200 kB
    nested body then overflowed the C stack of a gateway thread (SIGSEGV). Served from a thread,
    as gunicorn's gthread workers do."""
    import sys
    import threading

    from shared.platform.safe_imports import RECURSION_LIMIT, pinned_recursion_limit
    with pinned_recursion_limit():  # as production code imports it (another test may not have)
        import eth_account  # noqa: F401
    assert sys.getrecursionlimit() == RECURSION_LIMIT
    client, results = function_client("auth"), []

    def post():
        for body in (b"[" * 200_000, b'{"email": ' + b"[" * 200_000 + b"}"):
            r = client.post("/v1/auth/login", data=body, content_type="application/json")
            results.append((r.status_code, r.get_json()["error"]["code"]))
    worker = threading.Thread(target=post)
    worker.start()
    worker.join(60)
    assert results == [(400, "invalid_json"), (400, "invalid_json")]


@pytest.mark.parametrize("path", ["/v1/wallet/transactions", "/v1/events", "/v1/platform/probes"])
@pytest.mark.parametrize("cursor", ["a/b", "__x__", "..", "a%2Fb"])
def test_cursors_firestore_cannot_name_are_a_400(path, cursor, function_client, deps, user_headers,
                                                 service_headers):
    fn = {"wallet": "wallet", "events": "events", "platform": "platform"}[path.split("/")[2]]
    headers = service_headers if fn == "platform" else user_headers
    r = function_client(fn).get(f"{path}?starting_after={cursor}", headers=headers)
    assert r.status_code == 400, r.data[:300]
    assert r.get_json()["error"]["code"] == "parameter_invalid"
    assert r.get_json()["error"]["param"] == "starting_after"


@pytest.mark.parametrize("fn", [f["name"] for f in manifest.functions()])
def test_flask_own_refusals_are_envelopes(fn, function_client, deps):
    """A newline (or any character the catch-all rule cannot match) never reaches the router:
    Flask answered with its HTML 404 page. Pub/Sub functions' framework 400/405 likewise."""
    client = function_client(fn)
    spec = manifest.function(fn)
    prefix = f"/v1/{spec['path']}" if spec.get("path") else f"/_fn/{fn}"
    for path in (f"{prefix}/evt_x%0A", f"{prefix}/a%0Ab/c", "/robots.txt", "/favicon.ico"):
        r = client.get(path)
        expected = (404, 405) if spec["trigger"] == "pubsub" else (404,)  # Pub/Sub rules are POST-only
        assert r.status_code in expected and r.mimetype == "application/json", (path, r.data[:200])
        assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}
    if spec["trigger"] == "pubsub":
        for r in (client.post("/", data=b"junk", content_type="application/json"), client.put("/")):
            assert r.status_code in (400, 405) and r.mimetype == "application/json", r.data[:200]
            assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}


def test_newline_in_a_path_through_the_gateway_is_an_envelope(inprocess_gateway):
    import urllib.error
    import urllib.request
    for url in ("/v1/events/evt_x%0A", "/v1/me/x%0A", "/_fn/ledger_tasks/x%0A", "/nowhere"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(inprocess_gateway + url, timeout=10)
        assert err.value.code == 404 and err.value.headers.get_content_type() == "application/json"
        assert set(json.loads(err.value.read())["error"]) == {"type", "code", "message", "param"}
