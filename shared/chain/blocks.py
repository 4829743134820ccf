"""Pure chain rules of the watcher: topics, log decoding, confirmation depth, reorg detection.

No I/O here, so every rule is tested without a node. Hex quantities are parsed exactly as
integers (never through floats); addresses are compared lower-case.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

# keccak256("Transfer(address,address,uint256)"): ERC-20 (and ERC-721, told apart by topic count).
from shared.chain.tokens import TRANSFER_TOPIC

T = TypeVar("T")
NATIVE_LOG_INDEX = -1  # native ETH transfers are found in block transactions, not logs


class ChainDataError(ValueError):
    """A node answered something that is not a well-formed block, log or quantity."""


def quantity(value: Any) -> int:
    """A JSON-RPC quantity (``0x1a``) as an int, exactly."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainDataError(f"not a hex quantity: {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise ChainDataError(f"not a hex quantity: {value!r}") from None


def hex_quantity(n: int) -> str:
    return hex(int(n))


def address_topic(address: str) -> str:
    """An address as an indexed event topic: 32 bytes, left-padded with zeros, lower-case."""
    a = address.lower()
    if not (a.startswith("0x") and len(a) == 42):
        raise ChainDataError(f"not an address: {address!r}")
    int(a, 16)
    return "0x" + "0" * 24 + a[2:]


def topic_address(topic: str) -> str:
    """The address in a 32-byte topic (lower-case)."""
    if not isinstance(topic, str) or len(topic) != 66:
        raise ChainDataError(f"not a 32-byte topic: {topic!r}")
    return "0x" + topic[-40:].lower()


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive batches of at most ``size`` (none when empty)."""
    if size < 1:
        raise ValueError("batch size must be positive")
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def logs_filter(from_block: int, to_block: int, tokens: Iterable[str],
                recipients: Sequence[str]) -> dict[str, Any]:
    """One ``eth_getLogs`` filter: Transfer events of any of ``tokens`` to any of ``recipients``
    (topic2 OR-list), so a batch of addresses costs one call whatever its size."""
    return {"fromBlock": hex_quantity(from_block), "toBlock": hex_quantity(to_block),
            "address": sorted({t.lower() for t in tokens}),
            "topics": [TRANSFER_TOPIC, None, [address_topic(r) for r in recipients]]}


@dataclasses.dataclass(frozen=True)
class Observed:
    """A transfer as the chain shows it (before it meets its deposit address)."""
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    sender: str
    to: str
    token: str | None   # contract address (lower-case) or None for native ETH
    amount: int


def decode_transfer_log(log: dict[str, Any]) -> Observed | None:
    """An ERC-20 ``Transfer`` log, or None for anything else (ERC-721 has 4 topics and no data
    amount; a ``removed`` log belongs to a dropped block)."""
    topics = log.get("topics") or []
    if log.get("removed") or len(topics) != 3 or str(topics[0]).lower() != TRANSFER_TOPIC:
        return None
    data = log.get("data") or "0x"
    if len(data) < 3:
        return None
    return Observed(tx_hash=str(log["transactionHash"]).lower(), log_index=quantity(log["logIndex"]),
                    block_number=quantity(log["blockNumber"]), block_hash=str(log["blockHash"]).lower(),
                    sender=topic_address(topics[1]), to=topic_address(topics[2]),
                    token=str(log["address"]).lower(), amount=int(data[2:66], 16))


def native_transfers(block: dict[str, Any], watched: set[str]) -> list[Observed]:
    """Plain ETH sent by a transaction straight to a watched address (value > 0). ETH moved by a
    contract's internal call is not visible here (it needs trace APIs; see the ADR)."""
    found = []
    number, bhash = quantity(block["number"]), str(block["hash"]).lower()
    for tx in block.get("transactions") or []:
        if not isinstance(tx, dict):
            raise ChainDataError("block fetched without transaction bodies")
        to = (tx.get("to") or "").lower()
        if to and to in watched:
            value = quantity(tx.get("value", "0x0"))
            if value > 0:
                found.append(Observed(tx_hash=str(tx["hash"]).lower(), log_index=NATIVE_LOG_INDEX,
                                      block_number=number, block_hash=bhash,
                                      sender=str(tx.get("from", "")).lower(), to=to, token=None,
                                      amount=value))
    return found


def confirmations(head: int, block_number: int) -> int:
    """Blocks on top of and including the transfer's block: 1 in the block that carries it."""
    return max(0, head - block_number + 1)


def is_confirmed(depth: int, required: int) -> bool:
    """0 and 1 both confirm at first sight in a block (the watcher does not read the mempool)."""
    return depth >= max(1, required)


# --- reorg detection --------------------------------------------------------------------------

def check_chain(parent_hash: str, blocks: Sequence[dict[str, Any]]) -> bool:
    """Whether ``blocks`` (consecutive, ascending) extend a tip whose hash is ``parent_hash``."""
    expected = parent_hash.lower()
    for block in blocks:
        if str(block["parentHash"]).lower() != expected:
            return False
        expected = str(block["hash"]).lower()
    return True


def common_ancestor(recent: Sequence[tuple[int, str]], canonical: dict[int, str]) -> tuple[int, str] | None:
    """The highest stored (number, hash) that the chain still has at that height; None when the
    reorg is deeper than the stored window."""
    for number, bhash in sorted(recent, reverse=True):
        if canonical.get(number, "").lower() == bhash.lower():
            return number, bhash
    return None


def trim_recent(recent: Iterable[tuple[int, str]], keep: int) -> list[tuple[int, str]]:
    """The last ``keep`` block hashes, ascending, one per height."""
    by_number = {int(n): h for n, h in recent}
    return sorted(by_number.items())[-keep:]
