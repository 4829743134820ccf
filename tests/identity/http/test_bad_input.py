"""Bad input to every route of this area is a 4xx error envelope, never a 500."""
from __future__ import annotations

import pytest

from tests.identity.helpers import fresh_ip
from tests.support.identity import auth_headers, create_user_with_token

JUNK_BODIES = [
    {}, {"phone": None}, {"phone": ["+85512345678"]}, {"phone": "+85512345678", "code": 123456},
    {"message": "x", "signature": "0x00"}, {"message": 5, "signature": {}},
    {"message": "a" * 20000, "signature": "0x" + "00" * 65}, {"did": "did:key:" + "1" * 100},
    {"did": "did:pkh:eip155:1:0x" + "g" * 40}, {"did": 7}, {"code": "x" * 5000, "state": "y"},
    {"unknown": True},
]
AUTH_POSTS = ["/v1/auth/phone/start", "/v1/auth/phone/verify", "/v1/auth/siwe/verify",
              "/v1/auth/oauth/google/callback", "/v1/auth/oauth/nope/callback",
              "/v1/auth/mfa/verify", "/v1/auth/mfa/sms"]
ME_POSTS = ["/v1/me/wallets", "/v1/me/dids", "/v1/me/dids/challenge", "/v1/me/phone",
            "/v1/me/phone/verify", "/v1/me/mfa/sms/confirm"]
GETS = ["/v1/auth/oauth/google/callback?state=" + "s" * 300, "/v1/auth/oauth/github/callback?code=x",
        "/v1/auth/oauth/nope/authorize", "/v1/auth/oauth/google/authorize?link=maybe",
        "/v1/auth/dids/did:key:z0OIl", "/v1/auth/dids/did:pkh:eip155:99999999999999999999999999999999999:0x1",
        "/v1/auth/dids/%25%25", "/v1/auth/dids/did:example:a%zz"]


@pytest.mark.parametrize("path", AUTH_POSTS)
def test_auth_posts(auth, path):
    for body in JUNK_BODIES:
        r = auth.post(path, json=body, headers={"X-Forwarded-For": fresh_ip()})
        assert 400 <= r.status_code < 500, (path, body, r.get_data(as_text=True))
        assert "error" in r.get_json()
    r = auth.post(path, data="phone=1", content_type="application/x-www-form-urlencoded",
                  headers={"X-Forwarded-For": fresh_ip()})
    assert 400 <= r.status_code < 500


def test_me_routes(deps, me):
    _, token = create_user_with_token(deps)
    headers = auth_headers(token)
    for path in ME_POSTS:
        for body in JUNK_BODIES:
            r = me.post(path, json=body, headers=headers)
            assert 400 <= r.status_code < 500, (path, body, r.get_data(as_text=True))
    for path in ("/v1/me/wallets/0xnothex", "/v1/me/wallets/" + "1" * 300, "/v1/me/dids/did:bad",
                 "/v1/me/identities/nope", "/v1/me/identities/google"):
        r = me.delete(path, headers=headers)
        assert 400 <= r.status_code < 500, (path, r.get_data(as_text=True))
    assert me.post("/v1/me/wallets/nonce").status_code == 401


@pytest.mark.parametrize("path", GETS)
def test_gets(auth, path):
    r = auth.get(path, headers={"X-Forwarded-For": fresh_ip()})
    assert 400 <= r.status_code < 500, (path, r.get_data(as_text=True))


# Values that end up naming Firestore documents, from bodies (issue 7, defect 2).
DOC_ID_JUNK = ["__main__", "a/b", "..", ".", "x" * 2000, "mfc_" + "a" * 32 + "/b", "__x__"]


def test_ids_from_bodies_never_reach_firestore_unchecked(deps, auth, me):
    _, token = create_user_with_token(deps)
    headers = auth_headers(token)
    for bad in DOC_ID_JUNK:
        for path, body, client, h in (
                ("/v1/auth/mfa/verify", {"challenge_id": bad, "code": "123456"}, auth, {}),
                ("/v1/auth/mfa/sms", {"challenge_id": bad}, auth, {}),
                ("/v1/me/dids", {"did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                                 "challenge_id": bad, "signature": "AAAA"}, me, headers)):
            r = client.post(path, json=body, headers={"X-Forwarded-For": fresh_ip(), **h})
            assert r.status_code == 400, (path, bad, r.get_data(as_text=True))
            assert r.get_json()["error"]["param"] == "challenge_id"


def test_a_slash_in_an_email_or_a_huge_siwe_nonce_is_not_a_500(deps, auth):
    from tests.identity.web3.test_wallets import message_for
    # '/' is legal in an email's local part; the handle id must not become a path
    r = auth.post("/v1/auth/register", json={"email": "a/b@example.com", "username": "slashy",
                                             "password": "correct horse battery"},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 201, r.get_json()
    r = auth.post("/v1/auth/login", json={"email": "a/b@example.com",
                                          "password": "correct horse battery"},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 200, r.get_json()
    again = auth.post("/v1/auth/register", json={"email": "A/B@example.com", "username": "slashy2",
                                                 "password": "correct horse battery"},
                      headers={"X-Forwarded-For": fresh_ip()})
    assert again.status_code in (201, 409)  # local parts are case-sensitive; never a 500
    from eth_utils import to_checksum_address
    text = message_for(to_checksum_address("0x" + "ab" * 20), "n" * 3000, deps.clock.now())
    r = auth.post("/v1/auth/siwe/verify", json={"message": text, "signature": "0x" + "00" * 65},
                  headers={"X-Forwarded-For": fresh_ip()})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "siwe_nonce_invalid", \
        r.get_data(as_text=True)
