"""The OpenAPI document covers every public route of every HTTP function."""
import json

from infra.local.gateway import Gateway
from shared.platform.openapi import build_openapi, docs_html
from shared.platform.router import ROUTERS, SERVICE


def test_openapi_lists_every_public_route_with_schemas(deps):
    Gateway()  # loads every function, registering its routers
    spec = build_openapi()
    json.dumps(spec)  # serialisable
    assert spec["openapi"] == "3.1.0"
    public = [(r, route) for r in ROUTERS if r.public_prefix for route in r.routes if route.auth != SERVICE]
    assert len(public) > 10
    for router, route in public:
        path = route.path if route.path.startswith("/.well-known") else (
            router.public_prefix + ("" if route.path == "/" else route.path))
        assert route.method.lower() in spec["paths"][path], path
        op = spec["paths"][path][route.method.lower()]
        if route.body:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert ref in spec["components"]["schemas"]
    refs = [v for v in json.dumps(spec).split('"$ref": "')[1:]]
    for ref in refs:
        name = ref.split('"', 1)[0].rsplit("/", 1)[1]
        assert name in spec["components"]["schemas"], name
    assert "POST /v1/platform/probes" in docs_html(spec)


def test_every_json_route_of_every_function_declares_its_response_model(deps):
    """Typed responses everywhere (the router validates them in tests): a route without a
    model may only answer 204 or a ready non-JSON response (CSV statements, redirects)."""
    import inspect
    Gateway()
    missing = []
    for router in ROUTERS:
        for route in router.routes:
            if route.response is not None or route.status == 204:
                continue
            source = inspect.getsource(route.handler)
            if "flask.Response" in source or "Result(" in source or "redirect" in source.lower():
                continue
            missing.append(f"{router.name} {route.method} {route.path}")
    assert not missing, missing


def test_routes_that_answer_created_or_existing_document_both_statuses(deps):
    Gateway()
    spec = build_openapi()
    verify = spec["paths"]["/v1/auth/phone/verify"]["post"]["responses"]
    assert {"200", "201"} <= set(verify)
    assert verify["200"]["content"] == verify["201"]["content"]
    assert set(spec["paths"]["/v1/platform/probes"]["post"]["responses"]) == {"201", "4XX"}
