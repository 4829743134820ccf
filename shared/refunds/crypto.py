"""Crypto refunds: signed by the hot wallet, broadcast once, tracked to confirmation.

Flow (Cloud Tasks on queue ``payments``, function ``refunds_tasks``; every step reloads the
refund and acts only if it still expects to, so a duplicate delivery is a no-op):

1. ``/crypto/send`` (scheduled by the create unit): outside any unit, unseal the hot key, read
   the node's pending nonce, the fee market and the hot wallet's balances; then ONE unit claims:
   it reads the refund and the nonce document, signs the EIP-1559 transaction (deterministic
   signature) with ``max(stored, node)`` as nonce, and writes the signed bytes and hash ON THE
   REFUND together with the next nonce, and schedules the first ``/crypto/poll``. Only then is
   the transaction broadcast (``eth_sendRawTransaction``). A crash after the commit loses
   nothing: the poll rebroadcasts the SAME bytes. A refund that has a signed transaction is never
   signed again, so it can never be paid twice.
2. ``/crypto/poll``: the receipt. None yet: rebroadcast the stored bytes ("already known" is
   fine), poll again later. Mined with status 1 and the intent's required confirmations (at
   least 1): ``service.complete`` posts the holds (merchant settlement and fee shares →
   ``external``) and emits ``refund.succeeded``. Reverted (status 0), or the nonce was taken by
   another transaction and ours never mined: ``service.fail`` voids the holds, the amount is
   refundable again, ``refund.failed``.
3. The hot wallet cannot pay (balance or gas): the send is retried every minute; after
   ``SEND_DEADLINE`` the refund fails with ``hot_wallet_underfunded`` (nothing left). A transfer
   that would revert whatever the balance (``eth_estimateGas`` reverts: a contract refusing
   ETH, a token refusing the receiver) fails at once with ``destination_rejected``.

Gas is paid by the hot wallet (the platform) and recorded on the refund (``gas_used``); it is
not booked in the ledger yet (ADR 0035, open points).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import requests
from eth_utils import is_address, is_checksum_address, to_checksum_address

from shared.chain import tokens
from shared.chain.networks import Network, get_network
from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable
from shared.ledger import assets
from shared.platform import logs
from shared.platform.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit
from shared.refunds import hot_wallet, service

_log = logs.get_logger(__name__)
SEND_RETRY = dt.timedelta(seconds=60)
SEND_DEADLINE = dt.timedelta(hours=24)
MAX_POLL_DELAY_S = 60
ZERO = "0x" + "00" * 20


# --- destination (pure but for the network lookup) ------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Destination:
    network: Network
    asset: str
    token: str | None
    address: str
    confirmations: int

    def wire(self, ledger_units: int) -> dict[str, Any]:
        return {"network": self.network.name, "chain_id": self.network.chain_id,
                "asset": self.asset, "token": self.token, "address": self.address,
                "amount": assets.to_onchain(ledger_units, self.asset)}


def check_address(address: str | None) -> str:
    """The payer's address, checksummed; 400 when missing, malformed, a wrong EIP-55 checksum
    (mixed case that does not verify: a typo) or the zero address (burns the money)."""
    if address is None:
        raise InvalidRequest("A crypto refund needs the payer's address to send it to.",
                             code="address_required", param="address")
    if not is_address(address) or (address[2:] != address[2:].lower() and
                                    address[2:] != address[2:].upper() and
                                    not is_checksum_address(address)):
        raise InvalidRequest("Not a valid address (bad format or EIP-55 checksum).",
                             code="invalid_address", param="address")
    if address.lower() == ZERO:
        raise InvalidRequest("The zero address cannot receive a refund.", code="invalid_address",
                             param="address")
    return to_checksum_address(address)


def destination(deps: Any, intent: dict[str, Any], address: str | None) -> Destination:
    crypto = intent.get("crypto") or {}
    if not crypto.get("network"):
        raise Conflict("This payment intent has no crypto payment to refund.",
                       code="intent_not_refundable")
    to = check_address(address)
    network = get_network(deps, crypto["network"])
    if network.livemode != intent["livemode"]:
        raise Conflict("The intent's network is not in the intent's mode.",
                       code="network_mode_mismatch")
    token = network.token_address(crypto["asset"])
    if token is not None and to.lower() == token.lower():
        raise InvalidRequest("The token contract cannot receive a refund.",
                             code="invalid_address", param="address")
    return Destination(network, crypto["asset"], token, to,
                       max(1, int(intent.get("required_confirmations") or 1)))


def transaction_fields(dest: dict[str, Any]) -> dict[str, Any]:
    """to / value / data of the refund transaction (pure)."""
    amount = int(dest["amount"])
    if dest.get("token"):
        return {"to": to_checksum_address(dest["token"]), "value": 0,
                "data": "0x" + tokens.encode_transfer_call(dest["address"], amount).hex()}
    return {"to": to_checksum_address(dest["address"]), "value": amount, "data": "0x"}


def max_fee(base_fee: int, tip: int) -> int:
    """EIP-1559 fee cap: twice the base fee (survives six full blocks of +12.5%) plus the tip."""
    return 2 * base_fee + tip


def classify_broadcast_error(message: str) -> str:
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return "known"
    if "nonce too low" in text or "nonce has already been used" in text:
        return "nonce_used"
    return "error"


def rpc_for(deps: Any, network: Network) -> RpcClient:
    return deps.get(f"refunds.rpc:{network.name}",
                    lambda: RpcClient(network.name, network.rpc_urls))


def _hex(n: int) -> str:
    return hex(int(n))


# --- 1. send ------------------------------------------------------------------------------------
def _load(deps: Any, refund_id: str) -> dict[str, Any] | None:
    snap = service.refund_ref(deps.db, refund_id).get()
    return snap.to_dict() if snap.exists else None


def send(deps: Any, refund_id: str) -> str:
    """Sign once, store, broadcast (see the module doc). Returns an outcome word."""
    from shared.chain import hd
    doc = _load(deps, refund_id)
    if doc is None or doc["method"] != "crypto":
        return "missing"
    if doc["status"] != service.PENDING:
        return "done"
    network = get_network(deps, doc["destination"]["network"])
    rpc = rpc_for(deps, network)
    if (doc.get("chain") or {}).get("raw"):
        broadcast(rpc, doc["chain"]["raw"])
        return "rebroadcast"
    try:
        hot = hot_wallet.hot_key(deps, livemode=doc["livemode"])
    except hd.CustodySeedMissing:
        raise ServiceUnavailable("The hot wallet is not provisioned.",
                                 code="custody_unavailable") from None
    fields = transaction_fields(doc["destination"])
    call = {"from": hot.address, "to": fields["to"], "value": _hex(fields["value"]),
            "data": fields["data"]}
    try:
        count, block, tip, balance = rpc.batch([
            ("eth_getTransactionCount", [hot.address, "pending"]),
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
            ("eth_getBalance", [hot.address, "pending"])])
        token_balance = None
        if doc["destination"].get("token"):
            raw = rpc.call("eth_call", [{"to": fields["to"], "data": "0x70a08231" + "00" * 12
                                         + hot.address.lower()[2:]}, "latest"])
            token_balance = int(raw, 16)
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None
    tip = int(tip, 16)
    fee_cap = max_fee(int(block.get("baseFeePerGas") or "0x0", 16), tip)
    need_token = int(doc["destination"]["amount"]) if token_balance is not None else 0
    if token_balance is not None and token_balance < need_token:
        return _underfunded(deps, refund_id, "token balance")
    try:
        gas = int(rpc.call("eth_estimateGas", [call]), 16)
    except RpcError as exc:
        if "insufficient" in exc.message.lower() or "funds" in exc.message.lower():
            return _underfunded(deps, refund_id, "gas")
        # the transfer itself reverts (a contract refusing ETH, a token refusing the receiver):
        # sending would only burn gas; fail now, nothing signed, the amount is refundable again
        return _end(deps, refund_id, ok=False, reason="destination_rejected", chain_fields={
            "last_error": f"estimate: {exc.message[:160]}"}, unsigned_only=True)
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None
    gas = gas if gas == 21_000 else gas * 5 // 4
    if int(balance, 16) < int(fields["value"]) + gas * fee_cap:
        return _underfunded(deps, refund_id, "native balance")
    nref = hot_wallet.nonce_ref(deps.db, network.name, hot.address)
    rref = service.refund_ref(deps.db, refund_id)
    project = deps.settings.project_id

    def claim(uow) -> dict[str, Any]:
        snaps = uow.get_all([rref, nref])
        current = snaps[rref.path].to_dict()
        if current["status"] != service.PENDING or (current.get("chain") or {}).get("raw"):
            return current
        stored = snaps[nref.path].to_dict() if snaps[nref.path].exists else None
        nonce = hot_wallet.next_nonce(stored and stored.get("next"), int(count, 16))
        tx = {"chainId": network.chain_id, "nonce": nonce, "to": fields["to"],
              "value": int(fields["value"]), "data": fields["data"], "gas": gas,
              "maxFeePerGas": fee_cap, "maxPriorityFeePerGas": tip}
        raw, tx_hash = hot_wallet.sign(tx, hot.key)
        record = {"next": nonce + 1, "network": network.name, "address": hot.address,
                  "updated_at": uow.now}
        (uow.update if stored is not None else uow.create)(nref, record)
        chain = {**(current.get("chain") or {}), "hash": tx_hash, "raw": raw, "nonce": nonce,
                 "sender": hot.address, "gas": gas, "max_fee_per_gas": str(fee_cap),
                 "max_priority_fee_per_gas": str(tip), "signed_at": uow.now, "polls": 0,
                 "explorer_url": network.explorer_tx_url(tx_hash)}
        uow.update(rref, {"chain": chain, "updated_at": uow.now})
        uow.schedule_task(queue=service.TASK_QUEUE, function=service.TASK_FUNCTION,
                          path=service.CRYPTO_POLL_PATH, body={"refund_id": refund_id},
                          schedule_time=uow.now + dt.timedelta(seconds=network.block_time_seconds),
                          name=task_name("refund-poll", project, refund_id, "0"))
        return {**current, "chain": chain}

    claimed = run_unit(deps, claim)
    chain = claimed.get("chain") or {}
    if claimed["status"] == service.PENDING and chain.get("raw"):
        broadcast(rpc, chain["raw"])
        return "sent"
    return "done"


def broadcast(rpc: RpcClient, raw: str) -> str:
    """Send the signed bytes; "sent", "known" (the node has it), "nonce_used" (a transaction
    with this nonce is mined: ours, or another), "error" or "unavailable" (the poll retries).

    Sent over plain JSON-RPC to each endpoint in turn rather than through ``RpcClient.call``:
    nodes answer a rejected transaction ("nonce too low", "already known") with -32003, which
    the client counts as a node failure (it benches the endpoint and fails over), while for a
    broadcast it is the answer we need to read. Only transport errors and non-JSON answers move
    on to the next endpoint."""
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]}
    for endpoint in rpc.endpoints:
        try:
            resp = rpc.session.post(endpoint.url, json=payload, timeout=rpc.timeout)
            answer = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            answer = None
        if not isinstance(answer, dict):
            continue
        if answer.get("error") is None:
            return "sent"
        err = answer["error"] if isinstance(answer["error"], dict) else {"message": str(answer["error"])}
        message = str(err.get("message", ""))
        kind = classify_broadcast_error(message)
        if kind == "error":
            logs.log(_log, 30, "refund broadcast refused", network=rpc.network,
                     code=err.get("code"), reason=message[:200])
        return kind
    return "unavailable"


def _underfunded(deps: Any, refund_id: str, why: str) -> str:
    """Retry the send in a minute; fail the refund after ``SEND_DEADLINE`` (nothing left)."""
    logs.log(_log, 30, "hot wallet cannot pay a refund", refund=refund_id, why=why)
    project = deps.settings.project_id

    def unit(uow) -> str:
        ref, doc = service.load_for_update(uow, refund_id)
        if doc is None or doc["status"] != service.PENDING or (doc.get("chain") or {}).get("raw"):
            return "done"
        if uow.now - doc["created_at"] >= SEND_DEADLINE:
            service.fail(uow, ref, doc, "hot_wallet_underfunded")
            return "failed"
        chain = dict(doc.get("chain") or {})
        chain["send_attempts"] = int(chain.get("send_attempts") or 0) + 1
        chain["last_error"] = f"hot wallet underfunded ({why})"
        uow.update(ref, {"chain": chain, "updated_at": uow.now})
        uow.schedule_task(queue=service.TASK_QUEUE, function=service.TASK_FUNCTION,
                          path=service.CRYPTO_SEND_PATH, body={"refund_id": refund_id},
                          schedule_time=uow.now + SEND_RETRY,
                          name=task_name("refund-send", project, refund_id,
                                         str(chain["send_attempts"])))
        return "underfunded"

    return run_unit(deps, unit)


# --- 2. poll ------------------------------------------------------------------------------------
def poll(deps: Any, refund_id: str) -> str:
    """Follow the transaction to its confirmations (see the module doc)."""
    doc = _load(deps, refund_id)
    if doc is None or doc["method"] != "crypto":
        return "missing"
    if doc["status"] != service.PENDING:
        return "done"
    chain = doc.get("chain") or {}
    if not chain.get("raw"):
        return send(deps, refund_id)
    network = get_network(deps, doc["destination"]["network"])
    rpc = rpc_for(deps, network)
    try:
        receipt, head = rpc.batch([("eth_getTransactionReceipt", [chain["hash"]]),
                                   ("eth_blockNumber", [])])
    except RpcUnavailable:
        return _again(deps, refund_id, network, {"last_error": "rpc unavailable"})
    if receipt is None:
        outcome = broadcast(rpc, chain["raw"])
        if outcome == "nonce_used":
            try:
                receipt = rpc.call("eth_getTransactionReceipt", [chain["hash"]])
            except RpcUnavailable:
                receipt = None
            if receipt is None:       # another transaction took the nonce: ours never mines
                return _end(deps, refund_id, ok=False, reason="nonce_replaced", chain_fields={})
        if receipt is None:
            return _again(deps, refund_id, network, {"last_broadcast": outcome})
    block = int(receipt["blockNumber"], 16)
    confirmations = max(0, int(head, 16) - block + 1)
    mined = {"block_number": block, "confirmations": confirmations,
             "gas_used": int(receipt.get("gasUsed") or "0x0", 16),
             "effective_gas_price": str(int(receipt.get("effectiveGasPrice") or "0x0", 16))}
    if int(receipt.get("status") or "0x0", 16) != 1:
        return _end(deps, refund_id, ok=False, reason="transaction_reverted", chain_fields=mined)
    if confirmations < int(chain.get("required_confirmations") or 1):
        return _again(deps, refund_id, network, mined, outcome="confirming")
    return _end(deps, refund_id, ok=True, reason="", chain_fields=mined)


def _again(deps: Any, refund_id: str, network: Network, chain_fields: dict[str, Any], *,
           outcome: str = "pending") -> str:
    """Record what was seen and schedule the next poll (a named task per poll number)."""
    project = deps.settings.project_id

    def unit(uow) -> str:
        ref, doc = service.load_for_update(uow, refund_id)
        if doc is None or doc["status"] != service.PENDING:
            return "done"
        chain = {**(doc.get("chain") or {}), **chain_fields}
        chain["polls"] = int(chain.get("polls") or 0) + 1
        delay = min(MAX_POLL_DELAY_S, max(1.0, network.block_time_seconds) * min(chain["polls"], 30))
        uow.update(ref, {"chain": chain, "updated_at": uow.now})
        uow.schedule_task(queue=service.TASK_QUEUE, function=service.TASK_FUNCTION,
                          path=service.CRYPTO_POLL_PATH, body={"refund_id": refund_id},
                          schedule_time=uow.now + dt.timedelta(seconds=delay),
                          name=task_name("refund-poll", project, refund_id, str(chain["polls"])))
        return outcome

    return run_unit(deps, unit)


def _end(deps: Any, refund_id: str, *, ok: bool, reason: str, chain_fields: dict[str, Any],
         unsigned_only: bool = False) -> str:
    """Finish the refund in one unit (``complete`` or ``fail``). ``unsigned_only``: only if no
    transaction was signed meanwhile (a concurrent send that signed wins: its poll decides)."""
    def unit(uow) -> str:
        ref, doc = service.load_for_update(uow, refund_id)
        if doc is None or doc["status"] != service.PENDING:
            return "done"
        if unsigned_only and (doc.get("chain") or {}).get("raw"):
            return "done"
        chain = {**(doc.get("chain") or {}), **chain_fields}
        if ok:
            service.complete(uow, ref, doc, chain=chain)
            return "succeeded"
        service.fail(uow, ref, doc, reason, chain=chain)
        return "failed"

    return run_unit(deps, unit)
