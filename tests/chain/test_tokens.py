"""The test tokens on a real anvil: deterministic deployment, idempotence, ERC-20 behaviour.

Transfers are sent with web3 from an account other than the deployer, as a payer would, and the
Transfer logs are decoded with ``shared.chain.tokens`` (what the watcher will do).
"""
from __future__ import annotations

import pytest
from eth_account import Account

from infra.local.chain_setup import (
    ANVIL_DEPLOYER,
    EXPECTED_ADDRESSES,
    create_address,
    deploy_tokens,
    mint,
)
from shared.chain.networks import ANVIL_TOKEN_ADDRESSES
from shared.chain.tokens import (
    ERC20_ABI,
    TRANSFER_TOPIC,
    address_topic,
    decode_transfer_log,
    encode_transfer_call,
    token_artifact,
)

DECIMALS = {"USDC": 6, "MUSD": 18, "PPT": 18}


def _send(w3, account, tx):
    tx = {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "chainId": w3.eth.chain_id, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, **tx}
    tx.setdefault("gas", w3.eth.estimate_gas(tx))
    tx_hash = w3.eth.send_raw_transaction(Account.sign_transaction(tx, account.key).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def test_static_addresses_are_the_create_addresses_of_the_first_account():
    assert create_address(ANVIL_DEPLOYER, 0) == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert EXPECTED_ADDRESSES == ANVIL_TOKEN_ADDRESSES


def test_a_fresh_anvil_gets_the_static_addresses_and_a_second_call_reuses_them(chain):
    assert chain.tokens == ANVIL_TOKEN_ADDRESSES
    w3 = chain.w3
    nonce = w3.eth.get_transaction_count(ANVIL_DEPLOYER)
    block = w3.eth.block_number
    assert deploy_tokens(chain.rpc_url) == ANVIL_TOKEN_ADDRESSES
    assert w3.eth.get_transaction_count(ANVIL_DEPLOYER) == nonce  # nothing sent again
    assert w3.eth.block_number == block


@pytest.mark.parametrize("code", ["USDC", "MUSD", "PPT"])
def test_each_token_is_the_committed_openzeppelin_contract(chain, code):
    w3 = chain.w3
    address = chain.tokens[code]
    assert bytes(w3.eth.get_code(address)).hex() == token_artifact(code)["deployedBytecode"][2:]
    token = w3.eth.contract(address=address, abi=ERC20_ABI)
    assert token.functions.decimals().call() == DECIMALS[code]
    assert token.functions.symbol().call() == code
    supply = 10**9 * 10 ** DECIMALS[code]
    assert token.functions.totalSupply().call() == supply
    assert token.functions.balanceOf(ANVIL_DEPLOYER).call() >= supply - 10**6 * 10 ** DECIMALS[code]


@pytest.mark.parametrize("code", ["USDC", "MUSD", "PPT"])
def test_a_payer_transfers_each_token_and_the_log_decodes_exactly(chain, code):
    w3 = chain.w3
    payer = Account.from_key(chain.accounts[3].key)
    recipient = Account.create().address
    amount = 123_456_789 * 10 ** (DECIMALS[code] - 6) + 1   # exact, not float-friendly
    mint(chain.rpc_url, chain.tokens[code], payer.address, 10 * amount)
    receipt = _send(w3, payer, {"to": chain.tokens[code], "value": 0,
                                "data": encode_transfer_call(recipient, amount)})
    assert receipt["status"] == 1
    token = w3.eth.contract(address=chain.tokens[code], abi=ERC20_ABI)
    assert token.functions.balanceOf(recipient).call() == amount
    # the watcher's query: Transfer logs of our tokens to a set of deposit addresses, in one call
    logs = w3.eth.get_logs({"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"],
                            "address": list(chain.tokens.values()),
                            "topics": [TRANSFER_TOPIC, None, [address_topic(recipient)]]})
    assert len(logs) == 1
    transfer = decode_transfer_log(logs[0])
    assert (transfer.token, transfer.sender, transfer.recipient, transfer.value) == \
        (chain.tokens[code], payer.address, recipient, amount)
    assert transfer.block_hash == "0x" + bytes(receipt["blockHash"]).hex()
    # and the raw JSON-RPC form decodes the same
    raw = w3.provider.make_request("eth_getLogs", [{"fromBlock": hex(receipt["blockNumber"]),
                                                     "toBlock": hex(receipt["blockNumber"]),
                                                     "topics": [TRANSFER_TOPIC]}])["result"]
    assert [decode_transfer_log(r) for r in raw] == [transfer]


def test_a_transfer_beyond_the_balance_reverts_and_only_the_owner_mints(chain):
    w3 = chain.w3
    stranger = Account.from_key(chain.accounts[4].key)
    token = w3.eth.contract(address=chain.tokens["USDC"], abi=token_artifact("USDC")["abi"])
    balance = token.functions.balanceOf(stranger.address).call()
    from web3.exceptions import ContractLogicError
    with pytest.raises(ContractLogicError):
        token.functions.transfer(Account.create().address, balance + 1).call({"from": stranger.address})
    with pytest.raises(ContractLogicError):
        token.functions.mint(stranger.address, 1).call({"from": stranger.address})
    assert token.functions.owner().call() == ANVIL_DEPLOYER


def test_a_chain_where_the_deployer_moved_first_gets_the_tokens_at_later_nonces_once():
    """Account 0 spent nonce 0 before the setup ran: the tokens land at nonces 1..3, the returned
    map (not the static one) says where, and a second call finds them instead of redeploying."""
    from shared.adapters.evm import web3_client
    from tests.chain.conftest import anvil_accounts, start_anvil, stop_anvil

    proc, url = start_anvil()
    try:
        w3 = web3_client(url)
        _send(w3, Account.from_key(anvil_accounts(1)[0].key),
              {"to": Account.create().address, "value": 1, "gas": 21000})
        tokens = deploy_tokens(url)
        assert tokens == {code: create_address(ANVIL_DEPLOYER, n + 1)
                          for n, code in enumerate(("USDC", "MUSD", "PPT"))}
        assert deploy_tokens(url) == tokens
        assert w3.eth.get_transaction_count(ANVIL_DEPLOYER) == 4
        for code, address in tokens.items():
            assert w3.eth.contract(address=address, abi=ERC20_ABI).functions.symbol().call() == code
    finally:
        stop_anvil(proc)


def test_deploying_to_a_dead_node_fails_loudly():
    import requests

    from infra.local.stack import free_port
    with pytest.raises((requests.RequestException, OSError)):
        deploy_tokens(f"http://127.0.0.1:{free_port()}", timeout=2)
