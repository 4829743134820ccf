"""The OpenAPI document covers every public route of every HTTP function, with an example for
every request, parameter, response and webhook that validates against its schema and its
pydantic model, the error responses each operation can give, and passes the OpenAPI 3.1 validator."""
import json

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel, Field, model_validator

from infra.local.gateway import Gateway
from shared.platform import catalog
from shared.platform.openapi import (
    ERRORS,
    Examples,
    build_openapi,
    error_codes,
    error_statuses,
    full_path,
    manifest_routers,
    model_errors,
    sample_pattern,
)
from shared.platform.router import ROUTERS, SERVICE, Router


@pytest.fixture(scope="module")
def spec():
    Gateway()  # loads every function, registering its routers
    return build_openapi(strict=True)   # strict: two models never share a schema name


def _public_routes():
    return [(r, route) for r in manifest_routers() if r.public_prefix for route in r.routes
            if route.auth != SERVICE]


def _check(spec, schema, value) -> list[str]:
    validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)][:3]


def test_openapi_lists_every_public_route_with_schemas(spec):
    json.dumps(spec)  # serialisable
    assert spec["openapi"] == "3.1.0"
    public = _public_routes()
    assert len(public) > 10
    for router, route in public:
        path = full_path(router, route)
        assert route.method.lower() in spec["paths"][path], path
        op = spec["paths"][path][route.method.lower()]
        if route.body:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            assert ref in spec["components"]["schemas"]
    for ref in json.dumps(spec).split('"$ref": "')[1:]:
        target = ref.split('"', 1)[0]
        kind, name = target.rsplit("/", 2)[-2:]
        assert name in spec["components"][kind], target


def test_the_document_is_valid_openapi_3_1(spec):
    validate_spec(spec)


def test_every_operation_has_examples_that_its_schemas_and_models_accept(spec):
    problems = []
    for router, route in _public_routes():
        op = spec["paths"][full_path(router, route)][route.method.lower()]
        where = f"{route.method} {full_path(router, route)}"
        if route.body:
            media = op["requestBody"]["content"]["application/json"]
            problems += [f"{where} request: {p}" for p in _check(spec, media["schema"], media["example"])]
            problems += [f"{where} request model: {e}" for e in model_errors(route.body, media["example"])]
        for status in (route.status, *route.other_statuses):
            media = op["responses"][str(status)].get("content", {}).get("application/json")
            if route.response is None:
                continue
            problems += [f"{where} {status}: {p}" for p in _check(spec, media["schema"], media["example"])]
            problems += [f"{where} {status} model: {e}" for e in model_errors(route.response, media["example"])]
        for param in op.get("parameters", []):
            if param["required"] and "example" not in param:
                problems.append(f"{where}: no example for the required {param['name']}")
            elif "example" in param:
                problems += [f"{where} {param['name']}: {p}" for p in _check(spec, param["schema"], param["example"])]
    assert not problems, problems[:20]


def test_request_examples_are_real_calls(spec):
    """Required fields, plus what the models' own validators demand and the common optional
    fields they accept; ids look like ids."""
    intent = spec["paths"]["/v1/payment_intents"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert intent["amount"] == 1500 and intent["currency"] == "USD"
    transfer = spec["paths"]["/v1/wallet/transfers"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert len(transfer["to"]) == 1 and ("amount" in transfer) != ("amount_decimal" in transfer)
    get = spec["paths"]["/v1/payment_intents/{intent_id}"]["get"]
    assert get["parameters"][0]["example"].startswith("pi_")
    created = get["responses"]["200"]["content"]["application/json"]["example"]
    assert created["id"].startswith("pi_") and created["object"] == "payment_intent"
    # optional filters and cursors carry no example: "Try it out" would send them
    listing = spec["paths"]["/v1/payment_intents"]["get"]["parameters"]
    assert all("example" not in p for p in listing if not p["required"])


def test_every_operation_lists_the_errors_it_can_give_with_the_envelope(spec):
    for router, route in _public_routes():
        responses = spec["paths"][full_path(router, route)][route.method.lower()]["responses"]
        expected = set(error_statuses(route))
        assert {int(s) for s in responses if s.startswith(("4", "5"))} == expected, route.path
        if route.auth != "public":
            assert {401, 403} <= expected
        if route.method == "POST":
            assert {400, 409} <= expected
        if route.regex.groupindex:
            assert 404 in expected
        if route.rate_limits:
            assert 429 in expected
    shared = spec["components"]["responses"]
    assert {name for name, *_ in ERRORS.values()} == set(shared)
    for name, response in shared.items():
        media = response["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/Error"}
        assert _check(spec, media["schema"], media["example"]) == [], name
    assert "Retry-After" in shared["RateLimited"]["headers"]
    assert "WWW-Authenticate" in shared["Unauthorized"]["headers"]


def test_error_codes_are_read_from_the_source(spec):
    codes = error_codes()
    assert "idempotency_key_reused" in codes[409] and "resource_missing" in codes[404]
    assert "parameter_missing" in codes[400] and "missing_scope" in codes[403]
    assert "contention" in codes[503]          # a subclass's own code (raise Contention())
    assert spec["x-error-codes"]["409"] == codes[409]


def test_webhooks_are_the_public_catalogue_with_signed_examples(spec):
    public = {n for n, e in catalog.load_all().items() if e.public}
    assert set(spec["webhooks"]) == public
    for name, hook in spec["webhooks"].items():
        post = hook["post"]
        media = post["requestBody"]["content"]["application/json"]
        assert media["example"]["type"] == name and media["example"]["id"].startswith("evt_")
        assert _check(spec, media["schema"], media["example"]) == [], name
        assert {p["name"] for p in post["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        payload = catalog.CATALOG[name].payload
        assert model_errors(payload, media["example"]["data"]) == [], name


def test_security_servers_and_tags(spec):
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "A merchant API key (sk_test_… or sk_live_…) or a user's access token (JWT)."}
    assert spec["servers"][0]["url"] == "/" and "sk_test_" in spec["servers"][0]["description"]
    used = {t for ops in spec["paths"].values() for op in ops.values() for t in op["tags"]}
    assert {t["name"] for t in spec["tags"]} == used
    assert spec["paths"]["/v1/platform/probes"]["post"]["security"] == [{"bearer": []}]


def test_routes_that_answer_created_or_existing_document_both_statuses(spec):
    verify = spec["paths"]["/v1/auth/phone/verify"]["post"]["responses"]
    assert {"200", "201"} <= set(verify)
    assert verify["200"]["content"] == verify["201"]["content"]
    assert set(spec["paths"]["/v1/platform/probes"]["post"]["responses"]) == {
        "201", "400", "401", "403", "409", "413", "415", "422", "429", "503"}


def test_two_models_with_one_name_are_refused_in_strict_mode():
    first = type("Clash", (BaseModel,), {"__annotations__": {"x": int}})
    second = type("Clash", (BaseModel,), {"__annotations__": {"y": str}})
    router = Router("clash_test", public_prefix="clash_test")
    router.post("/a", body=first)(lambda ctx: None)
    router.post("/b", body=second)(lambda ctx: None)
    try:
        with pytest.raises(ValueError, match="Clash"):
            build_openapi([router], strict=True)
        assert build_openapi([router])["paths"]   # served anyway, outside tests
    finally:
        ROUTERS.remove(router)


def test_every_json_route_of_every_function_declares_its_response_model(spec):
    """Typed responses everywhere (the router validates them in tests): a route without a
    model may only answer 204 or a ready non-JSON response (CSV statements, redirects)."""
    import inspect
    missing = []
    for router in manifest_routers():
        for route in router.routes:
            if route.response is not None or route.status == 204:
                continue
            source = inspect.getsource(route.handler)
            if "flask.Response" in source or "Result(" in source or "redirect" in source.lower():
                continue
            missing.append(f"{router.name} {route.method} {route.path}")
    assert not missing, missing


# --- the example generator on its own (no emulator) -----------------------------------------

@pytest.mark.parametrize("pattern", [r"^\d{4}-\d{2}-\d{2}$", r"^0x[0-9a-fA-F]{40}$", r"^\+[1-9][0-9]{6,14}$",
                                     r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$", r"^(ab|cd)+_[A-Z]?x$",
                                     r"^[a-z][a-z0-9_-]{1,31}$", r"^pm_[A-Za-z0-9_]+$"])
def test_sample_pattern_matches(pattern):
    import re
    value = sample_pattern(pattern)
    assert value is not None and re.search(pattern, value)


def test_examples_follow_constraints_and_validators():
    class Inner(BaseModel):
        username: str | None = None
        phone: str | None = None

        @model_validator(mode="after")
        def one(self):
            if (self.username is None) == (self.phone is None):
                raise ValueError("give exactly one of username or phone")
            return self

    class Body(BaseModel):
        count: int = Field(ge=3, le=5, multiple_of=3)
        code: str = Field(min_length=8, pattern=r"^[A-Z]+$")
        to: Inner
        tags: list[str] = Field(min_length=2)

    schema = Body.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs")
    value = Examples(components).request(schema, lambda v: model_errors(Body, v))
    assert model_errors(Body, value) == [], value
    assert value["count"] == 3 and len(value["code"]) >= 8 and len(value["tags"]) == 2
    assert len(value["to"]) == 1
