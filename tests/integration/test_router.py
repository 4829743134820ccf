"""The router's cross-cutting behaviour on an ad-hoc router (rate limits, pagination, results)."""
import flask
import pytest
from google.cloud import firestore

from shared.platform.models import RequestModel
from shared.platform.pagination import ListQuery, paginate
from shared.platform.ratelimit import Limit
from shared.platform.router import Context, Result, Router


@pytest.fixture
def client(deps):
    router = Router("demo", public_prefix="demo")

    @router.get("/limited", auth="public", rate_limits=[(Limit("demo.ip", 2, 60), "ip")])
    def limited(ctx: Context):
        return {"ok": True}

    @router.get("/items", auth="public", query=ListQuery)
    def items(ctx: Context):
        col = ctx.deps.db.collection("router_test_items")
        return paginate(col.where(filter=firestore.FieldFilter("tenant", "==", "t")), col, ctx.query,
                        url="/v1/demo/items", to_resource=lambda d: {"id": d["id"]},
                        belongs=lambda d: d["tenant"] == "t")

    class Echo(RequestModel):
        text: str

    @router.post("/echo", auth="public", body=Echo, other_statuses=(202,))
    def echo(ctx: Context):
        return Result({"text": ctx.body.text}, status=202, headers={"X-Echo": "1"})

    app = flask.Flask("demo")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["GET", "POST"])
    return app.test_client()


def test_rate_limit_429_with_envelope_and_headers(client):
    statuses = [client.get("/v1/demo/limited", headers={"X-Forwarded-For": "9.9.9.9"}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[1].headers["X-RateLimit-Remaining"] == "0"
    last = statuses[2]
    assert last.get_json()["error"]["type"] == "rate_limit_error"
    assert int(last.headers["Retry-After"]) >= 1
    # Another client IP has its own budget.
    assert client.get("/v1/demo/limited", headers={"X-Forwarded-For": "8.8.8.8"}).status_code == 200


def test_cursor_pagination_walks_every_item_once(client, deps):
    import datetime as dt
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(7):
        deps.db.collection("router_test_items").document(f"it_{i}").set(
            {"id": f"it_{i}", "tenant": "t", "created_at": base + dt.timedelta(seconds=i)})
    deps.db.collection("router_test_items").document("other").set({"id": "other", "tenant": "x", "created_at": base})
    seen, cursor = [], None
    while True:
        url = "/v1/demo/items?limit=3" + (f"&starting_after={cursor}" if cursor else "")
        page = client.get(url).get_json()
        seen += [d["id"] for d in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == [f"it_{i}" for i in range(6, -1, -1)]
    bad = client.get("/v1/demo/items?starting_after=other")
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "starting_after"
    assert client.get("/v1/demo/items?limit=0").status_code == 400
    assert client.get("/v1/demo/items?limit=101").status_code == 400
    assert client.get("/v1/demo/items?bogus=1").get_json()["error"]["code"] == "parameter_unknown"


def test_result_sets_status_and_headers(client):
    r = client.post("/v1/demo/echo", json={"text": "hi"})
    assert r.status_code == 202 and r.headers["X-Echo"] == "1" and r.get_json() == {"text": "hi"}
    assert r.headers["Request-Id"].startswith("req_")


def test_form_bodies_only_where_the_route_allows_them(deps):
    router = Router("forms", public_prefix="forms")

    class Callback(RequestModel):
        code: str
        state: str

    @router.post("/callback", auth="public", body=Callback, form=True, idempotent=False)
    def callback(ctx: Context):
        return {"code": ctx.body.code}

    @router.post("/json-only", auth="public", body=Callback, idempotent=False)
    def json_only(ctx: Context):
        return {"code": ctx.body.code}

    app = flask.Flask("forms")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["POST"])
    c = app.test_client()
    ok = c.post("/v1/forms/callback", data="code=abc&state=s1", content_type="application/x-www-form-urlencoded")
    assert ok.status_code == 200 and ok.get_json() == {"code": "abc"}
    assert c.post("/v1/forms/callback", json={"code": "j", "state": "s"}).get_json() == {"code": "j"}
    missing = c.post("/v1/forms/callback", data="code=abc", content_type="application/x-www-form-urlencoded")
    assert missing.status_code == 400 and missing.get_json()["error"]["param"] == "state"
    bad = c.post("/v1/forms/callback", data=b"\xff\xfe=1", content_type="application/x-www-form-urlencoded")
    assert bad.status_code == 400
    assert c.post("/v1/forms/json-only", data="code=a&state=b",
                  content_type="application/x-www-form-urlencoded").status_code == 415


def test_client_ip_trusts_only_proxy_appended_entries_in_production():
    from shared.platform.config import Settings
    from shared.platform.router import client_ip
    app = flask.Flask("ip")
    with app.test_request_context("/", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
                                  environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_ip(flask.request, Settings(env="prod")) == "203.0.113.9"
        assert client_ip(flask.request, Settings(env="prod", forwarded_trusted_hops=2)) == "6.6.6.6"
        assert client_ip(flask.request, Settings(env="local")) == "6.6.6.6"
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        assert client_ip(flask.request, Settings(env="prod")) == "10.0.0.1"


def test_auth_is_checked_before_the_body_is_described(client, deps):
    router = Router("authfirst", public_prefix="authfirst")

    class Body(RequestModel):
        secret_field: int

    @router.post("/x", body=Body)
    def x(ctx: Context):
        return {}
    app = flask.Flask("authfirst")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["POST"])
    r = app.test_client().post("/v1/authfirst/x", json={"nope": 1})
    assert r.status_code == 401 and "secret_field" not in r.get_data(as_text=True)


def test_retryable_refusals_are_not_stored_under_the_idempotency_key(deps, service_headers):
    from shared.platform.errors import RateLimited
    router = Router("retry", public_prefix="retry")
    calls = []

    @router.post("/op")
    def op(ctx: Context):
        calls.append(1)
        if len(calls) == 1:
            raise RateLimited("velocity", headers={"Retry-After": "1"})
        return {"n": len(calls)}
    app = flask.Flask("retry")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["POST"])
    c = app.test_client()
    h = {**service_headers, "Idempotency-Key": "k-429"}
    assert c.post("/v1/retry/op", json={}, headers=h).status_code == 429
    second = c.post("/v1/retry/op", json={}, headers=h)
    assert second.status_code == 200 and second.get_json() == {"n": 2}
    third = c.post("/v1/retry/op", json={}, headers=h)
    assert third.data == second.data and third.headers["Idempotent-Replayed"] == "true"


def test_handlers_may_return_a_ready_response(deps):
    router = Router("raw", public_prefix="raw")

    @router.get("/file.csv", auth="public")
    def csv(ctx: Context):
        return flask.Response("a,b\n1,2\n", content_type="text/csv")
    app = flask.Flask("raw")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["GET"])
    r = app.test_client().get("/v1/raw/file.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.data == b"a,b\n1,2\n"
    assert r.headers["Request-Id"].startswith("req_")


def _app(router, methods=("GET", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD")):
    app = flask.Flask(router.name)
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=list(methods))
    return app.test_client()


def test_options_lists_exactly_the_methods_of_that_path(deps):
    """/dids/challenge is its own resource: /dids/{did}'s DELETE must not leak into it."""
    router = Router("opts", public_prefix="opts")
    for method, path in [("GET", "/dids"), ("POST", "/dids"), ("POST", "/dids/challenge"),
                         ("DELETE", "/dids/{did}"), ("GET", "/dids/{did}")]:
        router.route(method, path, auth="public", idempotent=False)(lambda ctx, **kw: {"ok": True})
    c = _app(router)
    cases = {"/v1/opts/dids/challenge": "OPTIONS, POST", "/v1/opts/dids": "GET, HEAD, OPTIONS, POST",
             "/v1/opts/dids/did:x:1": "DELETE, GET, HEAD, OPTIONS"}
    for path, allow in cases.items():
        r = c.open(path, method="OPTIONS")
        assert (r.status_code, r.headers["Allow"], r.data) == (204, allow, b""), path
    wrong = c.delete("/v1/opts/dids/challenge")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "OPTIONS, POST"
    assert wrong.get_json()["error"]["code"] == "method_not_allowed"
    assert c.delete("/v1/opts/dids/did:x:1").status_code == 200
    head = c.head("/v1/opts/dids/did:x:1")
    assert head.status_code == 200 and head.data == b""
    missing = c.open("/v1/opts/nothing", method="OPTIONS")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "unknown_route"


def test_options_on_the_real_did_challenge_route(function_client, deps):
    accounts = function_client("accounts")
    r = accounts.open("/v1/me/dids/challenge", method="OPTIONS")
    assert r.status_code == 204 and r.headers["Allow"] == "OPTIONS, POST"
    assert accounts.delete("/v1/me/dids/challenge").headers["Allow"] == "OPTIONS, POST"


def test_401_carries_a_bearer_challenge(function_client, deps):
    """RFC 6750 section 3: the scheme always, error="invalid_token" only for a refused token."""
    accounts = function_client("accounts")
    bare = accounts.get("/v1/me")
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == 'Bearer realm="payloom"'
    bad = accounts.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Bearer realm="payloom", error="invalid_token"'
    assert bad.get_json()["error"]["type"] == "authentication_error"
    task = function_client("ledger_tasks")
    service_only = task.post("/_fn/ledger_tasks/expire-pending", json={})
    assert service_only.status_code == 401 and service_only.headers["WWW-Authenticate"] == 'Bearer realm="payloom"'
    wrong = task.post("/_fn/ledger_tasks/expire-pending", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    ok = function_client("platform").get("/v1/platform/ping")
    assert ok.status_code == 200 and "WWW-Authenticate" not in ok.headers


def test_an_undeclared_success_status_is_a_bug_in_tests(deps):
    """In tests a route answering a 2xx it does not declare is caught (the OpenAPI document
    would not list it)."""
    router = Router("undeclared", public_prefix="undeclared")

    @router.post("/thing", auth="public", idempotent=False)
    def thing(ctx: Context):
        return Result({"ok": True}, status=202)
    app = flask.Flask(__name__)
    app.add_url_rule("/<path:p>", "r", lambda p: router(flask.request), methods=["POST"])
    r = app.test_client().post("/v1/undeclared/thing", json={})
    assert r.status_code == 500 and r.get_json()["error"]["type"] == "api_error"


def test_error_localizer_sees_every_error_the_router_answers(deps):
    """``Router(localize_errors=...)`` runs on the router's own errors (unknown route, 405, a
    malformed body, rate limits) as well as the handler's, never on success, and a localizer
    that fails leaves the error as it was (never a 500)."""
    seen: list[str] = []

    def localize(request, error):
        seen.append(error["code"])
        if request.headers.get("Accept-Language") == "xx":
            error["message_xx"] = error["code"].upper()

    router = Router("demo_l10n", public_prefix="demo_l10n", localize_errors=localize)

    class Echo(RequestModel):
        text: str

    @router.post("/echo", auth="public", body=Echo, rate_limits=[(Limit("demo.l10n", 2, 60), "ip")])
    def echo(ctx: Context):
        if ctx.body.text == "refuse":
            from shared.platform.errors import Unprocessable
            raise Unprocessable("No.", code="refused")
        return {"text": ctx.body.text}

    app = flask.Flask("demo_l10n")
    app.add_url_rule("/<path:p>", view_func=lambda p: router(flask.request), methods=["GET", "POST", "PUT"])
    client = app.test_client()
    xx = {"Accept-Language": "xx", "X-Forwarded-For": "7.7.7.7"}
    ok = client.post("/v1/demo_l10n/echo", json={"text": "hi"}, headers=xx)
    assert ok.status_code == 200 and ok.get_json() == {"text": "hi"} and seen == []
    assert ok.headers["Vary"] == "Accept-Language"
    answers = [client.get("/v1/demo_l10n/missing", headers=xx),
               client.put("/v1/demo_l10n/echo", headers=xx),
               client.post("/v1/demo_l10n/echo", data="{", content_type="application/json", headers=xx),
               client.post("/v1/demo_l10n/echo", json={"text": "refuse"}, headers=xx),
               client.post("/v1/demo_l10n/echo", json={"text": "x"}, headers=xx)]
    codes = [r.get_json()["error"]["code"] for r in answers]
    assert codes == ["unknown_route", "method_not_allowed", "invalid_json", "refused", "rate_limited"]
    assert [r.get_json()["error"]["message_xx"] for r in answers] == [c.upper() for c in codes]
    plain = client.get("/v1/demo_l10n/missing").get_json()["error"]
    assert "message_xx" not in plain and plain["code"] == "unknown_route"

    def broken(request, error):
        error["half"] = True
        raise RuntimeError("translation tables missing")

    router.localize_errors = broken
    r = client.get("/v1/demo_l10n/missing")
    assert r.status_code == 404 and set(r.get_json()["error"]) == {"type", "code", "message", "param"}
