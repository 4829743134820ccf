"""ERC-20 facts the chain code shares: the ABI subset we call, the Transfer event, log decoding.

The full ABI and bytecode of the local test tokens live in ``shared/chain/contracts/<CODE>.json``
(OpenZeppelin ERC20, compiled by ``shared.chain.contracts.build``); in production the token
contracts are the network's own (configured in ``networks``), so nothing here depends on our
artifacts except ``token_artifact`` used by deployment and tests.

Pure (no RPC): the watcher reads ``Transfer`` logs in batches with ``eth_getLogs`` filtered by
``TRANSFER_TOPIC`` and the deposit addresses as topic 2, then ``decode_transfer_log`` turns each
raw log into a ``TokenTransfer`` with exact integer base units.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

CONTRACTS_DIR = pathlib.Path(__file__).resolve().parent / "contracts"
TOKEN_CODES = ("USDC", "MUSD", "PPT")

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]  # a9059cbb

ERC20_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "name", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "totalSupply", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable",
     "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "event", "name": "Transfer", "anonymous": False,
     "inputs": [{"name": "from", "type": "address", "indexed": True},
                {"name": "to", "type": "address", "indexed": True},
                {"name": "value", "type": "uint256", "indexed": False}]},
]


@functools.cache
def token_artifact(code: str) -> dict[str, Any]:
    """The committed artifact (abi, bytecode, compiler, source hashes) of a local test token."""
    if code not in TOKEN_CODES:
        raise KeyError(f"no test token {code!r}; known: {', '.join(TOKEN_CODES)}")
    return json.loads((CONTRACTS_DIR / f"{code}.json").read_text())


def address_topic(address: str) -> str:
    """An address as a 32-byte indexed topic (for ``eth_getLogs`` filters on from/to)."""
    if not is_address(address):
        raise ValueError(f"not an address: {address!r}")
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def encode_transfer_call(to: str, amount: int) -> bytes:
    """Calldata of ``transfer(to, amount)`` (what a wallet sends for an EIP-681 token request)."""
    if not is_address(to):
        raise ValueError(f"not an address: {to!r}")
    if not 0 <= amount < 2**256:
        raise ValueError("amount out of uint256 range")
    return (TRANSFER_SELECTOR + bytes.fromhex("00" * 12 + to.lower().removeprefix("0x"))
            + amount.to_bytes(32, "big"))


@dataclasses.dataclass(frozen=True)
class TokenTransfer:
    """One ERC-20 Transfer log, decoded. ``value`` is in the token's base units (exact int)."""
    token: str          # checksum address of the contract that emitted the log
    sender: str
    recipient: str
    value: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int

    @property
    def key(self) -> str:
        """Identity of the log within its block (a reorg changes block_hash, not this)."""
        return f"{self.tx_hash}:{self.log_index}"


def _hex(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


def decode_transfer_log(log: dict[str, Any]) -> TokenTransfer | None:
    """A raw JSON-RPC log (hex strings) or a web3 AttributeDict log, decoded; ``None`` when it
    is not a standard ERC-20 Transfer (other event, ERC-721's indexed tokenId, malformed)."""
    topics = [_hex(t).lower() for t in log.get("topics", [])]
    if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
        return None
    data = _hex(log.get("data", "0x"))
    if len(data) != 2 + 64:
        return None
    return TokenTransfer(
        token=to_checksum_address(_hex(log["address"])),
        sender=to_checksum_address("0x" + topics[1][-40:]),
        recipient=to_checksum_address("0x" + topics[2][-40:]),
        value=int(data, 16),
        block_number=_int(log["blockNumber"]),
        block_hash=_hex(log["blockHash"]).lower(),
        tx_hash=_hex(log["transactionHash"]).lower(),
        log_index=_int(log["logIndex"]),
    )
