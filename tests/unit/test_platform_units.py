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


def test_json_nesting_depth_is_measured_outside_strings_in_linear_time():
    import time

    from shared.platform import jsonbody
    assert jsonbody.nesting_depth(b"") == 0 and jsonbody.nesting_depth(b"123") == 0
    assert jsonbody.nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert jsonbody.nesting_depth(b'{"note": "[[[[[[{{{{"}') == 1          # brackets inside strings
    assert jsonbody.nesting_depth(b'["a\\"[[[", [1]]') == 2                 # an escaped quote
    assert jsonbody.nesting_depth(b'["unterminated [[[[') == 1             # invalid anyway
    assert jsonbody.loads(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(jsonbody.TooDeep):
        jsonbody.loads(b"[" * 65 + b"]" * 65)
    for hostile in (b"[" * 1_000_000, b"[]" * 500_000, b'"\\"' * 300_000, b'"a"' * 300_000):
        started = time.perf_counter()
        jsonbody.nesting_depth(hostile)
        assert time.perf_counter() - started < 0.5, hostile[:8]  # ~40 ms here; never quadratic


def test_doc_id_refuses_what_firestore_cannot_name():
    from pydantic import TypeAdapter, ValidationError

    from shared.platform.models import DocId
    ok = TypeAdapter(DocId)
    for good in ("evt_123", "did:pkh:eip155:1:0xab", "a" * 256, "_x_", "__x"):
        assert ok.validate_python(good) == good
    for bad in ("", "a/b", ".", "..", "__x__", "__main__", "a" * 257, "x\ny", "\x00"):
        with pytest.raises(ValidationError):
            ok.validate_python(bad)


def test_401_challenges_name_the_bearer_scheme():
    from shared.platform.errors import www_authenticate
    assert www_authenticate(token_rejected=False) == 'Bearer realm="payloom"'
    assert www_authenticate(token_rejected=True) == 'Bearer realm="payloom", error="invalid_token"'


def test_http_statuses_without_a_router_use_the_envelope():
    from shared.platform.errors import INTERNAL_ERROR, http_error_envelope
    assert http_error_envelope(414, "URI Too Long")["error"]["code"] == "uri_too_long"
    assert http_error_envelope(431, "Request Header Fields Too Large")["error"]["code"] == "header_fields_too_large"
    assert set(http_error_envelope(418, "I'm a teapot")["error"]) == {"type", "code", "message", "param"}
    assert http_error_envelope(502, "Bad Gateway") == INTERNAL_ERROR


def test_web3_imports_leave_the_recursion_limit_alone():
    """py_ecc (under eth_account and web3) sets the limit to 100,000 at import; with that limit a
    deep input overflows the C stack (SIGSEGV) instead of raising. A fresh interpreter proves our
    code loads them lazily (not at cold start) and never leaves the limit raised."""
    import subprocess
    import sys

    from shared.platform.manifest import REPO_ROOT
    code = ("import sys; before = sys.getrecursionlimit()\n"
            "import shared.platform.entry, shared.platform.router, shared.adapters.evm\n"
            "import shared.identity.web3.siwe as siwe\n"
            "assert 'py_ecc' not in sys.modules, 'web3 libraries loaded at cold start'\n"
            "siwe.recover_eoa('hello', bytes(65))\n"
            "shared.adapters.evm.web3_client('http://127.0.0.1:9')\n"
            "assert 'py_ecc' in sys.modules\n"
            "print(before, sys.getrecursionlimit())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(REPO_ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = out.stdout.split()
    assert before == after == "1000"


def test_router_restores_a_recursion_limit_raised_later(caplog):
    import sys

    from shared.platform.safe_imports import RECURSION_LIMIT, restore_recursion_limit
    sys.setrecursionlimit(100_000)
    try:
        with caplog.at_level(logging.WARNING):
            restore_recursion_limit()
        assert sys.getrecursionlimit() == RECURSION_LIMIT
        assert "recursion limit" in caplog.text
    finally:
        sys.setrecursionlimit(RECURSION_LIMIT)


def test_resolvers_refine_the_principal_of_their_own_function_only():
    import dataclasses

    from shared.platform import auth
    from shared.platform.config import Settings

    def acting_for_merchant(principal, headers, settings):
        merchant = headers.get("Payloom-Merchant")
        return dataclasses.replace(principal, tenant_id=merchant, role="viewer",
                                   actor_id=principal.id) if merchant else principal

    auth.register_resolvers("resolver_test_fn", [acting_for_merchant])
    user = auth.Principal(kind="user", id="usr_1", tenant_id="usr_1")
    headers = {"Payloom-Merchant": "mch_1"}
    got = auth.resolve(user, headers, Settings(), "resolver_test_fn")
    assert (got.tenant_id, got.role, got.actor_id) == ("mch_1", "viewer", "usr_1")
    assert auth.resolve(user, headers, Settings(), "another_fn") == user
    assert auth.resolve(user, {}, Settings(), "resolver_test_fn") == user


def test_a_unit_that_finds_its_reads_inconsistent_runs_again_with_a_fresh_unit():
    from shared.platform.config import Settings
    from shared.platform.deps import Deps
    from shared.platform.uow import Conflicted, Contention, run_unit

    seen = []

    def fn(uow):
        seen.append(uow.attempt)
        if uow.attempt < 2:
            raise Conflicted("read before and after a concurrent commit")
        return "done"
    assert run_unit(Deps(settings=Settings()), fn) == "done" and seen == [0, 1, 2]

    def never(uow):
        raise Conflicted("always stale")
    import pytest
    with pytest.raises(Contention):
        run_unit(Deps(settings=Settings()), never, attempts=3)
