"""Typed identity responses (issue 7, item 5).

Every identity route declares the model it answers and the handler returns an instance of it
(in tests the router refuses any other answer, ``router.untyped_answer``, and checks the JSON
against the model). The OpenAPI document then describes each answer exactly.
Fields shown once (API key secrets, the TOTP seed, backup codes) are the routes' secret fields,
so they can never be stored under an Idempotency-Key nor replayed.
"""
from __future__ import annotations

import json
import typing

import pyotp
import pytest
from pydantic import RootModel

import shared.identity.http.routes  # noqa: F401  (registers every identity route)
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.resources import ApiKey, Session
from shared.identity.responses import (DidDocument, Jwk, MfaStatus, SiweNonce, TokenPair,
                                       TotpEnrollment)
from shared.platform.openapi import build_openapi
from shared.platform.router import untyped_answer
from tests.identity.helpers import assert_error

ROUTES = [(router, route) for router in (auth_api, accounts_api) for route in router.routes]


def _members(model) -> tuple[type, ...]:
    """The models a response may be: the union's members for a RootModel, else the model."""
    if isinstance(model, type) and issubclass(model, RootModel):
        return typing.get_args(model.model_fields["root"].annotation)
    return (model,)


def test_the_identity_surface_is_all_here():
    assert len(ROUTES) >= 45, len(ROUTES)


@pytest.mark.parametrize("route", [r for _, r in ROUTES], ids=lambda r: f"{r.method} {r.path}")
def test_every_identity_route_declares_its_answer(route):
    """A model for every route, except those answering 204 (which must say so)."""
    if route.response is None:
        assert route.status == 204, f"{route.method} {route.path} declares no response model"
    else:
        assert route.status != 204


def _resolve(spec, schema):
    ref = schema.get("$ref")
    return _resolve(spec, spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]) if ref else schema


def _properties(spec, schema) -> dict[str, set[str]]:
    """Object schemas reachable through anyOf/$ref -> {title: property names}."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        out = {}
        for option in schema["anyOf"]:
            out.update(_properties(spec, option))
        return out
    return {schema.get("title", "?"): set(schema.get("properties", {}))}


@pytest.fixture(scope="module")
def spec():
    return build_openapi([auth_api, accounts_api])


def test_openapi_login_answer_lists_the_tokens_or_the_challenge(spec):
    ok = spec["paths"]["/v1/auth/login"]["post"]["responses"]["200"]
    shapes = _properties(spec, ok["content"]["application/json"]["schema"])
    assert {"access_token", "refresh_token", "token_type", "expires_in", "session"} \
        <= shapes["TokenPair"]
    assert {"object", "challenge_id", "methods", "expires_in"} <= shapes["MfaChallenge"]
    token_pair = _resolve(spec, {"$ref": "#/components/schemas/TokenPair"})
    assert {"access_token", "refresh_token"} <= set(token_pair["required"])


def test_openapi_describes_every_identity_answer(spec):
    missing = []
    for router, route in ROUTES:
        full = route.path if route.path.startswith("/.well-known") else (
            router.public_prefix + ("" if route.path == "/" else route.path))
        answer = spec["paths"][full][route.method.lower()]["responses"][str(route.status)]
        if (route.status == 204) == ("content" in answer):
            missing.append(f"{route.method} {full}")
    assert not missing, missing
    # fields left out when unset are optional, never "null"
    jwk = spec["components"]["schemas"]["Jwk"]
    assert jwk["properties"]["y"] == {"description": "EC keys only.", "title": "Y",
                                      "type": "string"}
    assert "y" not in jwk["required"]
    assert "@context" in spec["components"]["schemas"]["DidDocument"]["properties"]


@pytest.mark.parametrize("route", [r for _, r in ROUTES if r.response is not None],
                         ids=lambda r: f"{r.method} {r.path}")
def test_fields_shown_once_are_the_routes_secret_fields(route):
    shown_once = {f for m in _members(route.response) for f in getattr(m, "SHOWN_ONCE", ())}
    assert shown_once <= set(route.secret_fields), (route.path, shown_once, route.secret_fields)


def test_the_shown_once_models_are_where_the_secrets_are():
    by_path = {(r.method, r.path): r for _, r in ROUTES}
    assert set(by_path["POST", "/api_keys"].secret_fields) == {"secret"}
    assert set(by_path["POST", "/api_keys/{key_id}/roll"].secret_fields) == {"secret"}
    assert set(by_path["POST", "/mfa/totp"].secret_fields) == {"secret", "otpauth_uri", "qr_code"}
    assert set(by_path["POST", "/mfa/totp/confirm"].secret_fields) == {"backup_codes"}
    assert set(by_path["POST", "/mfa/backup_codes"].secret_fields) == {"backup_codes"}


def test_sparse_fields_are_absent_not_null():
    session = Session(id="ses_1", user_id="usr_1", status="active")
    assert "current" not in session.model_dump(mode="json")
    assert Session(id="ses_1", user_id="usr_1", status="active", current=False) \
        .model_dump(mode="json")["current"] is False
    okp = Jwk(kty="OKP", crv="Ed25519", x="abc", kid="k1", alg="EdDSA")
    assert okp.model_dump(mode="json") == {"kty": "OKP", "crv": "Ed25519", "x": "abc",
                                           "kid": "k1", "alg": "EdDSA", "use": "sig"}
    nonce = SiweNonce(nonce="n", domain="d", expires_at="t", expires_in=1, issued_at="t")
    assert "chain_ids" not in nonce.model_dump(mode="json")
    doc = DidDocument.model_validate({"@context": ["c"], "id": "did:x", "verificationMethod": [],
                                      "authentication": [], "assertionMethod": []})
    from pydantic_core import to_jsonable_python
    assert to_jsonable_python(doc, by_alias=True) == {
        "@context": ["c"], "id": "did:x", "verificationMethod": [], "authentication": [],
        "assertionMethod": []}


def test_the_type_check_refuses_a_hand_built_dict():
    by_path = {(r.method, r.path): r for _, r in ROUTES}
    status = by_path["GET", "/mfa"]
    built = MfaStatus(totp_enabled=False, sms_enabled=False, backup_codes_remaining=0, methods=[])
    assert untyped_answer(status, built) is None
    problem = untyped_answer(status, built.model_dump(mode="json"))
    assert problem and "dict" in problem and "MfaStatus" in problem
    assert untyped_answer(by_path["POST", "/logout"], None) is None
    assert untyped_answer(by_path["POST", "/logout"], {"ok": True})
    login = by_path["POST", "/login"]
    pair = TokenPair(access_token="a", expires_in=1, refresh_token="rt_x",
                     session=Session(id="s", user_id="u", status="active"))
    assert untyped_answer(login, pair) is not None  # the route's answer is the union
    assert untyped_answer(login, login.response(pair)) is None
    assert untyped_answer(by_path["GET", "/api_keys/{key_id}"],
                          ApiKey(id="key_1", prefix="sk_test_abcd", scopes=[], status="active")) is None


# --- shown once, over HTTP ----------------------------------------------------------------------

def _stored_keys(deps) -> str:
    return json.dumps([s.to_dict() for s in deps.db.collection("idempotency_keys").stream()],
                      default=str)


def test_a_retried_totp_enrolment_never_shows_the_first_seed_again(deps, signup, me):
    """The seed, its URI and QR code, and the backup codes are shown once: a retry with the same
    Idempotency-Key starts over (a new seed), nothing is replayed, nothing is stored."""
    alice = signup()
    headers = {**alice.headers, "Idempotency-Key": "enrol-1"}
    first = me.post("/v1/me/mfa/totp", headers=headers)
    assert first.status_code == 200, first.get_json()
    seed = first.get_json()["secret"]
    assert TotpEnrollment.model_validate(first.get_json()).otpauth_uri.startswith("otpauth://")
    again = me.post("/v1/me/mfa/totp", headers=headers)
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["secret"] != seed and seed not in again.get_data(as_text=True)

    latest = pyotp.TOTP(again.get_json()["secret"])
    confirm_headers = {**alice.headers, "Idempotency-Key": "confirm-1"}
    confirmed = me.post("/v1/me/mfa/totp/confirm", json={"code": latest.now()},
                        headers=confirm_headers)
    assert confirmed.status_code == 200, confirmed.get_json()
    body = confirmed.get_json()
    codes = body["backup_codes"]
    assert len(codes) == 10 and body["totp_enabled"] is True and body["methods"] == \
        ["totp", "backup_code"] and body["backup_codes_remaining"] == 10
    # the same confirmation again: refused, and the codes are not in the answer
    replay = me.post("/v1/me/mfa/totp/confirm", json={"code": latest.now()},
                     headers=confirm_headers)
    assert_error(replay, 409, "mfa_already_enabled")
    assert not any(c in replay.get_data(as_text=True) for c in codes)
    # no seed, URI or backup code was ever kept under a key
    stored = _stored_keys(deps)
    assert seed not in stored and again.get_json()["secret"] not in stored
    assert not any(c in stored for c in codes)

    regen_headers = {**alice.headers, "Idempotency-Key": "regen-1"}
    fresh = me.post("/v1/me/mfa/backup_codes", json={"code": codes[0]}, headers=regen_headers)
    assert fresh.status_code == 200 and len(fresh.get_json()["backup_codes"]) == 10
    replay = me.post("/v1/me/mfa/backup_codes", json={"code": codes[0]}, headers=regen_headers)
    assert_error(replay, 400, "invalid_mfa_code")  # the code was used; nothing replayed
    assert not any(c in _stored_keys(deps) for c in fresh.get_json()["backup_codes"])

    status = me.get("/v1/me/mfa", headers=alice.headers).get_json()
    assert status == {"object": "mfa_status", "totp_enabled": True, "sms_enabled": False,
                      "backup_codes_remaining": 10, "methods": ["totp", "backup_code"]}


def test_every_mfa_answer_is_the_whole_status(deps, signup, me):
    """Turning TOTP off answers the full status (it used to omit ``sms_enabled``)."""
    alice = signup()
    seed = me.post("/v1/me/mfa/totp", headers=alice.headers).get_json()["secret"]
    totp = pyotp.TOTP(seed)
    codes = me.post("/v1/me/mfa/totp/confirm", json={"code": totp.now()},
                    headers=alice.headers).get_json()["backup_codes"]
    off = me.post("/v1/me/mfa/totp/disable", json={"code": codes[1]}, headers=alice.headers)
    assert off.status_code == 200
    assert off.get_json() == {"object": "mfa_status", "totp_enabled": False, "sms_enabled": False,
                              "backup_codes_remaining": 0, "methods": []}
