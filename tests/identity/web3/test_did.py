"""DIDs: W3C syntax, did:key and did:pkh validation, DID documents, linking to a verified phone."""
from __future__ import annotations

import base64
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from shared.identity.web3 import did as did_mod
from shared.identity.web3.did import DidError, parse_did
from shared.identity.web3.siwe import SiweMessage
from shared.platform.clock import rfc3339
from tests.identity.helpers import SIWE_DOMAIN, assert_error
from tests.support.identity import auth_headers, create_user_with_token

# From the did:key method spec (Ed25519) and the did:pkh method spec (eip155, bip122).
SPEC_DID_KEY = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
SPEC_DID_PKH = "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a"
SPEC_DID_PKH_BTC = "did:pkh:bip122:000000000019d6689c085ae165831e93:128Lkh3S7CkDTBZ8W7BbpsN3YYizJMp8p6"


@pytest.mark.parametrize("did", [
    "did:example:123456789abcdefghi", "did:web:example.com%3A3000", "did:web:example.com:user:alice",
    "did:ion:EiClkZMDxPKqC9c-umQfTkR8vvZ9JPhl_xLDI9Nfk38w5w", SPEC_DID_KEY, SPEC_DID_PKH,
    SPEC_DID_PKH_BTC, "did:a1:x",
])
def test_valid_did_syntax(did):
    assert did_mod.parse_did_syntax(did)[0] == did.split(":")[1]


@pytest.mark.parametrize("did", [
    "", "did:", "did:example", "did:example:", "did::abc", "did:Example:abc", "DID:example:abc",
    "did:ex-ample:abc", "did:example:abc:", "did:example:a b", "did:example:%zz", "did:example:a/b",
    "did:example:a#frag", "did:example:a?x=1", "did:example:ä", "did:example:" + "a" * 600,
])
def test_invalid_did_syntax(did):
    with pytest.raises(DidError):
        parse_did(did)


def test_did_key_spec_vector_and_round_trip():
    parsed = parse_did(SPEC_DID_KEY)
    assert parsed.key_codec == "ed25519-pub" and len(parsed.public_key) == 32
    assert did_mod.did_key_from_ed25519(parsed.public_key) == SPEC_DID_KEY
    assert SPEC_DID_KEY.startswith("did:key:z6Mk")  # 0xed01 prefix in base58btc
    key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert parse_did(did_mod.did_key_from_ed25519(key)).public_key == key
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    assert parse_did(did_mod.did_key_from_public_key(0x1200, p256)).did.startswith("did:key:zDn")


@pytest.mark.parametrize("did,why", [
    ("did:key:" + SPEC_DID_KEY[8:].replace("z", "m", 1), "multibase"),
    ("did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0", "base58btc"),
    ("did:key:z" + did_mod.b58encode(did_mod.varint_encode(0xED) + b"\x01" * 31), "32 bytes"),
    ("did:key:z" + did_mod.b58encode(did_mod.varint_encode(0x12) + b"\x01" * 32), "unsupported"),
    ("did:key:z" + did_mod.b58encode(did_mod.varint_encode(0x1200) + b"\x02" + b"\xff" * 32), "point"),
])
def test_invalid_did_keys(did, why):
    with pytest.raises(DidError) as err:
        parse_did(did)
    assert why in str(err.value)


def test_did_pkh_validation():
    parsed = parse_did(SPEC_DID_PKH)
    assert parsed.chain_id == 1
    assert parsed.address == to_checksum_address("0xb9c5714089478a327f09197987f16f9e5d936e8a")
    assert parsed.address != parsed.address.lower()
    assert parsed.did == "did:pkh:eip155:1:" + parsed.address  # stored canonical (EIP-55)
    assert parse_did(parsed.did).did == parsed.did
    assert parse_did(SPEC_DID_PKH_BTC).address is None
    for bad in ("did:pkh:eip155:1:0xB9c5714089478a327f09197987f16f9e5d936e8a",  # bad checksum
                "did:pkh:eip155:0x1:0xb9c5714089478a327f09197987f16f9e5d936e8a",
                "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8",
                "did:pkh:eip155:01:0xb9c5714089478a327f09197987f16f9e5d936e8a",
                "did:pkh:eip155:0xb9c5714089478a327f09197987f16f9e5d936e8a",
                "did:pkh:EIP155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a"):
        with pytest.raises(DidError):
            parse_did(bad)


def _path(did: str) -> str:
    return "/v1/auth/dids/" + urllib.parse.quote(did, safe=":")


def test_did_pkh_document(auth):
    r = auth.get(_path(SPEC_DID_PKH))
    assert r.status_code == 200 and r.mimetype == "application/did+ld+json"
    doc = r.get_json()
    vm_id = SPEC_DID_PKH + "#blockchainAccountId"
    assert doc["@context"][0] == "https://www.w3.org/ns/did/v1"
    assert doc["@context"][1]["blockchainAccountId"] == "https://w3id.org/security#blockchainAccountId"
    assert doc["id"] == SPEC_DID_PKH
    assert doc["verificationMethod"] == [{
        "id": vm_id, "type": "EcdsaSecp256k1RecoveryMethod2020", "controller": SPEC_DID_PKH,
        "blockchainAccountId": "eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a"}]
    assert doc["authentication"] == [vm_id] and doc["assertionMethod"] == [vm_id]


def test_did_key_document(auth):
    doc = auth.get(_path(SPEC_DID_KEY)).get_json()
    mb = SPEC_DID_KEY.split(":")[2]
    assert doc["id"] == SPEC_DID_KEY and doc["verificationMethod"][0]["publicKeyMultibase"] == mb
    assert doc["verificationMethod"][0]["type"] == "Multikey"
    assert doc["authentication"] == [f"{SPEC_DID_KEY}#{mb}"]


def test_resolution_errors(auth):
    assert_error(auth.get(_path("did:key:zzz")), 400, "did_invalid")
    assert_error(auth.get(_path("did:Bad:x")), 400, "did_invalid")
    assert_error(auth.get(_path("did:web:example.com")), 404, "did_method_unsupported")
    assert_error(auth.get(_path(SPEC_DID_PKH_BTC)), 404, "did_method_unsupported")


# --- linking ------------------------------------------------------------------------------------

def _ed25519():
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, did_mod.did_key_from_ed25519(raw)


def _b64(sig: bytes) -> str:
    return base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _challenge(me, headers, did):
    r = me.post("/v1/me/dids/challenge", json={"did": did}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_register_did_key_linked_to_verified_phone(deps, me, phone_user):
    user_id, headers, phone, _ = phone_user()
    key, did = _ed25519()
    ch = _challenge(me, headers, did)
    assert did in ch["message"] and user_id in ch["message"]
    r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"],
                                     "signature": _b64(key.sign(ch["message"].encode()))}, headers=headers)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["did"] == did and body["phone"] == phone and body["method"] == "key"
    stored = deps.db.collection("user_dids").document(body["id"]).get().to_dict()
    assert stored["user_id"] == user_id and stored["phone"] == phone and stored["did"] == did
    listed = me.get("/v1/me/dids", headers=headers).get_json()["data"]
    assert [d["did"] for d in listed] == [did]
    # the same challenge cannot be used twice
    r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"],
                                     "signature": _b64(key.sign(ch["message"].encode()))}, headers=headers)
    assert_error(r, 400, "did_challenge_invalid")
    assert me.delete("/v1/me/dids/" + did, headers=headers).status_code == 204
    assert me.get("/v1/me/dids", headers=headers).get_json()["data"] == []


@pytest.mark.parametrize("curve,codec", [(ec.SECP256K1(), 0xE7), (ec.SECP256R1(), 0x1200)])
def test_register_ecdsa_did_keys(me, phone_user, curve, codec):
    _, headers, _, _ = phone_user()
    key = ec.generate_private_key(curve)
    pub = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    did = did_mod.did_key_from_public_key(codec, pub)
    ch = _challenge(me, headers, did)
    r_, s_ = decode_dss_signature(key.sign(ch["message"].encode(), ec.ECDSA(hashes.SHA256())))
    sig = r_.to_bytes(32, "big") + s_.to_bytes(32, "big")
    r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"], "signature": _b64(sig)},
                headers=headers)
    assert r.status_code == 201, r.get_json()


def test_wrong_key_signature_is_rejected(me, phone_user):
    _, headers, _, _ = phone_user()
    _, did = _ed25519()
    other, _ = _ed25519()
    ch = _challenge(me, headers, did)
    r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"],
                                     "signature": _b64(other.sign(ch["message"].encode()))}, headers=headers)
    assert_error(r, 400, "did_signature_invalid")
    assert_error(me.post("/v1/me/dids", json={"did": did}, headers=headers), 400, "parameter_missing")
    assert_error(me.post("/v1/me/dids", json={"did": "did:nope"}, headers=headers), 400, "did_invalid")


def test_did_needs_a_verified_phone(deps, me):
    _, token = create_user_with_token(deps)
    key, did = _ed25519()
    ch = _challenge(me, auth_headers(token), did)
    r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"],
                                     "signature": _b64(key.sign(ch["message"].encode()))},
                headers=auth_headers(token))
    assert_error(r, 409, "phone_not_verified")


def test_did_of_another_user_is_409(me, phone_user):
    _, headers_a, _, _ = phone_user()
    _, headers_b, _, _ = phone_user()
    key, did = _ed25519()
    for headers, status in ((headers_a, 201), (headers_b, 409)):
        ch = _challenge(me, headers, did)
        r = me.post("/v1/me/dids", json={"did": did, "challenge_id": ch["id"],
                                         "signature": _b64(key.sign(ch["message"].encode()))}, headers=headers)
        assert r.status_code == status, r.get_json()


def _link_wallet(deps, me, headers, acct, chain_id=1):
    nonce = me.post("/v1/me/wallets/nonce", headers=headers).get_json()["nonce"]
    text = SiweMessage(domain=SIWE_DOMAIN, address=acct.address, uri=f"https://{SIWE_DOMAIN}/",
                       version="1", chain_id=chain_id, nonce=nonce,
                       issued_at=rfc3339(deps.clock.now())).prepare()
    sig = "0x" + bytes(Account.sign_message(encode_defunct(text=text), acct.key).signature).hex()
    r = me.post("/v1/me/wallets", json={"message": text, "signature": sig}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_did_pkh_needs_the_wallet_linked(deps, me, phone_user):
    _, headers, phone, _ = phone_user()
    acct = Account.create()
    did = f"did:pkh:eip155:1:{acct.address}"
    assert_error(me.post("/v1/me/dids", json={"did": did}, headers=headers), 409, "wallet_not_linked")
    wallet = _link_wallet(deps, me, headers, acct)
    assert wallet["did"] == did
    listed = me.get("/v1/me/dids", headers=headers).get_json()["data"]
    assert [(d["did"], d["source"]) for d in listed] == [(did, "wallet")]
    # an EOA controls its address on every eip155 chain; lower case is accepted and canonicalised
    r = me.post("/v1/me/dids", json={"did": f"did:pkh:eip155:8453:{acct.address.lower()}"}, headers=headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["did"] == f"did:pkh:eip155:8453:{acct.address}" and r.get_json()["phone"] == phone
    # unlinking the wallet removes its did:pkh links
    assert me.delete(f"/v1/me/wallets/{acct.address}", headers=headers).status_code == 204
    assert me.get("/v1/me/dids", headers=headers).get_json()["data"] == []
    assert not deps.db.collection("user_handles").document(
        f"did:did:pkh:eip155:8453:{acct.address}").get().exists


def test_pkh_challenge_is_not_needed(me, phone_user):
    _, headers, _, _ = phone_user()
    r = me.post("/v1/me/dids/challenge", json={"did": SPEC_DID_PKH}, headers=headers)
    assert_error(r, 400, "did_challenge_not_needed")
