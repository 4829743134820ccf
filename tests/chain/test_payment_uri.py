"""EIP-681 URIs: writing, reading (the full number grammar, exactly), refusing, and paying.

The last tests pay on a real anvil from another account using only the fields parsed back from
the URI, as a wallet does, for ETH and for each token.
"""
from __future__ import annotations

import pytest
from eth_account import Account

from infra.local.chain_setup import mint
from shared.chain.networks import Network
from shared.chain.payment_uri import (
    PaymentRequest,
    erc20_uri,
    native_uri,
    parse_number,
    parse_uri,
    payment_request,
)
from shared.chain.tokens import ERC20_ABI, encode_transfer_call
from shared.platform.errors import InvalidRequest

TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
USDC = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_native_and_token_uris_have_the_eip681_shape():
    assert native_uri(TO.lower(), 31337, 2_014_000_000_000_000_000) == \
        f"ethereum:{TO}@31337?value=2014000000000000000"
    assert erc20_uri(USDC, TO, 1, 1_500_000) == \
        f"ethereum:{USDC}@1/transfer?address={TO}&uint256=1500000"
    assert native_uri(TO, 31337, None) == f"ethereum:{TO}@31337"          # top-up: payer chooses
    assert erc20_uri(USDC, TO, 31337, None) == f"ethereum:{USDC}@31337/transfer?address={TO}"


@pytest.mark.parametrize("request_", [
    PaymentRequest(recipient=TO, chain_id=31337, amount=1),
    PaymentRequest(recipient=TO, chain_id=1, amount=2**256 - 1),
    PaymentRequest(recipient=TO, chain_id=None, amount=None),
    PaymentRequest(recipient=TO, chain_id=31612, amount=10**18, token=USDC),
    PaymentRequest(recipient=TO, chain_id=8453, amount=0, token=USDC),
    PaymentRequest(recipient=TO, chain_id=8453, amount=None, token=USDC),
])
def test_round_trip(request_):
    assert parse_uri(request_.to_uri()) == request_


@pytest.mark.parametrize("text, value", [
    ("2.014e18", 2_014_000_000_000_000_000), ("2.014E18", 2_014_000_000_000_000_000),
    ("1e18", 10**18), ("1", 1), ("0", 0), ("+7", 7), ("1.5e1", 15), ("1e", 1), (".5e1", 5),
    ("123456789012345678901234567890", 123456789012345678901234567890),
    ("1.000000000000000001e18", 10**18 + 1),   # a float would lose the last wei
    (str(2**256 - 1), 2**256 - 1),
])
def test_numbers_parse_exactly(text, value):
    assert parse_number(text, param="value") == value


@pytest.mark.parametrize("text", ["", "abc", "1.5", "-1", "1e-3", "0x10", "1e999", "1..2",
                                  "e18", ".", "1,000", str(2**256), "NaN", "Infinity", "1 000"])
def test_bad_numbers_are_refused(text):
    with pytest.raises(InvalidRequest) as exc:
        parse_number(text, param="value")
    assert exc.value.code == "invalid_payment_uri" and exc.value.status == 400


def test_wallet_written_forms_parse():
    parsed = parse_uri(f"ethereum:pay-{TO}@31337?value=2.014e18")
    assert parsed == PaymentRequest(recipient=TO, chain_id=31337, amount=2_014_000_000_000_000_000)
    parsed = parse_uri(f"ethereum:{USDC.lower()}@1/transfer?address={TO.lower()}&uint256=1e6&gas=65000")
    assert parsed == PaymentRequest(recipient=TO, chain_id=1, amount=10**6, token=USDC)


@pytest.mark.parametrize("uri", [
    "bitcoin:1BoatSLRHtKNngkdXEeobR76b6f5t2mYjL", f"ethereum:{TO[:-1]}", "ethereum:vitalik.eth",
    f"ethereum:{TO}@0?value=1", f"ethereum:{TO}@abc", f"ethereum:{USDC}@1/approve?address={TO}&uint256=1",
    f"ethereum:{USDC}@1/transfer?uint256=1", f"ethereum:{USDC}@1/transfer?address=0x12&uint256=1",
    f"ethereum:{USDC}@1/transfer?address={TO}&uint256=1&value=5",
    f"ethereum:{TO}@1?value=1&value=2", f"ethereum:{TO}@1?value=1&data=0xdead",
    f"ethereum:{TO.replace('C8', 'c8')}@1?value=1",            # broken EIP-55 checksum
    f"ethereum:{TO}@1?value=1.5",                             # half a wei
    None,
])
def test_bad_uris_are_400(uri):
    with pytest.raises(InvalidRequest) as exc:
        parse_uri(uri)
    assert exc.value.code == "invalid_payment_uri"


def _network(tokens):
    return Network(name="anvil", chain_id=31337, rpc_urls=("http://127.0.0.1:8545",), tokens=tokens)


def test_payment_request_converts_ledger_units_exactly_per_asset():
    net = _network({"USDC": USDC, "MUSD": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"})
    assert payment_request(net, "ETH", TO, 1_500_000_000).amount == 15 * 10**17  # gwei → wei
    assert payment_request(net, "USDC", TO, 1_234_567) == \
        PaymentRequest(recipient=TO, chain_id=31337, amount=1_234_567, token=USDC)
    assert payment_request(net, "MUSD", TO, 1).amount == 10**12                  # scale 6 → 18
    assert payment_request(net, "ETH", TO, None).amount is None
    with pytest.raises(InvalidRequest) as exc:
        payment_request(net, "PPT", TO, 1)
    assert exc.value.code == "asset_unsupported_on_network"
    with pytest.raises(InvalidRequest) as exc:
        payment_request(net, "USD", TO, 1)
    assert exc.value.code in ("asset_unsupported_on_network", "asset_unknown")


# --- paying on a real chain from the URI's fields ------------------------------------------------

def _pay(w3, payer, request: PaymentRequest):
    """What a wallet does with a parsed EIP-681 request."""
    tx = {"from": payer.address, "chainId": request.chain_id,
          "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
          "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    if request.token is None:
        tx.update(to=request.recipient, value=request.amount, gas=21_000)
    else:
        tx.update(to=request.token, value=0, data=encode_transfer_call(request.recipient, request.amount))
        tx["gas"] = w3.eth.estimate_gas(tx)
    tx_hash = w3.eth.send_raw_transaction(Account.sign_transaction(tx, payer.key).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def test_paying_eth_from_the_uri(chain):
    net = _network(chain.tokens)
    deposit = Account.create().address
    uri = payment_request(net, "ETH", deposit, 2_014_000_000).to_uri()   # 2.014 ETH in gwei
    receipt = _pay(chain.w3, Account.from_key(chain.accounts[5].key), parse_uri(uri))
    assert receipt["status"] == 1
    assert chain.w3.eth.get_balance(deposit) == 2_014_000_000_000_000_000


def test_paying_a_scientific_notation_uri_pays_the_exact_wei(chain):
    deposit = Account.create().address
    request = parse_uri(f"ethereum:{deposit}@{chain.chain_id}?value=1.000000000000000001e18")
    _pay(chain.w3, Account.from_key(chain.accounts[5].key), request)
    assert chain.w3.eth.get_balance(deposit) == 10**18 + 1


@pytest.mark.parametrize("asset, units", [("USDC", 12_345_678), ("MUSD", 1_000_001), ("PPT", 7)])
def test_paying_each_token_from_the_uri(chain, asset, units):
    net = _network(chain.tokens)
    payer = Account.from_key(chain.accounts[6].key)
    deposit = Account.create().address
    request = parse_uri(payment_request(net, asset, deposit, units).to_uri())
    assert request.token == chain.tokens[asset] and request.chain_id == chain.chain_id
    mint(chain.rpc_url, chain.tokens[asset], payer.address, request.amount)
    assert _pay(chain.w3, payer, request)["status"] == 1
    token = chain.w3.eth.contract(address=chain.tokens[asset], abi=ERC20_ABI)
    assert token.functions.balanceOf(deposit).call() == request.amount
