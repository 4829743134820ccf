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
        col = ctx.deps.db.collection("items")
        return paginate(col.where(filter=firestore.FieldFilter("tenant", "==", "t")), col, ctx.query,
                        url="/v1/demo/items", to_resource=lambda d: {"id": d["id"]},
                        belongs=lambda d: d["tenant"] == "t")

    class Echo(RequestModel):
        text: str

    @router.post("/echo", auth="public", body=Echo)
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
        deps.db.collection("items").document(f"it_{i}").set(
            {"id": f"it_{i}", "tenant": "t", "created_at": base + dt.timedelta(seconds=i)})
    deps.db.collection("items").document("other").set({"id": "other", "tenant": "x", "created_at": base})
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
