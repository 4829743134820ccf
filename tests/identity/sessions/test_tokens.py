"""Access tokens and signing keys: every way a forged or stale token must fail."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os

import jwt
import pytest

from shared.identity.sessions import keys as keys_mod
from shared.identity.sessions.keys import KeyConfigError, KeySet, generate_key, load_keyset, rotate
from shared.identity.sessions.sessions import start_session
from shared.identity.sessions.authn import verify_access_token
from shared.identity.sessions.tokens import InvalidToken, issue_access_token
from shared.platform.clock import FrozenClock
from tests.identity.helpers import assert_error

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict, claims: dict, signer=None) -> str:
    """A JWT assembled by hand (PyJWT refuses to make some of these)."""
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
    sig = signer(signing_input.encode()) if signer else b""
    return f"{signing_input}.{b64u(sig)}"


@pytest.fixture
def session(deps):
    deps.clock = FrozenClock(T0)
    return start_session(deps, user_id="usr_tokentest0000000000001", amr=["pwd"], ip="1.2.3.4",
                         user_agent="pytest")


def claims_of(deps, token):
    return jwt.decode(token, options={"verify_signature": False})


def test_issued_token_has_the_documented_claims_and_header(deps, session, keyset, identity_settings):
    token = session.access_token
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": keyset.keys[0].kid, "typ": "at+jwt"}
    claims = verify_access_token(deps, token)
    assert set(claims) == {"iss", "aud", "sub", "sid", "scope", "amr", "client_id", "iat", "nbf",
                           "exp", "jti"}
    assert claims["client_id"] == identity_settings.default_client_id == "payloom-app"  # RFC 9068
    assert claims["sub"] == "usr_tokentest0000000000001"
    assert claims["sid"] == session.session.id
    assert claims["iss"] == identity_settings.issuer and claims["aud"] == identity_settings.audience
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["scope"] == "*" and claims["amr"] == ["pwd"]
    assert session.expires_in == 3600 and session.token_type == "Bearer"


def test_alg_none_is_rejected(deps, session, keyset):
    claims = claims_of(deps, session.access_token)
    for alg in ("none", "None", "NONE"):
        token = craft({"alg": alg, "kid": keyset.keys[0].kid, "typ": "JWT"}, claims)
        with pytest.raises(InvalidToken):
            verify_access_token(deps, token)
    # and without a signature segment at all
    with pytest.raises(InvalidToken):
        verify_access_token(deps, token.rsplit(".", 1)[0] + ".")


def test_hs256_signed_with_the_public_key_is_rejected(deps, session, keyset):
    """Algorithm confusion: the attacker knows the public key and uses it as an HMAC secret."""
    key = keyset.keys[0]
    claims = claims_of(deps, session.access_token)
    for secret in (key.public_pem(), json.dumps(key.public_jwk()).encode(),
                   base64.urlsafe_b64decode(key.public_jwk()["x"] + "==")):
        token = craft({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims,
                      lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest())
        with pytest.raises(InvalidToken):
            verify_access_token(deps, token)


def test_other_algorithm_on_a_known_kid_is_rejected(deps, session, keyset):
    es = generate_key("ES256")
    claims = claims_of(deps, session.access_token)
    token = jwt.encode(claims, es.private_key, algorithm="ES256", headers={"kid": keyset.keys[0].kid})
    with pytest.raises(InvalidToken):
        verify_access_token(deps, token)


def test_unknown_kid_and_foreign_key_are_rejected(deps, session, keyset):
    claims = claims_of(deps, session.access_token)
    stranger = generate_key("EdDSA")
    with pytest.raises(InvalidToken):  # a kid we do not hold
        verify_access_token(deps, jwt.encode(claims, stranger.private_key, algorithm="EdDSA",
                                             headers={"kid": stranger.kid}))
    with pytest.raises(InvalidToken):  # our kid, someone else's key
        verify_access_token(deps, jwt.encode(claims, stranger.private_key, algorithm="EdDSA",
                                             headers={"kid": keyset.keys[0].kid}))
    with pytest.raises(InvalidToken):  # no kid at all
        verify_access_token(deps, jwt.encode(claims, keyset.keys[0].private_key, algorithm="EdDSA"))


def test_expired_token_is_rejected(deps, session, identity_settings):
    token = session.access_token
    deps.clock.advance(3600 - 1)
    verify_access_token(deps, token)
    deps.clock.advance(1 + identity_settings.clock_skew_seconds)
    with pytest.raises(InvalidToken):
        verify_access_token(deps, token)


def _signed(deps, keyset, **changes):
    claims = {**claims_of(deps, issue_access_token(deps, user_id="usr_x", session_id="ses_x")),
              **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    key = keyset.keys[0]
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


def test_not_yet_valid_token_is_rejected(deps, session, keyset):
    now = int(T0.timestamp())
    with pytest.raises(InvalidToken):
        verify_access_token(deps, _signed(deps, keyset, nbf=now + 600), check_session=False)
    with pytest.raises(InvalidToken):
        verify_access_token(deps, _signed(deps, keyset, iat=now + 600, nbf=now), check_session=False)
    # within the clock-skew leeway it is fine
    verify_access_token(deps, _signed(deps, keyset, nbf=now + 2), check_session=False)


def test_wrong_issuer_audience_or_missing_claims_are_rejected(deps, session, keyset):
    for changes in ({"iss": "https://evil.example"}, {"aud": "another-api"}, {"sid": None},
                    {"exp": None}, {"sub": None}, {"jti": None}, {"exp": "tomorrow"}):
        with pytest.raises(InvalidToken):
            verify_access_token(deps, _signed(deps, keyset, **changes), check_session=False)


def test_tampered_payload_or_signature_is_rejected(deps, session):
    token = session.access_token
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "usr_somebodyelse000000000"
    forged = f"{header}.{b64u(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(InvalidToken):
        verify_access_token(deps, forged)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(InvalidToken):
        verify_access_token(deps, f"{header}.{payload}.{flipped}")
    for junk in ("", "abc", "a.b.c", "eyJ.eyJ.x", token + "x"):
        with pytest.raises(InvalidToken):
            verify_access_token(deps, junk)


def test_forged_tokens_get_a_401_envelope_over_http(deps, session, keyset, me):
    ok = me.get("/v1/me", headers={"Authorization": f"Bearer {session.access_token}"})
    assert ok.status_code == 404  # valid token; this test's user has no profile document
    claims = claims_of(deps, session.access_token)
    forged = craft({"alg": "none", "kid": keyset.keys[0].kid}, claims)
    assert_error(me.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")
    assert_error(me.get("/v1/me"), 401, "missing_credentials")
    assert_error(me.get("/v1/me", headers={"Authorization": "Bearer nonsense"}), 401)


# --- keys --------------------------------------------------------------------------------------

def test_rotation_keeps_old_tokens_valid_until_their_expiry(deps, session, keyset):
    old_token = session.access_token
    rotated = rotate(keyset, now=T0)
    deps.extras["identity.keyset"] = rotated
    new_token = issue_access_token(deps, user_id="usr_tokentest0000000000001",
                                   session_id=session.session.id)
    new_kid = jwt.get_unverified_header(new_token)["kid"]
    assert new_kid != keyset.keys[0].kid and new_kid == rotated.signing_key(T0).kid
    verify_access_token(deps, old_token)
    verify_access_token(deps, new_token)
    assert {k["kid"] for k in rotated.jwks(T0).model_dump()["keys"]} == {keyset.keys[0].kid, new_kid}
    # the old key verifies until every token it signed has expired, then it is gone
    deps.clock.advance(3600 + 10)
    assert [k["kid"] for k in rotated.jwks(deps.clock.now()).model_dump()["keys"]] == [new_kid]
    with pytest.raises(InvalidToken):
        verify_access_token(deps, old_token)
    # a second rotation drops keys already past their verification window
    again = rotate(rotated, now=deps.clock.now())
    assert keyset.keys[0].kid not in {k.kid for k in again.keys} and len(again.keys) == 2


def test_keyset_json_roundtrip_and_es256(deps, session):
    ks = rotate(KeySet((generate_key("ES256", now=T0),)), now=T0, alg="EdDSA")
    loaded = load_keyset(ks.to_json())
    assert [(k.kid, k.alg, k.verify_until) for k in loaded.keys] == \
        [(k.kid, k.alg, k.verify_until) for k in ks.keys]
    es_only = KeySet((generate_key("ES256", now=T0),))
    deps.extras["identity.keyset"] = es_only
    token = issue_access_token(deps, user_id="usr_a", session_id=session.session.id)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    with pytest.raises(InvalidToken):  # sub does not own the session
        verify_access_token(deps, token)
    assert verify_access_token(deps, token, check_session=False)["sub"] == "usr_a"
    jwk = es_only.jwks(T0).model_dump()["keys"][0]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk


def test_malformed_key_secrets_fail_closed(deps):
    for bad in ("", "not json", "[]", '[{"alg": "HS256", "private_pem": "x"}]',
                '[{"alg": "EdDSA", "private_pem": "-----BEGIN PRIVATE KEY-----"}]'):
        with pytest.raises(KeyConfigError):
            load_keyset(bad)
    es = generate_key("ES256").to_json()
    with pytest.raises(KeyConfigError):  # alg that does not match the key type
        load_keyset(json.dumps([{**es, "alg": "EdDSA"}]))
    from shared.identity.config import IdentitySettings
    with pytest.raises(KeyConfigError):
        keys_mod.keyset_from_settings(IdentitySettings(jwt_keys=""), production=True)


def test_keys_come_from_the_secret_env_var(deps, monkeypatch):
    from shared.identity.config import IdentitySettings
    ks = KeySet((generate_key("EdDSA", now=T0),))
    monkeypatch.setenv("JWT_SIGNING_KEYS", ks.to_json())  # what Terraform mounts
    assert keys_mod.keyset_from_settings(IdentitySettings(), production=True).keys[0].kid == ks.keys[0].kid
    monkeypatch.setenv("PAYLOOM_IDENTITY_JWT_KEYS", ks.to_json())
    assert keys_mod.keyset_from_settings(IdentitySettings(), production=True).keys[0].kid == ks.keys[0].kid


def test_local_keys_are_generated_once_and_persisted(tmp_path):
    from shared.identity.config import IdentitySettings
    settings = IdentitySettings(jwt_keys="", jwt_keys_file=str(tmp_path / "s" / "jwt-keys.json"))
    first = keys_mod.keyset_from_settings(settings, production=False)
    path = tmp_path / "s" / "jwt-keys.json"
    assert path.exists() and (os.stat(path).st_mode & 0o777) == 0o600
    again = keys_mod.keyset_from_settings(settings, production=False)
    assert first.keys[0].kid == again.keys[0].kid


def test_key_cli_generates_and_rotates(capsys, monkeypatch):
    import io
    assert keys_mod.main(["generate", "ES256"]) == 0
    generated = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(generated))
    assert keys_mod.main(["rotate"]) == 0
    rotated = load_keyset(capsys.readouterr().out)
    assert len(rotated.keys) == 2 and all(k.alg == "ES256" for k in rotated.keys)
    assert keys_mod.main([]) == 2


def test_jwks_endpoint_serves_public_keys_only(deps, auth, keyset):
    r = auth.get("/.well-known/jwks.json")
    assert r.status_code == 200 and "max-age" in r.headers["Cache-Control"]
    body = r.get_json()
    assert body == keyset.jwks(dt.datetime.now(dt.timezone.utc)).model_dump(mode="json")
    assert all("d" not in k and k["use"] == "sig" for k in body["keys"])
