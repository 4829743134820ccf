import datetime as dt
import json
import logging

import pytest

from shared.platform import ids, logs
from shared.platform.auth import Principal
from shared.platform.clock import FrozenClock, rfc3339
from shared.platform.errors import IdempotencyError, InvalidRequest, PermissionDenied
from shared.platform.idempotency import fingerprint, validate_key


def test_new_ids_are_prefixed_random_and_valid():
    a, b = ids.new_id("usr"), ids.new_id("usr")
    assert a != b and a.startswith("usr_") and len(a) == 28
    assert ids.is_id(a, "usr") and not ids.is_id(a, "pay") and not ids.is_id("usr_../x")


def test_derived_ids_are_stable_and_distinct():
    assert ids.derived_id("prb", "t1", "k") == ids.derived_id("prb", "t1", "k")
    assert ids.derived_id("prb", "t1", "k") != ids.derived_id("prb", "t2", "k")
    assert ids.derived_id("prb", "a", "bc") != ids.derived_id("prb", "ab", "c")


def test_frozen_clock_moves_only_when_told():
    clock = FrozenClock(dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc))
    assert clock.now() == clock.now()
    clock.advance(61)
    assert rfc3339(clock.now()) == "2026-05-01T00:01:01Z"


def test_error_envelope_shape():
    err = InvalidRequest("bad amount", param="amount", code="amount_invalid")
    assert err.status == 400
    assert err.envelope() == {"error": {"type": "invalid_request_error", "code": "amount_invalid",
                                        "message": "bad amount", "param": "amount"}}
    assert IdempotencyError("x").status == 409
    assert IdempotencyError("x").envelope()["error"]["type"] == "idempotency_error"


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint("POST", "/x", b'{"a":1,"b":2}') == fingerprint("POST", "/x", b'{"b": 2, "a": 1}')
    assert fingerprint("POST", "/x", b'{"a":1}') != fingerprint("POST", "/x", b'{"a":2}')
    assert fingerprint("POST", "/x", b'{"a":1}') != fingerprint("POST", "/y", b'{"a":1}')


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_invalid_idempotency_keys_rejected(key):
    with pytest.raises(InvalidRequest):
        validate_key(key)


def test_principal_scopes():
    p = Principal(kind="api_key", id="key_1", tenant_id="acct_1", scopes=frozenset({"wallet:*", "events:read"}))
    assert p.has_scope("wallet:write") and p.has_scope("events:read")
    assert not p.has_scope("events:write")
    with pytest.raises(PermissionDenied):
        p.require_scopes(["ledger:write"])


def test_json_logs_carry_trace_request_and_redact_secrets(capsys):
    formatter = logs.CloudLoggingFormatter("demo-proj")
    logs.bind(trace_header="abc123/456;o=1", request_id="req_1", function="platform")
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"password": "hunter2", "nested": {"refresh_token": "r"}, "amount": 5}
    entry = json.loads(formatter.format(record))
    assert entry["severity"] == "WARNING" and entry["message"] == "hello world"
    assert entry["logging.googleapis.com/trace"] == "projects/demo-proj/traces/abc123"
    assert entry["request_id"] == "req_1" and entry["function"] == "platform"
    assert entry["password"] == "[redacted]" and entry["nested"]["refresh_token"] == "[redacted]"
    assert entry["amount"] == 5


def test_bearer_token_behind_api_gateway_uses_the_forwarded_header():
    from shared.platform.auth import bearer_token
    headers = {"Authorization": "Bearer google-gateway-token", "X-Forwarded-Authorization": "Bearer user-jwt"}
    assert bearer_token(headers, forwarded=True) == "user-jwt"
    assert bearer_token(headers, forwarded=False) == "google-gateway-token"
    assert bearer_token({"Authorization": "Basic abc"}) is None
    assert bearer_token({"Authorization": "Bearer   "}) is None
