"""SIWE wallet linking on a real anvil: EOAs (EIP-191) and a contract wallet (ERC-1271)."""
from __future__ import annotations

import datetime as dt

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from shared.adapters.evm import EvmClient
from shared.identity.web3.contracts.build import load_artifact
from shared.identity.web3.siwe import SiweMessage, SiweSettings, eip191_hash
from shared.platform.clock import FrozenClock, rfc3339
from tests.identity.helpers import ANVIL_CHAIN_ID, SIWE_DOMAIN, assert_error, fresh_ip
from tests.support.identity import auth_headers, create_user_with_token


@pytest.fixture(scope="module")
def chain(anvil):
    """anvil plus one deployed OwnedWallet (ERC-1271) whose owner key we hold."""
    w3 = Web3(Web3.HTTPProvider(anvil))
    owner = Account.create()
    artifact = load_artifact("OwnedWallet")
    contract = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = contract.constructor(owner.address).transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt.status == 1
    return {"url": anvil, "w3": w3, "owner": owner, "wallet": receipt.contractAddress,
            "deploy": lambda o: w3.eth.wait_for_transaction_receipt(
                contract.constructor(o).transact({"from": w3.eth.accounts[0]})).contractAddress}


@pytest.fixture(autouse=True)
def siwe_on_anvil(deps, chain):
    deps.extras["identity.siwe_settings"] = SiweSettings(
        domain=SIWE_DOMAIN, rpc_urls={ANVIL_CHAIN_ID: chain["url"]})


def message_for(address: str, nonce: str, now: dt.datetime, **kw) -> str:
    fields = dict(domain=SIWE_DOMAIN, address=address, uri=f"https://{SIWE_DOMAIN}/wallets",
                  version="1", chain_id=ANVIL_CHAIN_ID, nonce=nonce, issued_at=rfc3339(now),
                  statement="Link this wallet to my Payloom account.")
    fields.update(kw)
    return SiweMessage(**fields).prepare()


def sign(account, text: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), account.key).signature).hex()


def nonce_for(me, headers) -> str:
    r = me.post("/v1/me/wallets/nonce", headers=headers)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert len(body["nonce"]) >= 8 and body["nonce"].isalnum() and body["domain"] == SIWE_DOMAIN
    return body["nonce"]


def link(me, headers, message, signature):
    return me.post("/v1/me/wallets", json={"message": message, "signature": signature}, headers=headers)


@pytest.fixture
def user(deps):
    user_id, token = create_user_with_token(deps)
    return user_id, auth_headers(token)


def test_eoa_links_with_personal_sign(deps, me, user):
    user_id, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    r = link(me, headers, text, sign(acct, text))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["address"] == acct.address and body["kind"] == "eoa" and body["chain_id"] == ANVIL_CHAIN_ID
    assert body["did"] == f"did:pkh:eip155:{ANVIL_CHAIN_ID}:{acct.address}"
    doc = deps.db.collection("user_wallets").document(body["id"]).get().to_dict()
    assert {k: doc[k] for k in ("user_id", "address", "chain_id", "did", "kind")} == {
        "user_id": user_id, "address": acct.address, "chain_id": ANVIL_CHAIN_ID,
        "did": body["did"], "kind": "eoa"}
    handle = deps.db.collection("user_handles").document(f"wallet:{acct.address.lower()}").get()
    assert handle.get("user_id") == user_id
    listed = me.get("/v1/me/wallets", headers=headers).get_json()["data"]
    assert [w["address"] for w in listed] == [acct.address]
    profile = me.get("/v1/me", headers=headers).get_json()
    assert profile["wallets"][0]["address"] == acct.address


def test_wrong_domain_is_rejected(deps, me, user):
    _, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now(), domain="evil.example")
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_domain_mismatch")
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now(), scheme="http")
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_domain_mismatch")


def test_expired_and_not_yet_valid_messages(deps, me, user):
    _, headers = user
    acct = Account.create()
    now = deps.clock.now()
    text = message_for(acct.address, nonce_for(me, headers), now,
                       expiration_time=rfc3339(now - dt.timedelta(minutes=5)))
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_expired")
    text = message_for(acct.address, nonce_for(me, headers), now,
                       not_before=rfc3339(now + dt.timedelta(minutes=5)))
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_not_yet_valid")
    text = message_for(acct.address, nonce_for(me, headers), now + dt.timedelta(minutes=5))
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_not_yet_valid")
    # within the skew is fine
    text = message_for(acct.address, nonce_for(me, headers), now + dt.timedelta(seconds=20),
                       expiration_time=rfc3339(now + dt.timedelta(minutes=5)))
    assert link(me, headers, text, sign(acct, text)).status_code == 201


def test_nonce_is_single_use(deps, me, user):
    _, headers = user
    acct, other = Account.create(), Account.create()
    nonce = nonce_for(me, headers)
    text = message_for(acct.address, nonce, deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_nonce_used")
    text2 = message_for(other.address, nonce, deps.clock.now())
    assert_error(link(me, headers, text2, sign(other, text2)), 400, "siwe_nonce_used")


def test_a_failed_attempt_burns_the_nonce(deps, me, user):
    _, headers = user
    acct = Account.create()
    nonce = nonce_for(me, headers)
    text = message_for(acct.address, nonce, deps.clock.now())
    assert_error(link(me, headers, text, sign(Account.create(), text)), 400, "siwe_signature_invalid")
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_nonce_used")


def test_unknown_foreign_and_expired_nonces(deps, me, user):
    _, headers = user
    _, other_token = create_user_with_token(deps)
    acct = Account.create()
    text = message_for(acct.address, "MadeUpNonce123", deps.clock.now())
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_nonce_invalid")
    foreign = nonce_for(me, auth_headers(other_token))
    text = message_for(acct.address, foreign, deps.clock.now())
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_nonce_invalid")
    deps.clock = FrozenClock(deps.clock.now())
    nonce = nonce_for(me, headers)
    deps.clock.advance(601)
    text = message_for(acct.address, nonce, deps.clock.now())
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_nonce_expired")


def test_non_checksummed_address_is_rejected(deps, me, user):
    _, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now()).replace(
        acct.address, acct.address.lower())
    body = assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_malformed")
    assert "EIP-55" in body["error"]["message"]


def test_tampered_message_is_rejected(deps, me, user):
    _, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    signature = sign(acct, text)
    tampered = text.replace("Link this wallet", "Link that wallet")
    assert_error(link(me, headers, tampered, signature), 400, "siwe_signature_invalid")


@pytest.mark.parametrize("signature", ["0x", "0xzz", "deadbeef", "0x" + "00" * 65, "0x" + "ab" * 5000])
def test_malformed_signatures_are_400(deps, me, user, signature):
    _, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    r = link(me, headers, text, signature)
    assert r.status_code == 400, r.get_json()


def test_contract_wallet_links_via_erc1271(deps, me, user, chain):
    _, headers = user
    text = message_for(chain["wallet"], nonce_for(me, headers), deps.clock.now())
    r = link(me, headers, text, sign(chain["owner"], text))  # the owner signs for the contract
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["kind"] == "contract" and r.get_json()["address"] == chain["wallet"]


def test_contract_wallet_rejects_a_wrong_signer(deps, me, user, chain):
    _, headers = user
    wallet = chain["deploy"](chain["owner"].address)
    text = message_for(wallet, nonce_for(me, headers), deps.clock.now())
    assert_error(link(me, headers, text, sign(Account.create(), text)), 400, "siwe_signature_invalid")


def test_erc1271_adapter_against_the_chain(chain):
    client = EvmClient(chain["url"])
    assert client.chain_id() == ANVIL_CHAIN_ID
    assert "0x" + client.get_code(chain["wallet"]).hex() == load_artifact("OwnedWallet")["deployedBytecode"]
    digest = eip191_hash("hello")
    good = Account.sign_message(encode_defunct(text="hello"), chain["owner"].key).signature
    bad = Account.sign_message(encode_defunct(text="hello"), Account.create().key).signature
    assert client.is_valid_signature_1271(chain["wallet"], digest, bytes(good)) is True
    assert client.is_valid_signature_1271(chain["wallet"], digest, bytes(bad)) is False
    assert client.is_valid_signature_1271(chain["wallet"], digest, b"\x01" * 10) is False
    assert client.is_contract(chain["wallet"]) and not client.is_contract(chain["owner"].address)
    # an EOA has no isValidSignature: an empty answer is "not valid", never an error
    assert client.is_valid_signature_1271(chain["owner"].address, digest, bytes(good)) is False


def test_address_linked_to_another_user_is_409(deps, me, user):
    _, headers = user
    _, other_token = create_user_with_token(deps)
    other = auth_headers(other_token)
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    text = message_for(acct.address, nonce_for(me, other), deps.clock.now())
    assert_error(link(me, other, text, sign(acct, text)), 409, "wallet_linked_elsewhere")
    # relinking by the owner is idempotent
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 200


def test_unlink_wallet(deps, me, user):
    user_id, headers = user
    _, other_token = create_user_with_token(deps)
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    assert_error(me.delete(f"/v1/me/wallets/{acct.address}", headers=auth_headers(other_token)), 404)
    assert_error(me.delete("/v1/me/wallets/0x1234", headers=headers), 400)
    assert me.delete(f"/v1/me/wallets/{acct.address.lower()}", headers=headers).status_code == 204
    assert not deps.db.collection("user_handles").document(f"wallet:{acct.address.lower()}").get().exists
    assert me.get("/v1/me/wallets", headers=headers).get_json()["data"] == []
    # now another user may link it
    other = auth_headers(other_token)
    text = message_for(acct.address, nonce_for(me, other), deps.clock.now())
    assert link(me, other, text, sign(acct, text)).status_code == 201


def test_unsupported_chain_when_chains_are_restricted(deps, me, user, chain):
    _, headers = user
    deps.extras["identity.siwe_settings"] = SiweSettings(domain=SIWE_DOMAIN, chain_ids=[1, 8453],
                                                         rpc_urls={ANVIL_CHAIN_ID: chain["url"]})
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert_error(link(me, headers, text, sign(acct, text)), 400, "siwe_chain_unsupported")


def test_sign_in_with_a_linked_wallet(deps, auth, me, user, chain):
    user_id, headers = user
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    ip = fresh_ip()

    def signin(account, address=None, nonce=None):
        nonce = nonce or auth.post("/v1/auth/siwe/nonce", headers={"X-Forwarded-For": ip}).get_json()["nonce"]
        text = message_for(address or account.address, nonce, deps.clock.now(), statement="Sign in to Payloom.")
        return auth.post("/v1/auth/siwe/verify", json={"message": text, "signature": sign(account, text)},
                         headers={"X-Forwarded-For": ip})

    r = signin(acct)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["user_id"] == user_id and r.get_json()["session"]["amr"] == ["swk"]
    assert_error(signin(Account.create()), 401, "wallet_not_linked")
    # a link nonce (bound to a user) cannot sign in
    assert_error(signin(acct, nonce=nonce_for(me, headers)), 400, "siwe_nonce_invalid")
    # contract wallets sign in through ERC-1271 too
    text = message_for(chain["wallet"], nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(chain["owner"], text)).status_code == 201
    assert signin(chain["owner"], address=chain["wallet"]).status_code == 200


def test_wallet_counts_as_a_way_in_and_is_guarded(deps, me, phone_user):
    user_id, headers, phone, _ = phone_user()
    acct = Account.create()
    text = message_for(acct.address, nonce_for(me, headers), deps.clock.now())
    assert link(me, headers, text, sign(acct, text)).status_code == 201
    # take the phone away (as if changed elsewhere): the wallet is now the only way in
    deps.db.collection("users").document(user_id).update({"phone_verified": False})
    assert_error(me.delete(f"/v1/me/wallets/{acct.address}", headers=headers), 409, "last_sign_in_method")
