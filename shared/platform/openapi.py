"""OpenAPI 3.1 generated from the routers' pydantic models (public routes only).

Everything a reader needs is derived from the code, so the document cannot drift from it:

- schemas: the request, query and response models (serialisation mode, as the API sends them);
- examples: one for every request body, parameter, response and webhook, taken from the
  models' own ``examples`` where they declare them, else built from the JSON schema by
  ``Examples`` (field-name hints, then the schema's constraints). Tests check that each one
  validates against its schema and against its pydantic model;
- errors: per operation the 4xx it can give (shared ``components.responses``, one envelope),
  with the codes the source raises for each status (``error_codes``, read from the AST);
- ``webhooks``: the public event catalogue, with the Standard Webhooks headers;
- the bearer security scheme and the server (this origin: the local stack in test mode).
"""
from __future__ import annotations

import ast
import copy
import functools
import re
import re._constants as sre_c  # the stdlib's regex parser, to build strings that match a pattern
import re._parser as sre_parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.platform import catalog
from shared.platform.router import MUTATING, PUBLIC, ROUTERS, SERVICE, Route, Router

ERROR_TYPES = ["invalid_request_error", "authentication_error", "permission_error",
               "idempotency_error", "rate_limit_error", "api_error"]
ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "description": "The one error envelope every endpoint answers with.",
    "properties": {"error": {"type": "object", "required": ["type", "code", "message", "param"],
                             "additionalProperties": False, "properties": {
        "type": {"type": "string", "enum": ERROR_TYPES,
                 "description": "The family of the error (Stripe's families)."},
        "code": {"type": "string", "description": "A stable, machine-readable reason."},
        "message": {"type": "string", "description": "For humans; may change."},
        "param": {"type": ["string", "null"],
                  "description": "The parameter at fault, when there is one."}}}}}

# status → (component name, description, example (type, code, message, param))
ERRORS: dict[int, tuple[str, str, tuple[str, str, str, str | None]]] = {
    400: ("BadRequest",
          ("The request is malformed: a parameter is missing, unknown or invalid, the JSON "
           "cannot be read, or the Idempotency-Key is invalid."),
          ("invalid_request_error", "parameter_missing", "Missing required param: amount.", "amount")),
    401: ("Unauthorized", "No credential, or one that is expired, revoked or unknown.",
          ("authentication_error", "unauthenticated", "A valid Bearer credential is required.", None)),
    403: ("Forbidden",
          ("The credential is valid but may not do this: a missing scope, a role too low, "
           "another merchant, or a credential type this endpoint refuses."),
          ("permission_error", "missing_scope", "This key lacks the scope payments:write.", None)),
    404: ("NotFound",
          ("No such object for this caller (another merchant's or the other mode's objects "
           "are not found either)."),
          ("invalid_request_error", "resource_missing", "No such payment_intent: 'pi_123'.", "id")),
    409: ("Conflict",
          ("The Idempotency-Key was used with other parameters or its first request is still "
           "running, or the object is not in a state that allows this."),
          ("idempotency_error", "idempotency_key_reused",
           "Keys for idempotent requests can only be used with the same parameters.", None)),
    413: ("PayloadTooLarge", "The request body is too large.",
          ("invalid_request_error", "payload_too_large", "Request bodies are limited to 1048576 bytes.", None)),
    415: ("UnsupportedMediaType", "The body is not sent as application/json.",
          ("invalid_request_error", "unsupported_media_type",
           "Send the request body as Content-Type: application/json.", None)),
    422: ("Unprocessable", "Well formed, but refused by the rules (insufficient funds, a limit).",
          ("invalid_request_error", "unprocessable", "The balance is insufficient.", None)),
    429: ("RateLimited", "Too many requests: retry after the number of seconds in Retry-After.",
          ("rate_limit_error", "rate_limited", "Too many requests; retry later.", None)),
    503: ("ServiceUnavailable",
          ("Contention on the same objects: nothing was done, retry after Retry-After with the "
           "same Idempotency-Key."),
          ("api_error", "contention", "The request conflicted with a concurrent one; retry.", None)),
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "integer", "minimum": 0}}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "RFC 6750: the Bearer scheme.",
                                         "schema": {"type": "string"}}}

DESCRIPTION = """\
Payloom's REST API: JSON over HTTPS, resources in Stripe's style (`id` with a type prefix,
`object`, `created`, `livemode`).

**Authentication.** `Authorization: Bearer <credential>`: a merchant API key (`sk_test_…` in
test mode, `sk_live_…` in live mode) or a user's access token. A user acting for a merchant adds
`Payloom-Merchant: mch_…` and, for live objects, `Payloom-Mode: live`. Test and live objects
never see each other.

**Test mode.** Everything a `sk_test_` key does is simulated: no money moves, test chains only.

**Idempotency.** Every `POST` accepts `Idempotency-Key` (up to 255 characters). A retry with the
same key replays the first response for 24 h (`Idempotent-Replayed: true`); the same key with
other parameters is a 409 `idempotency_error`.

**Pagination.** Lists take `limit` and `starting_after` (the last id of the previous page) and
answer `{object: "list", data, has_more, url}`.

**Errors.** One envelope, `{"error": {type, code, message, param}}`, with the right 4xx status;
never a 500 for bad input. Each operation lists the statuses it can give.

**Webhooks.** Events are delivered as signed POSTs (Standard Webhooks: `webhook-id`,
`webhook-timestamp`, `webhook-signature`); see the Webhooks section and `/docs/events`.
"""

# Field names → example values (the first whose JSON type fits the schema wins).
ID_PREFIXES = {
    "api_key": "key", "key": "key", "balance_transaction": "txn", "checkout": "cs",
    "customer": "cus", "did": "did", "dispute": "dp", "event": "evt", "identity": "idn",
    "invitation": "inv", "invoice": "in", "line": "il", "member": "mbr", "merchant": "mch",
    "payment_intent": "pi", "payment_link": "plink", "probe": "prb", "project": "prj",
    "refund": "re", "session": "ses", "topup": "tpu", "transfer": "txf", "user": "usr",
    "webhook_attempt": "wha", "webhook_delivery": "whd", "webhook_endpoint": "we",
    "withdrawal": "wdr", "endpoint": "we", "delivery": "whd", "account": "acc", "intent": "pi",
    "link": "plink", "challenge": "mfc",
}
EXAMPLE_TIME = "2026-12-01T09:30:00Z"
EXAMPLE_EPOCH = 1796117400   # the same instant in Unix seconds
HINTS: list[tuple[str, tuple[Any, ...]]] = [
    (r"^(currency|asset|settlement_asset|.*_asset|.*_currency)$", ("USD",)),
    (r"^(amount|.*_amount|amount_.*)$", (1500, "15.00")),
    (r"^(.*_)?email$", ("jane@example.com",)),
    (r"^(.*_)?phone(_number)?$", ("+85512345678",)),
    (r"^(.*_)?(url|uri)$", ("https://shop.example.com/orders/1042",)),
    (r"^(.*_)?(address|wallet)$", ("0x52908400098527886E0F7030069857D2E4169EE7",)),
    (r"^country$", ("KH",)),
    (r"^(locale|language|lang)$", ("en",)),
    (r"^business_name$", ("Example Shop",)),
    (r"^(display_)?name$", ("Example",)),
    (r"^(statement_)?description$", ("Order #1042",)),
    (r"^(.*_)?password$", ("correct-horse-battery-staple",)),
    (r"^(code|otp|.*_code)$", ("123456",)),
    (r"^(created|updated|.*_at|.*_until)$", (EXAMPLE_EPOCH, EXAMPLE_TIME)),
    (r"^livemode$", (False,)),
    (r"^metadata$", ({"order_id": "1042"},)),
    (r"^scopes$", (["payments:read", "payments:write"],)),
    (r"^limit$", (10,)),
    (r"^(tx_hash|transaction_hash|hash)$", ("0x" + "5c" * 32,)),
    (r"^payment_method_types$", (["crypto", "card"],)),
    (r"^client_secret$", ("pi_1a2B3c4D5e6F7g8H9i0J1k2L_secret_Zx8Yw7Vu6Ts5Rq4Po3",)),
    (r"^(secret|signing_secret)$", ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",)),
    (r"^(enabled_)?events$", (["payment_intent.succeeded"],)),
    (r"^(event_)?type$", ("payment_intent.succeeded",)),
    (r"^username$", ("jane",)),
    (r"^quantity$", (1,)),
    (r"^network$", ("ethereum",)),
    (r"^(method|payment_method)$", ("crypto",)),
    (r"^provider$", ("google",)),
    (r"^did$", ("did:pkh:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7",)),
]
# Optional request fields worth showing in an example when the model accepts them.
SHOWN_OPTIONAL = re.compile(r"^(amount|description|metadata|customer_email|email|return_url|"
                            r"payment_method_types|expires_in|url|name)$")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "string")


def _fits(value: Any, types: set[str]) -> bool:
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def example_id(kind: str) -> str:
    """A well-formed id for objects of ``kind`` (``payment_intent`` → ``pi_…``)."""
    prefix = ID_PREFIXES.get(kind) or (re.sub(r"[^a-z]", "", kind)[:4] or "obj")
    return f"{prefix}_1a2B3c4D5e6F7g8H9i0J1k2L"


def sample_pattern(pattern: str) -> str | None:
    """A short string matching ``pattern`` (the regex subset JSON schemas use), or None."""
    def chars(items) -> str:
        out = []
        for op, av in items:
            if op is sre_c.LITERAL:
                out.append(chr(av))
            elif op is sre_c.NOT_LITERAL:
                out.append("b" if chr(av) == "a" else "a")
            elif op is sre_c.ANY:
                out.append("a")
            elif op is sre_c.IN:
                out.append(one_of(av))
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
                low, high, sub = av
                out.append(chars(sub) * (low if low or high == 0 else 1))
            elif op is sre_c.SUBPATTERN:
                out.append(chars(av[-1]))
            elif op is sre_c.BRANCH:
                out.append(chars(av[1][0]))
            elif op is sre_c.AT:
                continue
            else:
                raise ValueError(op)
        return "".join(out)

    def one_of(av) -> str:
        negate = any(op is sre_c.NEGATE for op, _ in av)
        allowed: list[str] = []
        for op, value in av:
            if op is sre_c.LITERAL:
                allowed.append(chr(value))
            elif op is sre_c.RANGE:
                allowed.append(chr(value[0]))
            elif op is sre_c.CATEGORY:
                allowed.append({sre_c.CATEGORY_DIGIT: "1", sre_c.CATEGORY_SPACE: " "}.get(value, "a"))
        if not negate:
            return allowed[0] if allowed else "a"
        return next(c for c in "axk1-" if not re.fullmatch(f"[{''.join(allowed)}]", c))

    try:
        value = chars(sre_parse.parse(pattern))
    except (ValueError, StopIteration, re.error, TypeError):
        return None
    return value if re.search(pattern, value) else None


class Examples:
    """Build one valid example from a JSON schema of this document.

    ``full=True`` (responses, events) fills every property; ``request`` starts from the
    required ones so the example reads like a real call."""

    MAX_DEPTH = 6

    def __init__(self, components: dict[str, Any]):
        self.components = components
        self._optional: list[tuple[dict, str, dict, tuple[str, ...]]] | None = None

    def of(self, schema: dict[str, Any], *, full: bool = True, name: str = "") -> Any:
        return self._value(schema, name, full, (), {})

    def request(self, schema: dict[str, Any], errors: Callable[[Any], list]) -> Any:
        """The required fields, plus the optional ones the model's own validators turn out to
        need ("exactly one of amount or amount_decimal"): ``errors(value)`` (the model's
        validation errors) guides a short greedy search that adds one optional field at a time,
        at any depth, keeping an addition that changes the errors without adding any."""
        self._optional = []
        value = self._value(schema, "", False, (), {})
        candidates, self._optional = self._optional, None
        current = errors(value)
        for _ in range(4):
            if not current:
                break
            best = None
            for target, key, sub, stack in candidates:
                if key in target:
                    continue
                target[key] = self._value(sub, key, False, stack, target)
                found = errors(value)
                if not found:
                    return value
                if found != current and len(found) <= len(current) and (best is None or len(found) < best[0]):
                    best = (len(found), target, key, sub, stack, found)
                del target[key]
            if best is None:
                break
            _, target, key, sub, stack, current = best
            target[key] = self._value(sub, key, False, stack, target)
        if not current:   # valid: show the common optional fields the model still accepts
            for target, key, sub, stack in candidates:
                if target is value and key not in value and SHOWN_OPTIONAL.match(key):
                    value[key] = self._value(sub, key, False, stack, value)
                    if value[key] is None or errors(value):
                        del value[key]
        return value

    def _value(self, schema: dict[str, Any], name: str, full: bool, stack: tuple[str, ...],
               siblings: dict[str, Any]) -> Any:
        ref = schema.get("$ref")
        if ref:
            target = ref.rsplit("/", 1)[-1]
            if target in stack or len(stack) > self.MAX_DEPTH:
                return None
            return self._value(self.components[target], name, full, (*stack, target), siblings)
        for key in ("examples", "example"):
            if schema.get(key) not in (None, []):
                value = schema[key][0] if key == "examples" else schema[key]
                return copy.deepcopy(value)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return next((v for v in schema["enum"] if v is not None), None)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
                for option in options:
                    value = self._value(option, name, full, stack, siblings)
                    if value is not None or option.get("type") == "null":
                        return value
                return None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                part = self.components[part["$ref"].rsplit("/", 1)[-1]] if "$ref" in part else part
                merged = {**merged, **part}
            return self._value(merged, name, full, stack, siblings)
        types = schema.get("type", "object" if "properties" in schema else "string")
        types = set(types) if isinstance(types, list) else {types}
        hinted = self._hint(name, types, schema, siblings)
        if hinted is not None:
            return hinted
        if schema.get("default") is not None and _fits(schema["default"], types):
            return copy.deepcopy(schema["default"])
        if "object" in types:
            return self._object(schema, full, stack)
        if "array" in types:
            item_name = name.removesuffix("s")
            item = self._value(schema.get("items", {}), item_name, full, stack, {})
            return [item] * max(1, schema.get("minItems", 1)) if item is not None else []
        if "integer" in types or "number" in types:
            return self._number(schema, "integer" in types)
        if "boolean" in types:
            return False
        if "string" in types:
            return self._string(schema, name)
        return None

    def _object(self, schema: dict[str, Any], full: bool, stack: tuple[str, ...]) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = schema.get("required", [])
        names = list(props) if full else [n for n in props if n in required]
        out: dict[str, Any] = {}
        if self._optional is not None:
            self._optional += [(out, n, props[n], stack) for n in props if n not in names]
        for key in names:
            value = self._value(props[key], key, full, stack, out | {"__object__": props.get("object", {}).get("const")})
            if value is None and key not in required and not full:
                continue
            out[key] = value
        extra, keys = schema.get("additionalProperties"), schema.get("propertyNames", {})
        if not props and isinstance(extra, dict) and extra and keys.get("enum"):
            key = keys["enum"][0]   # a map keyed by a closed set; open maps stay {} (keys unknown)
            out[key] = self._value(extra, key, full, stack, {})
        return out

    def _hint(self, name: str, types: set[str], schema: dict[str, Any], siblings: dict[str, Any]) -> Any:
        name = name.split("[", 1)[0]   # created[gte] is a created
        if not name:
            return None
        if "string" in types:
            if name == "id":
                return example_id(siblings.get("__object__") or "obj")
            if name.endswith("_id") or name in ID_PREFIXES:
                kind = name.removesuffix("_id")
                if kind in ID_PREFIXES:
                    return example_id(kind)
            if schema.get("format") in ("date-time",):
                return EXAMPLE_TIME
        for pattern, values in HINTS:
            if re.match(pattern, name):
                for value in values:
                    if _fits(value, types) and self._respects(value, schema):
                        return copy.deepcopy(value)
        return None

    @staticmethod
    def _respects(value: Any, schema: dict[str, Any]) -> bool:
        if isinstance(value, str):
            pattern = schema.get("pattern")
            return (schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9)
                    and (pattern is None or re.search(pattern, value) is not None))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (schema.get("minimum", -10**30) <= value <= schema.get("maximum", 10**30)
                    and value > schema.get("exclusiveMinimum", -10**30)
                    and value < schema.get("exclusiveMaximum", 10**30))
        return True

    @staticmethod
    def _number(schema: dict[str, Any], integer: bool) -> int | float:
        low, high = schema.get("minimum"), schema.get("maximum")
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + (1 if integer else 0.5)
        if "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - (1 if integer else 0.5)
        value = 1
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        step = schema.get("multipleOf")
        if step:
            value = step * max(1, round(value / step))
        return int(value) if integer else value

    @staticmethod
    def _string(schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        value = {"date-time": EXAMPLE_TIME, "date": EXAMPLE_TIME[:10], "email": "jane@example.com",
                 "uri": "https://shop.example.com", "uuid": "3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b",
                 "ipv4": "203.0.113.7"}.get(fmt or "")
        if value is None and schema.get("pattern"):
            value = sample_pattern(schema["pattern"])
        if value is None:
            value = name.replace("_", "-") if name else "string"
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if len(value) < low:   # repeat the last character: it still fits a "[A-Z]+" pattern
            value += (value[-1:] or "x") * (low - len(value))
        return value[:high] if high is not None else value


_SETS_CODE = re.compile(r"\b(code|status)\s*=")


@functools.lru_cache(maxsize=1)
def error_codes() -> dict[int, list[str]]:
    """Per status, the error codes raised anywhere in ``shared/`` (read from the source's AST:
    ``raise NotFound(..., code="no_such_link")`` or a subclass's own ``code``)."""
    root = Path(__file__).resolve().parents[1]
    classes: dict[str, dict[str, Any]] = {
        "PayloomError": {"status": 400, "code": "invalid_request"}}
    trees = []
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
            if _SETS_CODE.search(text):   # only modules that name a code or a status matter
                trees.append(ast.parse(text))
        except (SyntaxError, UnicodeDecodeError):
            continue
    changed = True
    while changed:   # subclasses may be declared before their base in file order
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in classes:
                    base = next((b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes), None)
                    if base:
                        classes[node.name] = {**classes[base], **_class_constants(node)}
                        changed = True
    found: dict[int, set[str]] = {}
    for info in classes.values():   # each error class's own code (``raise Contention()``)
        if isinstance(info.get("status"), int) and isinstance(info.get("code"), str):
            found.setdefault(info["status"], set()).add(info["code"])
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classes:
                info = dict(classes[node.func.id])
                for kw in node.keywords:
                    if kw.arg in ("code", "status") and isinstance(kw.value, ast.Constant):
                        info[kw.arg] = kw.value.value
                if isinstance(info.get("status"), int) and isinstance(info.get("code"), str):
                    found.setdefault(info["status"], set()).add(info["code"])
    return {status: sorted(codes) for status, codes in sorted(found.items())}


def _class_constants(node: ast.ClassDef) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for stmt in node.body:
        if not isinstance(stmt, ast.Assign):
            continue
        for target in stmt.targets:
            if isinstance(target, ast.Name) and isinstance(stmt.value, ast.Constant):
                values[target.id] = stmt.value.value
            elif isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
                for t, v in zip(target.elts, stmt.value.elts):
                    if isinstance(t, ast.Name) and isinstance(v, ast.Constant):
                        values[t.id] = v.value
    return {k: v for k, v in values.items() if k in ("status", "code")}


class _Components:
    """``components.schemas`` filled from pydantic models; a second, different model under an
    existing name is a conflict (its refs would point at the wrong schema)."""

    def __init__(self):
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
        self.conflicts: set[str] = set()

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.schemas and self.schemas[name] != schema:
            self.conflicts.add(name)
        self.schemas[name] = schema

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        name = model.__name__.replace("[", "_").replace("]", "").replace(",", "_")
        self.add(name, schema)
        return {"$ref": f"#/components/schemas/{name}"}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    params = []
    props = model.model_json_schema(by_alias=True).get("properties", {})
    for name, field in model.model_fields.items():
        schema = props.get(field.alias or name) or props.get(name, {})
        params.append({"name": field.alias or name, "in": "query", "required": field.is_required(),
                       "description": field.description or "", "schema": schema})
    return params


def model_errors(model: type[BaseModel], value: Any) -> list[tuple]:
    """What ``model`` says about ``value`` (empty when it validates)."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    return []


def full_path(router: Router, route: Route) -> str:
    return route.path if route.path.startswith("/.well-known") else (
        router.public_prefix + ("" if route.path == "/" else route.path))


def error_statuses(route: Route) -> list[int]:
    """The 4xx (and the retryable 503) a route can answer, from what the router does."""
    statuses = set()
    mutating = route.method in MUTATING
    if route.body or route.query or route.regex.groupindex or mutating:
        statuses.add(400)
    if route.auth != PUBLIC:
        statuses |= {401, 403}
    if route.regex.groupindex:
        statuses.add(404)
    if mutating:
        statuses |= {409, 422, 503}
    if route.body:
        statuses |= {413, 415}
    if route.rate_limits:
        statuses.add(429)
    return sorted(statuses)


def _error_responses() -> dict[str, Any]:
    codes = error_codes()
    responses = {}
    for status, (name, description, (type_, code, message, param)) in ERRORS.items():
        listed = codes.get(status, [])
        responses[name] = {
            "description": description + " The codes are listed at /docs/errors.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                             "example": {"error": {"type": type_, "code": code,
                                                                   "message": message, "param": param}}}},
            **({"headers": RETRY_AFTER} if status in (429, 503) else {}),
            **({"headers": WWW_AUTHENTICATE} if status == 401 else {}),
            "x-error-codes": listed,
        }
    return responses


def _tag_descriptions(routers: list[Router]) -> list[dict[str, str]]:
    """One tag per router: where its operations live (module docstrings speak to maintainers)."""
    tags: dict[str, list[str]] = {}
    for router in routers:
        for tag in router.tags:
            tags.setdefault(tag, []).append(f"`{router.public_prefix}`")
    return [{"name": t, "description": "Operations under " + ", ".join(p) + "."}
            for t, p in sorted(tags.items())]


def _operation(router: Router, route: Route, components: _Components, examples: Examples) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in (route.status, *route.other_statuses):
        answer: dict[str, Any] = {"description": "Created" if code == 201 else "Success"}
        if route.response:
            schema = components.ref(route.response)
            answer["content"] = {"application/json": {"schema": schema, "example": examples.of(schema)}}
        responses[str(code)] = answer
    for status in error_statuses(route):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    op: dict[str, Any] = {
        "operationId": f"{router.name}_{route.handler.__name__}",
        "summary": route.summary, "tags": list(route.tags), "responses": responses}
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"},
               "example": _path_example(full_path(router, route), n)}
              for n in route.regex.groupindex]
    if route.query:
        for param in _query_params(route.query):
            # Only required parameters get an example: Swagger UI's "Try it out" sends the
            # examples it shows, and an optional filter or cursor would narrow or fail the call.
            value = (examples.of(param["schema"], name=param["name"], full=False)
                     if param["required"] else None)
            params.append(param | ({"example": value} if value is not None else {}))
    if route.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "maxLength": 255},
                       "description": "Retries with the same key replay the first response for 24 h "
                                      "(e.g. order-1042). Leave it empty to try a call twice."})
    if params:
        op["parameters"] = params
    if route.body:
        schema = components.ref(route.body)
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": schema, "example": examples.request(schema, functools.partial(model_errors, route.body))}}}
    if route.auth != PUBLIC:
        op["security"] = [{"bearer": []}]
    if route.scopes:
        op["x-required-scopes"] = list(route.scopes)
        op["description"] = "Scopes: " + ", ".join(f"`{s}`" for s in route.scopes) + "."
    return op


def _singular(word: str) -> str:
    return word[:-3] + "y" if word.endswith("ies") else word.removesuffix("s")


def _path_example(path: str, name: str) -> str:
    """``/payment_intents/{id}`` → ``pi_…``: the kind is the parameter's name or the segment
    before it, singular."""
    hinted = next((v[0] for p, v in HINTS if re.match(p, name) and isinstance(v[0], str)), None)
    if hinted and not name.endswith("_id"):
        return hinted
    segments = path.strip("/").split("/")
    at = segments.index("{" + name + "}")
    kind = name.removesuffix("_id")
    if kind not in ID_PREFIXES and at:
        kind = _singular(segments[at - 1])
    return example_id(kind if kind in ID_PREFIXES else name)


def _webhooks(components: _Components, examples: Examples) -> dict[str, Any]:
    hooks = catalog.openapi_webhooks(components.ref)
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
         "example": "msg_1a2B3c4D5e6F7g8H9i0J1k2L",
         "description": "Stable across retries: de-duplicate on it."},
        {"name": "webhook-timestamp", "in": "header", "required": True,
         "schema": {"type": "string"}, "example": str(EXAMPLE_EPOCH),
         "description": "Unix seconds; refuse anything more than 5 minutes away."},
        {"name": "webhook-signature", "in": "header", "required": True,
         "schema": {"type": "string"}, "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
         "description": "Space-separated `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` "
                        "with the endpoint's whsec_ secret."}]
    for name, hook in hooks.items():
        post = hook["post"]
        body = post["requestBody"]["content"]["application/json"]
        value = examples.of(body["schema"])
        value.update(id=example_id("event"), created=EXAMPLE_TIME, livemode=False)
        body["example"] = value
        post["parameters"] = headers
        post["tags"] = [name.split(".", 1)[0]]
        post["description"] = (f"Sent to your webhook endpoints subscribed to `{name}` "
                               f"(payload version {post.get('x-event-version', '')}).")
    return hooks


def manifest_routers() -> list[Router]:
    """The routers of this process that belong to a function of the manifest (a test's own
    demo routers never reach the document)."""
    from shared.platform import manifest
    names = {f["name"] for f in manifest.functions()}
    return [r for r in ROUTERS if r.name in names]


def build_openapi(routers: list[Router] | None = None, *, strict: bool = False) -> dict[str, Any]:
    """The document for the routers of this process (every function's, in the local gateway).
    ``strict`` raises when two different models share a schema name (tests use it)."""
    components = _Components()
    examples = Examples(components.schemas)
    paths: dict[str, Any] = {}
    used: list[Router] = []
    for router in routers if routers is not None else manifest_routers():
        if not router.public_prefix or any(router is r for r in used):
            continue
        used.append(router)
        for route in router.routes:
            if route.auth == SERVICE:
                continue
            paths.setdefault(full_path(router, route), {})[route.method.lower()] = \
                _operation(router, route, components, examples)
    webhooks = _webhooks(components, examples)
    if strict and components.conflicts:
        raise ValueError(f"different models share the schema names {sorted(components.conflicts)}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Payloom API", "version": "v1", "description": DESCRIPTION},
        "servers": [{"url": "/", "description": "This server. On the local stack use a test-mode "
                                                "key (sk_test_…): nothing moves real money."}],
        "tags": _tag_descriptions([r for r in used if any(rt.auth != SERVICE for rt in r.routes)]),
        "paths": dict(sorted(paths.items())),
        "webhooks": webhooks,
        "x-error-codes": {str(status): codes for status, codes in error_codes().items()},
        "components": {
            "schemas": components.schemas, "responses": _error_responses(),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A merchant API key (sk_test_… or sk_live_…) or a user's access token (JWT)."}}},
    }
