"""A minimal EVM JSON-RPC client: code lookup and ERC-1271 signature checks.

``EvmClient(rpc_url)`` wraps a web3 ``HTTPProvider``. Services get one per chain id through
``evm_client(deps, chain_id, rpc_url)`` (cached on ``deps``, replaceable in tests with
``deps.extras["evm:<chain_id>"]``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from shared.platform.safe_imports import pinned_recursion_limit

if TYPE_CHECKING:
    from web3 import Web3

# web3 is imported where it is used: it adds ~0.9 s to the cold start of every function that
# merely imports this module (auth, accounts), and only contract-wallet checks need it.

ERC1271_MAGIC = bytes.fromhex("1626ba7e")
# isValidSignature(bytes32,bytes) -> bytes4
ERC1271_ABI = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "magicValue", "type": "bytes4"}],
}]
# EIP-7702: an EOA delegating to code carries 0xef0100 || address.
EIP7702_PREFIX = bytes.fromhex("ef0100")


class ChainUnavailable(Exception):
    """The RPC node could not answer (network error, timeout, bad response)."""


def web3_client(rpc_url: str, *, timeout: float = 10.0) -> "Web3":
    with pinned_recursion_limit():  # web3 -> py_ecc raises the limit at import
        from web3 import Web3

    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


class EvmClient:
    def __init__(self, rpc_url: str, *, timeout: float = 10.0, w3: "Web3 | None" = None):
        self.rpc_url = rpc_url
        self.w3 = w3 or web3_client(rpc_url, timeout=timeout)

    def chain_id(self) -> int:
        from web3.exceptions import Web3Exception

        try:
            return int(self.w3.eth.chain_id)
        except (Web3Exception, OSError, ValueError) as exc:
            raise ChainUnavailable(str(exc)) from None

    def get_code(self, address: str) -> bytes:
        from web3.exceptions import Web3Exception

        try:
            return bytes(self.w3.eth.get_code(to_checksum_address(address)))
        except (Web3Exception, OSError, ValueError) as exc:
            raise ChainUnavailable(type(exc).__name__) from None

    def is_contract(self, address: str) -> bool:
        code = self.get_code(address)
        return bool(code) and not code.startswith(EIP7702_PREFIX)

    def is_valid_signature_1271(self, address: str, hash32: bytes, signature: bytes) -> bool:
        """ERC-1271: ``isValidSignature(hash, signature) == 0x1626ba7e``. A revert, an empty or
        malformed answer is "not valid"; a node failure raises ``ChainUnavailable``."""
        from web3.exceptions import ContractLogicError, Web3Exception

        if len(hash32) != 32:
            raise ValueError("hash must be 32 bytes")
        contract = self.w3.eth.contract(address=to_checksum_address(address), abi=ERC1271_ABI)
        try:
            data = contract.encode_abi("isValidSignature", args=[hash32, signature])
            raw = self.w3.eth.call({"to": to_checksum_address(address), "data": data})
        except ContractLogicError:
            return False
        except (Web3Exception, OSError) as exc:
            if "revert" in str(exc).lower():
                return False
            raise ChainUnavailable(type(exc).__name__) from None
        raw = bytes(raw)
        # ABI-encoded bytes4: the 4 bytes left-aligned in a 32-byte word.
        return len(raw) >= 32 and raw[:4] == ERC1271_MAGIC and raw[4:32] == bytes(28)


def evm_client(deps: Any, chain_id: int, rpc_url: str, *, timeout: float = 10.0) -> EvmClient:
    return deps.get(f"evm:{chain_id}", lambda: EvmClient(rpc_url, timeout=timeout))
