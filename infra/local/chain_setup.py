"""Deploy the local test tokens (USDC, MUSD, PPT: OpenZeppelin ERC-20s) to a running anvil.

    python -m infra.local.chain_setup http://127.0.0.1:8545   # prints the PAYLOOM_CHAIN_NETWORKS JSON

Deterministic: the tokens are created by anvil's first default account (mnemonic "test test ...
junk", m/44'/60'/0'/0/0) with nonces 0, 1, 2 on a fresh chain, so their addresses are the CREATE
addresses ``keccak(rlp([deployer, nonce]))[12:]`` listed in ``EXPECTED_ADDRESSES``: config can be
static. Idempotent: a token whose expected address already carries its runtime code (an anvil
restarted from ``--state``, a second call) is reused, not redeployed. If the deployer's nonce was
spent on something else first, the token is deployed at the next nonce and the returned address
(not the static one) is the truth; the caller passes the result on as ``PAYLOOM_CHAIN_NETWORKS``.
"""
from __future__ import annotations

import json
import sys

import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address

from shared.adapters.evm import web3_client
from shared.chain.networks import ANVIL_CHAIN_ID, ChainNetworks
from shared.chain.tokens import TOKEN_CODES, token_artifact

# anvil's default account 0 (public, well-known test key: m/44'/60'/0'/0/0 of "test ... junk").
ANVIL_DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEPLOY_ORDER = TOKEN_CODES  # USDC at nonce 0, MUSD at 1, PPT at 2
MAX_SCAN_NONCES = 256       # earlier deployments looked for (get_code calls, local only)


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from ``sender`` at ``nonce`` lands at (yellow paper, eq. 86)."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:])


EXPECTED_ADDRESSES: dict[str, str] = {code: create_address(ANVIL_DEPLOYER, nonce)
                                      for nonce, code in enumerate(DEPLOY_ORDER)}


def deploy_tokens(rpc_url: str, *, private_key: str = ANVIL_DEPLOYER_KEY,
                  timeout: float = 60.0) -> dict[str, str]:
    """Deploy (or find) USDC, MUSD and PPT; returns ``{"USDC": address, ...}``.

    Every missing token's transaction is sent before waiting for any receipt, so with
    ``--block-time`` the three land in one block instead of three."""
    w3 = web3_client(rpc_url, timeout=timeout)
    account = Account.from_key(private_key)
    found: dict[str, str] = {}
    pending: dict[str, bytes] = {}
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    chain_id = w3.eth.chain_id
    # Where the deployer's earlier CREATEs landed: the static nonce (fast path) first, then the
    # rest, so a token deployed at a later nonce on a busy chain is found again, not redeployed.
    earlier = [create_address(account.address, n) for n in range(min(nonce, MAX_SCAN_NONCES))]
    codes: dict[str, bytes] = {}

    def code_at(address: str) -> bytes:
        if address not in codes:
            codes[address] = bytes(w3.eth.get_code(address))
        return codes[address]

    for index, code in enumerate(DEPLOY_ORDER):
        artifact = token_artifact(code)
        runtime = bytes.fromhex(artifact["deployedBytecode"][2:])
        static = create_address(account.address, index)
        candidates = [static] + [a for a in earlier if a != static]
        existing = next((a for a in candidates if a in earlier and code_at(a) == runtime), None)
        if existing:
            found[code] = existing
            continue
        tx = {"from": account.address, "nonce": nonce, "chainId": chain_id, "value": 0,
              "data": artifact["bytecode"]}
        tx["gas"] = w3.eth.estimate_gas(tx)
        signed = account.sign_transaction({**tx, **_fees(w3), "type": 2})
        pending[code] = w3.eth.send_raw_transaction(signed.raw_transaction)
        found[code] = create_address(account.address, nonce)
        nonce += 1
    for code, tx_hash in pending.items():
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.1)
        if receipt["status"] != 1 or to_checksum_address(receipt["contractAddress"]) != found[code]:
            raise RuntimeError(f"deploying {code} failed: {dict(receipt)}")
    return found


def _fees(w3) -> dict[str, int]:
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tip = 10**9
    return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}


def mint(rpc_url: str, token: str, to: str, amount: int, *,
         private_key: str = ANVIL_DEPLOYER_KEY, timeout: float = 60.0) -> str:
    """Mint ``amount`` base units of a test token to ``to`` (owner only); returns the tx hash."""
    w3 = web3_client(rpc_url, timeout=timeout)
    account = Account.from_key(private_key)
    contract = w3.eth.contract(address=to_checksum_address(token), abi=token_artifact("USDC")["abi"])
    tx = contract.functions.mint(to_checksum_address(to), amount).build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id, **_fees(w3)})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.1)
    if receipt["status"] != 1:
        raise RuntimeError(f"mint failed: {dict(receipt)}")
    return "0x" + bytes(tx_hash).hex()


def provision_local_custody(project_id: str, rpc_url: str, tokens: dict[str, str], *,
                            eth: int = 100 * 10**18, token_units: int = 100_000) -> str:
    """Test-mode custody for the local stack: the custodial seed (sealed with the local KMS
    keyring, once: later starts reuse it) and a funded hot wallet (ETH for gas and refunds,
    ``token_units`` whole tokens of each test token). Returns the hot wallet's address.

    In production the seed is provisioned once by custodians (ADR 0032), never by a deploy."""
    from shared.chain import hd
    from shared.platform.config import Settings
    from shared.platform.deps import Deps
    from shared.refunds.hot_wallet import HOT_ACCOUNT, HOT_INDEX

    deps = Deps(settings=Settings(env="local", project_id=project_id))
    seed, _created = hd.provision_custodial_seed(deps, livemode=False)
    hot = seed.tree(account=HOT_ACCOUNT).address(HOT_INDEX)
    w3 = web3_client(rpc_url)
    if w3.eth.get_balance(hot) < eth // 2:
        w3.provider.make_request("anvil_setBalance", [hot, hex(eth)])
    for code, token in sorted(tokens.items()):
        contract = w3.eth.contract(address=to_checksum_address(token), abi=token_artifact("USDC")["abi"])
        units = token_units * 10 ** contract.functions.decimals().call()
        if contract.functions.balanceOf(hot).call() < units // 2:
            mint(rpc_url, token, hot, units)
    return hot


def local_networks_env(rpc_urls: list[str] | str, tokens: dict[str, str], *,
                       chain_id: int = ANVIL_CHAIN_ID, name: str = "anvil",
                       block_time_seconds: float = 1.0, reorg_depth: int = 12) -> str:
    """The ``PAYLOOM_CHAIN_NETWORKS`` JSON for the local stack: one anvil network (test mode),
    ``rpc_urls`` in failover order, ``tokens`` as returned by ``deploy_tokens``."""
    urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
    network = {
        "name": name, "chain_id": chain_id, "livemode": False, "rpc_urls": urls,
        "native_asset": "ETH",
        "tokens": {code: to_checksum_address(addr) for code, addr in sorted(tokens.items())},
        "block_time_seconds": block_time_seconds, "reorg_depth": reorg_depth,
        "explorer_url": None,
    }
    validated = ChainNetworks.model_validate({"networks": [network]})  # fail here, not at boot
    return json.dumps([n.model_dump(mode="json") for n in validated.networks])


def main(argv: list[str]) -> int:
    rpc_url = argv[0] if argv else "http://127.0.0.1:8545"
    tokens = deploy_tokens(rpc_url)
    print(local_networks_env([rpc_url], tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
