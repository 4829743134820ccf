"""Payloom's outgoing chain transactions: ONE implementation of the steps every flow that spends
from a key Payloom holds goes through — crypto refunds (ADR 0035), sweeps, gas top-ups and cold
transfers (ADR 0038), treasury withdrawals (ADR 0039).

The steps, as functions over a transaction record (decisions are pure; the I/O is the node
calls ``quote``, ``broadcast*``, ``follow`` and the callers' units of work):

1. **Quote** (``quote``): what sending a transfer from the hot wallet takes now (pending nonce,
   fee cap ``2 × base fee + tip``, gas estimate +25% for contract calls), refusing a wallet
   that cannot pay (``ShortOfFunds``) or a transfer that reverts whatever the balance
   (``Rejected``).
2. **Reserve a nonce** (``Nonces``): ``chain_nonces/{network}:{sender}`` is read and written in
   the very unit that signs, so two signers can never take one nonce (the loser re-runs). The
   nonce is ``max(stored next, the node's pending count)``: a transaction signed but not yet
   broadcast keeps its nonce; one sent by another tool moves the node's count and we follow.
   A hot wallet's document says ``role: "hot_wallet"``: the chain watcher reads it to tell a
   gas top-up (our own ether going to a deposit address) from a payment.
3. **Sign** (``sign``, ``sign_transfer``): EIP-1559, RFC 6979 — a unit that runs twice signs the
   same bytes. The signed bytes are committed on the caller's record BEFORE any broadcast, so a
   crash loses nothing and a record that has signed bytes is never signed anew (paid once).
4. **Broadcast** (``broadcast``, ``broadcast_many``): plain JSON-RPC posts, not ``RpcClient``:
   a node answers "already known" / "nonce too low" with -32003, which the client counts as a
   node failure while here it is the answer to read.
5. **Follow** (``follow`` for one transaction; ``see``/``lost`` for sweeps' batches): the
   receipts of EVERY signing; none mined → the same bytes again; a nonce used by a transaction
   that is not ours → the record fails (funds never move twice).
6. **Replace a stuck transaction** (``due_for_bump``, ``bumped``, ``resign``): unmined after
   ``BUMP_AFTER``, the same nonce with both fees +12.5% (rounded up, never below the market),
   at most ``MAX_BUMPS`` times; every signing is kept and checked.
7. **Book the gas** (``gas_booking``): ``network_fees`` → ``external`` in the native asset, the
   id derived from the record (a replay answers ``exists``), wei rounded down to the ledger's
   gwei and the remainder kept on the record.

The record of one transaction: ``{nonce, sender, to, data, gas, attempts: [{hash, raw, value,
max_fee_per_gas, max_priority_fee_per_gas, signed_at}], bumps, mined}``. Refunds and
withdrawals keep it as their ``chain`` field with the latest (or mined) signing's ``hash`` /
``raw`` also flat: what their resources show, and all a record signed before this module had.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

import requests
from eth_utils import to_checksum_address

from shared.chain import tokens
from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable
from shared.ledger import assets, engine
from shared.ledger import service as ledger
from shared.ledger.accounts import system_template
from shared.ledger.model import TransferSpec
from shared.platform import logs
from shared.platform.ids import derived_id

_log = logs.get_logger(__name__)
NONCES = "chain_nonces"
HOT_WALLET = "hot_wallet"              # the role a hot wallet's nonce document carries
BALANCE_OF = "0x70a08231"
ETH_TRANSFER_GAS = 21_000              # an EOA-to-EOA ether transfer, exactly
BUMP_NUM, BUMP_DEN = 9, 8              # +12.5% per replacement
BUMP_AFTER = dt.timedelta(minutes=3)   # unmined this long: replace
MAX_BUMPS = 6
FEE_CODE = "network_fee"


def rpc_for(deps: Any, network: Any, scope: str = "hot_wallet") -> RpcClient:
    """The network's client for ``scope`` (created once per process; tests inject their own)."""
    return deps.get(f"{scope}.rpc:{network.name}",
                    lambda: RpcClient(network.name, network.rpc_urls))


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(str(value or "0x0"), 16)


# --- the transaction's fields --------------------------------------------------------------
def transaction_fields(dest: dict[str, Any]) -> dict[str, Any]:
    """to / value / data of a transfer of ``dest["amount"]`` base units to ``dest["address"]``
    (``dest["token"]``: an ERC-20 ``transfer`` call, else ether)."""
    amount = int(dest["amount"])
    if dest.get("token"):
        return {"to": to_checksum_address(dest["token"]), "value": 0,
                "data": "0x" + tokens.encode_transfer_call(dest["address"], amount).hex()}
    return {"to": to_checksum_address(dest["address"]), "value": amount, "data": "0x"}


# --- fees -----------------------------------------------------------------------------------
def max_fee(base_fee: int, tip: int) -> int:
    """EIP-1559 fee cap: twice the base fee (survives six full blocks of +12.5%) plus the tip;
    the sender pays only ``base + tip`` per gas."""
    return 2 * base_fee + tip


@dataclasses.dataclass(frozen=True)
class Fees:
    """The fee offer for the next block."""
    base_fee: int
    tip: int

    @property
    def max_fee(self) -> int:
        return max_fee(self.base_fee, self.tip)


def fee_calls() -> list[tuple[str, list[Any]]]:
    """The JSON-RPC calls that price the next block (ride in the caller's batch):
    ``eth_feeHistory`` gives the NEXT block's base fee, ``eth_maxPriorityFeePerGas`` the tip."""
    return [("eth_feeHistory", [hex(1), "latest", [50]]), ("eth_maxPriorityFeePerGas", [])]


def fees_from(history: dict[str, Any] | None, tip: Any) -> Fees:
    """``Fees`` from the answers to ``fee_calls`` (a node without a tip suggestion: the median
    tip of the latest block)."""
    history = history or {}
    bases = history.get("baseFeePerGas") or ["0x0"]
    if tip is None:
        rewards = history.get("reward") or [["0x0"]]
        tip = rewards[-1][0] if rewards and rewards[-1] else "0x0"
    return Fees(base_fee=_int(bases[-1]), tip=_int(tip))


def gas_limit(estimate: int) -> int:
    """The node's estimate, +25% for a contract call (storage refunds and a balance that changes
    before inclusion make the real use differ); an ether transfer uses exactly 21,000."""
    return estimate if estimate == ETH_TRANSFER_GAS else estimate * 5 // 4


def _up(value: int) -> int:
    return -(-int(value) * BUMP_NUM // BUMP_DEN)


def bumped(max_fee_per_gas: int, tip: int, market: Fees) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) of a replacement: both +12.5% at least (Geth and
    most clients refuse under +10%), the market at least, and the cap never below the tip."""
    new_tip = max(_up(tip), market.tip)
    new_max = max(_up(max_fee_per_gas), market.max_fee, new_tip)
    return new_max, new_tip


def fee_paid(receipt: dict[str, Any]) -> int:
    """Wei a mined transaction cost its sender (reverted ones pay too)."""
    return _int(receipt.get("gasUsed")) * _int(receipt.get("effectiveGasPrice"))


# --- 1. quote -------------------------------------------------------------------------------
class ShortOfFunds(Exception):
    """The sender cannot cover the transfer (token, ether or gas)."""


class Rejected(Exception):
    """The transfer reverts whatever the balance (a contract refusing ether, a token refusing
    the receiver): sending it would only burn gas."""


@dataclasses.dataclass(frozen=True)
class Quote:
    pending_count: int
    gas: int
    fee_cap: int
    tip: int


def quote(rpc: RpcClient, sender: str, dest: dict[str, Any]) -> Quote:
    """What sending ``dest`` from ``sender`` takes now: one batch (pending nonce, head, tip,
    balance), a token ``balanceOf`` for tokens, the gas estimate. Raises ``ShortOfFunds``,
    ``Rejected`` or ``RpcUnavailable``."""
    fields = transaction_fields(dest)
    call = {"from": sender, "to": fields["to"], "value": hex(int(fields["value"])),
            "data": fields["data"]}
    count, block, tip, balance = rpc.batch([
        ("eth_getTransactionCount", [sender, "pending"]),
        ("eth_getBlockByNumber", ["latest", False]),
        ("eth_maxPriorityFeePerGas", []),
        ("eth_getBalance", [sender, "pending"])])
    if dest.get("token"):
        raw = rpc.call("eth_call", [{"to": fields["to"], "data": BALANCE_OF + "00" * 12
                                     + sender.lower()[2:]}, "latest"])
        if int(raw, 16) < int(dest["amount"]):
            raise ShortOfFunds("token balance")
    try:
        gas = gas_limit(int(rpc.call("eth_estimateGas", [call]), 16))
    except RpcError as exc:
        text = exc.message.lower()
        if "insufficient" in text or "funds" in text:
            raise ShortOfFunds("gas or value") from None
        raise Rejected(exc.message[:160]) from None
    fee_cap = max_fee(_int(block.get("baseFeePerGas")), _int(tip))
    if int(balance, 16) < int(fields["value"]) + gas * fee_cap:
        raise ShortOfFunds("native balance")
    return Quote(int(count, 16), gas, fee_cap, _int(tip))


# --- 2. nonces ------------------------------------------------------------------------------
def nonce_ref(db, network: str, address: str):
    return db.collection(NONCES).document(f"{network}:{address.lower()}")


def next_nonce(stored: int | None, chain_pending: int) -> int:
    """The nonce to sign with (see the module doc)."""
    return max(int(stored or 0), int(chain_pending))


def is_hot_wallet(doc: dict[str, Any] | None) -> bool:
    """Whether a ``chain_nonces`` document is a hot wallet's (its transactions are ours)."""
    return (doc or {}).get("role") == HOT_WALLET


class Nonces:
    """The nonces one unit of work takes from one hot wallet: ``ref`` is read with the unit's
    first read, ``load`` it with the node's pending count, ``take`` as many as the unit signs,
    ``write`` once before the commit."""

    def __init__(self, db, network: str, address: str):
        self.network, self.address = network, address
        self.ref = nonce_ref(db, network, address)
        self.stored: dict[str, Any] | None = None
        self.first = self.next = 0

    def load(self, snap, chain_pending: int) -> Nonces:
        self.stored = snap.to_dict() if snap.exists else None
        self.first = self.next = next_nonce((self.stored or {}).get("next"), chain_pending)
        return self

    def take(self) -> int:
        nonce, self.next = self.next, self.next + 1
        return nonce

    def write(self, uow) -> None:
        if self.next == self.first:
            return
        (uow.update if self.stored is not None else uow.create)(self.ref, {
            "next": self.next, "network": self.network, "address": self.address,
            "role": HOT_WALLET, "updated_at": uow.now})


# --- 3. sign --------------------------------------------------------------------------------
def sign(tx: dict[str, Any], key: bytes) -> tuple[str, str]:
    """(raw transaction hex, its hash hex) of an EIP-1559 (type 2) transaction. Deterministic
    (RFC 6979): a unit that runs twice signs the same bytes."""
    from eth_account import Account
    signed_tx = Account.sign_transaction({**tx, "type": 2}, key)
    return "0x" + bytes(signed_tx.raw_transaction).hex(), "0x" + bytes(signed_tx.hash).hex()


def signed(tx: dict[str, Any], raw: str, tx_hash: str, now) -> dict[str, Any]:
    """One signing of a transaction (the first, or a replacement with higher fees)."""
    return {"hash": tx_hash, "raw": raw, "value": str(int(tx["value"])),
            "max_fee_per_gas": str(tx["maxFeePerGas"]),
            "max_priority_fee_per_gas": str(tx["maxPriorityFeePerGas"]), "signed_at": now}


def new_record(tx: dict[str, Any], raw: str, tx_hash: str, sender: str, now) -> dict[str, Any]:
    """The record of a transaction to send: its fixed fields and its signings (``attempts``)."""
    return {"nonce": int(tx["nonce"]), "sender": sender, "to": tx["to"], "data": tx["data"],
            "gas": int(tx["gas"]), "attempts": [signed(tx, raw, tx_hash, now)], "bumps": 0,
            "mined": None}


def sign_new(tx: dict[str, Any], key: bytes, sender: str, now) -> dict[str, Any]:
    raw, tx_hash = sign(tx, key)
    return new_record(tx, raw, tx_hash, sender, now)


_FLAT = ("hash", "raw", "max_fee_per_gas", "max_priority_fee_per_gas", "signed_at")


def flat(attempt: dict[str, Any]) -> dict[str, Any]:
    """The fields refunds' and withdrawals' ``chain`` keeps flat (one signing)."""
    return {k: attempt[k] for k in _FLAT if k in attempt}


def attempts(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Every signing of ``out`` (a record signed before ``attempts`` existed: its flat one)."""
    return out.get("attempts") or [flat(out)]


def latest(out: dict[str, Any]) -> dict[str, Any]:
    return attempts(out)[-1]


def hashes(out: dict[str, Any]) -> list[str]:
    return [a["hash"] for a in attempts(out)]


def unsigned(out: dict[str, Any], chain_id: int, attempt: dict[str, Any] | None = None) -> dict[str, Any]:
    """The transaction fields of ``out`` at ``attempt`` (default: the latest), to re-sign."""
    a = attempt or latest(out)
    return {"chainId": chain_id, "nonce": out["nonce"], "to": out["to"], "data": out["data"],
            "gas": out["gas"], "value": int(a["value"]), "maxFeePerGas": int(a["max_fee_per_gas"]),
            "maxPriorityFeePerGas": int(a["max_priority_fee_per_gas"])}


def sign_transfer(network: Any, dest: dict[str, Any], q: Quote, nonce: int, key: bytes,
                  sender: str, now) -> dict[str, Any]:
    """The signed record of a hot-wallet transfer to ``dest`` (refunds, withdrawals): the
    record's fields, the signing flat too, the explorer link and a poll counter."""
    fields = transaction_fields(dest)
    tx = {"chainId": network.chain_id, "nonce": nonce, "to": fields["to"],
          "value": int(fields["value"]), "data": fields["data"], "gas": q.gas,
          "maxFeePerGas": q.fee_cap, "maxPriorityFeePerGas": q.tip}
    out = sign_new(tx, key, sender, now)
    return {**out, **flat(latest(out)), "polls": 0,
            "explorer_url": network.explorer_tx_url(latest(out)["hash"])}


def resign(out: dict[str, Any], key: bytes, chain_id: int, *, value: int, max_fee: int,
           tip: int, now) -> None:
    """Append a replacement signing to ``out`` (same nonce, new value and fees)."""
    tx = {**unsigned(out, chain_id), "value": value, "maxFeePerGas": max_fee,
          "maxPriorityFeePerGas": tip}
    raw, tx_hash = sign(tx, key)
    out["attempts"] = [*attempts(out), signed(tx, raw, tx_hash, now)]
    out["bumps"] = int(out.get("bumps") or 0) + 1


# --- 4. broadcast ---------------------------------------------------------------------------
def classify_broadcast_error(message: str) -> str:
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return "known"
    if "nonce too low" in text or "nonce has already been used" in text:
        return "nonce_used"
    return "error"


def broadcast_many(rpc: RpcClient, raws: list[str]) -> list[str]:
    """Send signed transactions in ONE JSON-RPC batch (a batch's hot-wallet transactions carry
    consecutive nonces: sent together they are mined in one block). One outcome each: "sent",
    "known" (the node has it), "nonce_used" (a transaction with this nonce is mined: ours or
    another), "error", or "unavailable" (no endpoint answered: the poll sends them again). Only
    a transport error or a non-JSON answer moves on to the next endpoint."""
    if not raws:
        return []
    payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
               for i, raw in enumerate(raws)]
    for endpoint in rpc.endpoints:
        try:
            resp = rpc.session.post(endpoint.url, json=payload, timeout=rpc.timeout)
            answer = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            answer = None
        if not isinstance(answer, list):
            continue
        by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
        return [_outcome(rpc.network, by_id.get(i) or {"error": {"message": "no answer"}})
                for i in range(len(raws))]
    return ["unavailable"] * len(raws)


def broadcast(rpc: RpcClient, raw: str) -> str:
    """``broadcast_many`` of one transaction."""
    return broadcast_many(rpc, [raw])[0]


def _outcome(network: str, item: dict[str, Any]) -> str:
    if item.get("error") is None:
        return "sent"
    err = item["error"] if isinstance(item["error"], dict) else {"message": str(item["error"])}
    kind = classify_broadcast_error(str(err.get("message", "")))
    if kind == "error":
        logs.log(_log, 30, "outgoing transaction refused", network=network, code=err.get("code"),
                 reason=str(err.get("message", ""))[:200])
    return kind


# --- 5. follow ------------------------------------------------------------------------------
def mined(attempt: dict[str, Any], receipt: dict[str, Any]) -> dict[str, Any]:
    """What the chain did with the signing ``attempt``."""
    return {"hash": attempt["hash"], "value": attempt.get("value"),
            "block_number": int(receipt["blockNumber"], 16),
            "block_hash": str(receipt.get("blockHash", "")).lower(),
            "status": int(receipt.get("status") or "0x0", 16),
            "gas_used": int(receipt.get("gasUsed") or "0x0", 16),
            "effective_gas_price": str(int(receipt.get("effectiveGasPrice") or "0x0", 16)),
            "fee": str(fee_paid(receipt))}


def first_mined(out: dict[str, Any], receipts: dict[str, dict[str, Any] | None]
                ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the signing, its receipt) of the one that is mined, or None."""
    for attempt in attempts(out):
        receipt = receipts.get(attempt["hash"])
        if receipt:
            return attempt, receipt
    return None


def see(out: dict[str, Any], receipts: dict[str, dict[str, Any] | None]) -> None:
    """Record in ``out["mined"]`` which signing is mined (None again after a reorg)."""
    found = first_mined(out, receipts)
    if found:
        out["mined"] = mined(*found)
    elif out.get("mined"):
        out["mined"] = None


def lost(out: dict[str, Any], latest_count: int) -> bool:
    """Unmined while its sender's mined nonce count is past it: it can never be mined."""
    return not out.get("mined") and int(latest_count) > int(out["nonce"])


def due_for_bump(out: dict[str, Any], now: dt.datetime, *, after: dt.timedelta = BUMP_AFTER,
                 max_bumps: int = MAX_BUMPS) -> bool:
    """Unmined for ``after`` since its latest signing (or broadcast), and bumps left."""
    since = max(t for t in (latest(out).get("signed_at"), out.get("broadcast_at")) if t)
    return int(out.get("bumps") or 0) < max_bumps and now - since >= after


@dataclasses.dataclass(frozen=True)
class BumpPolicy:
    """When a refund's or withdrawal's transaction is replaced: the sweeps' timing by default
    (tests inject ``deps.extras["chain.bump_policy"]``)."""
    after: dt.timedelta = BUMP_AFTER
    max_bumps: int = MAX_BUMPS


def bump_policy(deps: Any) -> BumpPolicy:
    return deps.extras.get("chain.bump_policy") or BumpPolicy()


Change = Callable[[dict[str, Any], dt.datetime], dict[str, Any]]


class Owner(Protocol):
    """The record that holds one transaction (a refund, a withdrawal), for ``follow``."""

    def save(self, change: Change, *, expect_hash: str | None = None) -> dict[str, Any] | None:
        """In one unit: apply ``change`` to the record's ``chain`` if the record still waits for
        its transaction (and its latest signing is ``expect_hash``), schedule the next poll;
        the saved ``chain``, or None when the record moved on."""

    def end(self, ok: bool, reason: str, fields: dict[str, Any]) -> str:
        """In one unit: finish the record (``fields`` merged into ``chain``; gas booked)."""

    def key(self) -> bytes:
        """The sender's key (unsealed only to sign a replacement)."""


def _merge(fields: dict[str, Any]) -> Change:
    return lambda chain, _now: {**chain, **fields}


def _receipts(rpc: RpcClient, hs: list[str]) -> dict[str, Any]:
    try:
        return dict(zip(hs, rpc.batch([("eth_getTransactionReceipt", [h]) for h in hs])))
    except RpcUnavailable:
        return {}


def follow(rpc: RpcClient, network: Any, out: dict[str, Any], owner: Owner, *,
           now: dt.datetime, policy: BumpPolicy) -> str:
    """One poll of a single transaction: the receipts of all its signings and the head in ONE
    batched request. Mined with status 1 and ``required_confirmations`` (at least 1) → ended
    ok; status 0 → ended (``transaction_reverted``); fewer confirmations → saved, polled again.
    Not mined: overdue → replaced (``bumped``), else the same bytes again; the node says the
    nonce is used and still no signing of ours has a receipt → ended (``nonce_replaced``).
    Returns an outcome word."""
    hs = hashes(out)
    try:
        *found_receipts, head = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hs]
                                          + [("eth_blockNumber", [])])
    except RpcUnavailable:
        return _saved(owner.save(_merge({"last_error": "rpc unavailable"})), "pending")
    found = first_mined(out, dict(zip(hs, found_receipts)))
    if found is None:
        if "to" in out and due_for_bump(out, now, after=policy.after, max_bumps=policy.max_bumps):
            return _replace(rpc, network, out, owner)
        outcome = broadcast(rpc, latest(out)["raw"])
        if outcome == "nonce_used":
            found = first_mined(out, _receipts(rpc, hs))
            if found is None:            # another transaction took the nonce: ours never mines
                return owner.end(False, "nonce_replaced", {})
        if found is None:                # (a signing mined before may have been reorged away)
            return _saved(owner.save(_merge({"last_broadcast": outcome, "mined": None})),
                          "pending")
    m = mined(*found)
    fields = {"mined": m, "hash": m["hash"], "raw": found[0]["raw"],
              "block_number": m["block_number"],
              "confirmations": max(0, _int(head) - m["block_number"] + 1),
              "gas_used": m["gas_used"], "effective_gas_price": m["effective_gas_price"],
              "fee": m["fee"]}
    if m["status"] != 1:
        return owner.end(False, "transaction_reverted", fields)
    if fields["confirmations"] < max(1, int(out.get("required_confirmations") or 1)):
        return _saved(owner.save(_merge(fields)), "confirming")
    return owner.end(True, "", fields)


def _saved(chain: dict[str, Any] | None, outcome: str) -> str:
    return outcome if chain is not None else "done"


# --- 6. replace -----------------------------------------------------------------------------
def replaced(out: dict[str, Any], key: bytes, chain_id: int, fees: tuple[int, int],
             now) -> dict[str, Any]:
    """``out`` with a replacement signing (same nonce and value, ``fees`` = (max, tip)) flat."""
    new = copy.deepcopy(out)
    resign(new, key, chain_id, value=int(latest(new)["value"]), max_fee=fees[0], tip=fees[1],
           now=now)
    return {**new, **flat(latest(new))}


def _replace(rpc: RpcClient, network: Any, out: dict[str, Any], owner: Owner) -> str:
    """Bump a stuck transaction the sender pays for (its value unchanged): the market's fees
    (one batch), the re-signing saved in the owner's unit, then the new bytes sent."""
    last = latest(out)
    try:
        market = fees_from(*rpc.batch(fee_calls()))
    except (RpcUnavailable, RpcError):
        return _saved(owner.save(_merge({"last_error": "rpc unavailable"})), "pending")
    fees = bumped(int(last["max_fee_per_gas"]), int(last["max_priority_fee_per_gas"]), market)
    key = owner.key()
    chain = owner.save(lambda current, now: replaced(current, key, network.chain_id, fees, now),
                       expect_hash=last["hash"])
    if chain is None:
        return "done"
    broadcast(rpc, latest(chain)["raw"])
    return "bumped"


# --- 7. the gas in the ledger ---------------------------------------------------------------
def fee_transfer_id(scope: str, record_id: str) -> str:
    return derived_id("txf", scope, FEE_CODE, record_id)


def fee_templates(asset: str, livemode: bool):
    key = "" if livemode else "test"
    return [system_template("network_fees", asset, key), system_template("external", asset, key)]


@dataclasses.dataclass(frozen=True)
class GasBooking:
    """The ledger transfer of a record's gas (``spec`` None below one ledger unit)."""
    spec: TransferSpec | None
    fee_wei: int
    rest: int
    asset: str
    livemode: bool

    def fields(self) -> dict[str, Any]:
        """What the record keeps (the sub-unit remainder is recorded, never invented)."""
        return {"fee": str(self.fee_wei), "fee_unbooked_wei": str(self.rest),
                "fee_transfer": self.spec.id if self.spec is not None else None}

    def prefetch(self, uow) -> None:
        """Read what booking reads with the unit's first read (no round trip of its own)."""
        if self.spec is not None:
            for ref in engine.first_refs(uow.db, [self.spec], fee_templates(self.asset, self.livemode)):
                uow.prefetch(ref)

    def book(self, uow) -> None:
        if self.spec is not None:
            ledger.create_transfers(uow, [self.spec],
                                    templates=fee_templates(self.asset, self.livemode))


def gas_booking(*, scope: str, record_id: str, asset: str, livemode: bool, fee_wei: int,
                description: str, metadata: dict[str, str]) -> GasBooking:
    """``network_fees`` → ``external`` of ``fee_wei`` in ``asset`` (the native asset), rounded
    DOWN to the ledger's scale (ether is held in gwei, fees are wei)."""
    units, rest = divmod(int(fee_wei), assets.get_asset(asset).dust_factor)
    spec = None
    if units > 0:
        fees, external = fee_templates(asset, livemode)
        spec = TransferSpec(id=fee_transfer_id(scope, record_id), debit_account_id=fees.id,
                            credit_account_id=external.id, amount=units, asset=asset,
                            code=FEE_CODE, description=description,
                            metadata={**metadata, "fee_wei": str(int(fee_wei))})
    return GasBooking(spec, int(fee_wei), rest, asset, livemode)


def mined_gas(fields: dict[str, Any], *, scope: str, record_id: str, kind: str, network: Any,
              livemode: bool) -> GasBooking | None:
    """The gas booking of a single transaction ``follow`` found mined (``fields``), or None
    when nothing was mined (nothing was paid)."""
    if fields.get("fee") is None:
        return None
    return gas_booking(scope=scope, record_id=record_id, asset=network.native_asset,
                       livemode=livemode, fee_wei=int(fields["fee"]),
                       description=f"gas of {kind} {record_id}",
                       metadata={kind: record_id, "network": network.name,
                                 "transaction": fields["hash"]})

