"""Withdrawals on chain: the checks before a proposal, then sign once, broadcast, confirm.

The hot wallet (``shared.refunds.hot_wallet``: the custodial seed's ``m/44'/60'/1'/0/0``) pays.
The machinery is the crypto refunds' (ADR 0035), reused rather than copied where it is
generic (``crypto.broadcast``, ``transaction_fields``, ``max_fee``, ``rpc_for``):

1. ``precheck`` (the create route, before its unit): the destination is not the hot wallet;
   the hot wallet holds the amount (and the gas, for ether) on chain now, else 409
   ``insufficient_hot_balance``; ``eth_estimateGas`` of the very transfer from the hot wallet
   does not revert (a contract that refuses ether, a token that refuses the receiver), else 400
   ``destination_rejected``. Nothing is written.
2. ``send`` (task ``/withdrawals/send``, queued by the unit that approved): outside any unit,
   unseal the key and read the node (pending nonce, fee market, balances, gas estimate) again:
   the balance may have moved since the proposal. Short of funds → ``failed``
   (``insufficient_hot_balance``), a reverting transfer → ``failed`` (``destination_rejected``),
   nothing signed, hold voided. Then ONE unit reads the withdrawal and the nonce document
   ``chain_nonces/{network}:{hot address}`` (the document refunds and sweeps reserve from: the
   same read-then-write in one unit, so no two of them can ever sign with one nonce), signs
   with ``max(stored next, node pending count)``, stores the raw bytes on the withdrawal
   (``executing``), writes the next nonce, schedules the first poll. Only after that commit is
   the transaction broadcast; a crash in between loses nothing (the poll sends the SAME bytes).
   A withdrawal that has a signed transaction is never signed again.
3. ``poll`` (task ``/withdrawals/poll``): no receipt → rebroadcast the stored bytes, poll again
   (back-off to a minute); status 1 with the policy's confirmations → ``succeeded`` (hold
   posted); status 0 or the nonce taken by another transaction → ``failed`` (hold voided).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from shared.chain.networks import Network, get_network
from shared.chain.rpc import RpcClient, RpcError, RpcUnavailable
from shared.custody import withdrawals as wd
from shared.custody.withdrawal_models import CreateWithdrawal
from shared.ledger import assets
from shared.platform import logs
from shared.platform.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit
from shared.refunds import crypto, hot_wallet

_log = logs.get_logger(__name__)
ACTOR = "system:custody_tasks"
BALANCE_OF = "0x70a08231"


# --- the proposal's checks ------------------------------------------------------------------
def plan(deps: Any, livemode: bool, body: CreateWithdrawal) -> wd.Plan:
    """Validate what was asked (no chain call): the network is one of this mode, the asset is
    paid on it, the amount converts exactly, the destination is a real, checksummed,
    non-zero address that is not the asset's own contract."""
    network = get_network(deps, body.network)
    if network.livemode != livemode:
        raise InvalidRequest(f"Network {network.name} is not a {'live' if livemode else 'test'} "
                             f"network.", code="network_mode_mismatch", param="network")
    asset = assets.get_asset(body.asset)
    token = network.token_address(asset.code)
    to = check_destination(body.destination, token)
    amount = assets.check_amount(body.amount, asset)
    dest = {"network": network.name, "chain_id": network.chain_id, "asset": asset.code,
            "token": token, "address": to, "amount": assets.to_onchain(amount, asset)}
    return wd.Plan(destination=dest, amount=amount, memo=body.memo)


def check_destination(address: str, token: str | None) -> str:
    if address.lower() == crypto.ZERO:
        raise InvalidRequest("The zero address burns what it receives.", code="invalid_address",
                             param="destination")
    try:
        to = crypto.check_address(address)
    except InvalidRequest as exc:
        exc.param = "destination"
        raise
    if token is not None and to.lower() == token.lower():
        raise InvalidRequest("The token contract cannot receive a withdrawal of its own token.",
                             code="invalid_address", param="destination")
    return to


class ShortOfFunds(Exception):
    """The hot wallet cannot cover the transfer (token, ether or gas)."""


class Rejected(Exception):
    """The transfer reverts whatever the balance."""


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
    fields = crypto.transaction_fields(dest)
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
        gas = int(rpc.call("eth_estimateGas", [call]), 16)
    except RpcError as exc:
        text = exc.message.lower()
        if "insufficient" in text or "funds" in text:
            raise ShortOfFunds("gas or value") from None
        raise Rejected(exc.message[:160]) from None
    gas = gas if gas == 21_000 else gas * 5 // 4
    tip = int(tip, 16)
    fee_cap = crypto.max_fee(int(block.get("baseFeePerGas") or "0x0", 16), tip)
    if int(balance, 16) < int(fields["value"]) + gas * fee_cap:
        raise ShortOfFunds("native balance")
    return Quote(int(count, 16), gas, fee_cap, tip)


def _rpc(deps: Any, name: str) -> tuple[Network, RpcClient]:
    network = get_network(deps, name)
    return network, crypto.rpc_for(deps, network)


def _hot(deps: Any, livemode: bool):
    from shared.chain import hd
    try:
        return hot_wallet.hot_key(deps, livemode=livemode)
    except hd.CustodySeedMissing:
        raise ServiceUnavailable("The hot wallet is not provisioned.",
                                 code="custody_unavailable") from None


def precheck(deps: Any, livemode: bool, proposal: wd.Plan) -> None:
    """The proposal against the chain now (see the module doc). Nothing is written."""
    dest = proposal.destination
    hot = _hot(deps, livemode).address
    if dest["address"].lower() == hot.lower():
        raise InvalidRequest("The hot wallet cannot withdraw to itself.", code="invalid_address",
                             param="destination")
    _, rpc = _rpc(deps, dest["network"])
    try:
        quote(rpc, hot, dest)
    except ShortOfFunds as exc:
        raise Conflict(f"The hot wallet does not hold enough on chain for this withdrawal "
                       f"({exc}).", code="insufficient_hot_balance", param="amount") from None
    except Rejected:
        raise InvalidRequest("The destination refuses this transfer (the transaction would "
                             "revert).", code="destination_rejected", param="destination") from None
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None


# --- 2. send --------------------------------------------------------------------------------
def _load(deps: Any, withdrawal_id: str) -> dict[str, Any] | None:
    snap = wd.withdrawal_ref(deps.db, withdrawal_id).get()
    return snap.to_dict() if snap.exists else None


def send(deps: Any, withdrawal_id: str) -> str:
    """Sign once, store, broadcast. Returns an outcome word."""
    doc = _load(deps, withdrawal_id)
    if doc is None:
        return "missing"
    chain = doc.get("chain") or {}
    if doc["status"] == wd.EXECUTING and chain.get("raw"):
        crypto.broadcast(_rpc(deps, doc["destination"]["network"])[1], chain["raw"])
        return "rebroadcast"
    if doc["status"] != wd.APPROVED:
        return "done"
    network, rpc = _rpc(deps, doc["destination"]["network"])
    hot = _hot(deps, doc["livemode"])
    try:
        q = quote(rpc, hot.address, doc["destination"])
    except ShortOfFunds as exc:
        return _fail_unsigned(deps, withdrawal_id, "insufficient_hot_balance", f"short: {exc}",
                              livemode=doc["livemode"], asset=doc["destination"]["asset"])
    except Rejected as exc:
        return _fail_unsigned(deps, withdrawal_id, "destination_rejected", f"estimate: {exc}",
                              livemode=doc["livemode"], asset=doc["destination"]["asset"])
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None
    fields = crypto.transaction_fields(doc["destination"])
    wref = wd.withdrawal_ref(deps.db, withdrawal_id)
    nref = hot_wallet.nonce_ref(deps.db, network.name, hot.address)

    def claim(uow) -> dict[str, Any]:
        wd.prefetch(uow, doc["livemode"])
        snaps = uow.get_all([wref, nref])
        current = snaps[wref.path].to_dict()
        if current["status"] != wd.APPROVED or (current.get("chain") or {}).get("raw"):
            return current
        stored = snaps[nref.path].to_dict() if snaps[nref.path].exists else None
        nonce = hot_wallet.next_nonce(stored and stored.get("next"), q.pending_count)
        tx = {"chainId": network.chain_id, "nonce": nonce, "to": fields["to"],
              "value": int(fields["value"]), "data": fields["data"], "gas": q.gas,
              "maxFeePerGas": q.fee_cap, "maxPriorityFeePerGas": q.tip}
        raw, tx_hash = hot_wallet.sign(tx, hot.key)
        (uow.update if stored is not None else uow.create)(nref, {
            "next": nonce + 1, "network": network.name, "address": hot.address,
            "updated_at": uow.now})
        signed = {**(current.get("chain") or {}), "hash": tx_hash, "raw": raw, "nonce": nonce,
                  "sender": hot.address, "gas": q.gas, "max_fee_per_gas": str(q.fee_cap),
                  "max_priority_fee_per_gas": str(q.tip), "signed_at": uow.now, "polls": 0,
                  "explorer_url": network.explorer_tx_url(tx_hash)}
        changes = {"status": wd.EXECUTING, "executed_at": uow.now, "chain": signed,
                   "updated_at": uow.now}
        uow.update(wref, changes)
        current = {**current, **changes}
        wd.record(uow, current, "withdrawal.executed", ACTOR, transaction=tx_hash, nonce=nonce,
                  sender=hot.address)
        wd.emit(uow, current, "executed")
        _schedule_poll(uow, network, withdrawal_id, 0)
        return current

    claimed = run_unit(deps, claim)
    if claimed["status"] == wd.EXECUTING and (claimed.get("chain") or {}).get("raw"):
        crypto.broadcast(rpc, claimed["chain"]["raw"])
        return "sent"
    return "done"


def _schedule_poll(uow, network: Network, withdrawal_id: str, polls: int) -> None:
    step = max(1.0, network.block_time_seconds)
    delay = min(crypto.MAX_POLL_DELAY_S, step * min(max(polls, 1), 30))
    uow.schedule_task(queue=wd.TASK_QUEUE, function=wd.TASK_FUNCTION, path=wd.POLL_PATH,
                      body={"withdrawal_id": withdrawal_id},
                      schedule_time=uow.now + dt.timedelta(seconds=delay),
                      name=task_name("custody-wd-poll", uow.deps.settings.project_id,
                                     withdrawal_id, str(polls)))


def _fail_unsigned(deps: Any, withdrawal_id: str, reason: str, detail: str, *, livemode: bool,
                   asset: str) -> str:
    """Fail an approved withdrawal before anything was signed (a concurrent send that signed
    wins: its poll decides)."""
    logs.log(_log, 30, "custody withdrawal cannot be sent", withdrawal=withdrawal_id,
             reason=reason)

    def unit(uow) -> str:
        wd.prefetch(uow, livemode, withdrawal_id, asset)
        ref, doc = wd.load(uow, withdrawal_id)
        if doc["status"] != wd.APPROVED or (doc.get("chain") or {}).get("raw"):
            return "done"
        chain = {**(doc.get("chain") or {}), "last_error": detail[:200]}
        wd.close(uow, ref, doc, wd.FAILED, reason, ACTOR, extra={"chain": chain})
        return "failed"

    return run_unit(deps, unit)


# --- 3. poll --------------------------------------------------------------------------------
def poll(deps: Any, withdrawal_id: str) -> str:
    """Follow the transaction to its confirmations."""
    doc = _load(deps, withdrawal_id)
    if doc is None:
        return "missing"
    if doc["status"] == wd.APPROVED:
        return send(deps, withdrawal_id)
    if doc["status"] != wd.EXECUTING:
        return "done"
    chain = doc["chain"]
    network, rpc = _rpc(deps, doc["destination"]["network"])
    try:
        receipt, head = rpc.batch([("eth_getTransactionReceipt", [chain["hash"]]),
                                   ("eth_blockNumber", [])])
    except RpcUnavailable:
        return _again(deps, withdrawal_id, network, {"last_error": "rpc unavailable"})
    if receipt is None:
        outcome = crypto.broadcast(rpc, chain["raw"])
        if outcome == "nonce_used":
            try:
                receipt = rpc.call("eth_getTransactionReceipt", [chain["hash"]])
            except RpcUnavailable:
                receipt = None
            if receipt is None:       # another transaction took the nonce: ours never mines
                return _end(deps, doc, ok=False, reason="nonce_replaced", fields={})
        if receipt is None:
            return _again(deps, withdrawal_id, network, {"last_broadcast": outcome})
    block = int(receipt["blockNumber"], 16)
    mined = {"block_number": block, "confirmations": max(0, int(head, 16) - block + 1),
             "gas_used": int(receipt.get("gasUsed") or "0x0", 16),
             "effective_gas_price": str(int(receipt.get("effectiveGasPrice") or "0x0", 16))}
    if int(receipt.get("status") or "0x0", 16) != 1:
        return _end(deps, doc, ok=False, reason="transaction_reverted", fields=mined)
    if mined["confirmations"] < int(chain.get("required_confirmations") or 1):
        return _again(deps, withdrawal_id, network, mined, outcome="confirming")
    return _end(deps, doc, ok=True, reason=None, fields=mined)


def _again(deps: Any, withdrawal_id: str, network: Network, fields: dict[str, Any], *,
           outcome: str = "pending") -> str:
    def unit(uow) -> str:
        ref, doc = wd.load(uow, withdrawal_id)
        if doc["status"] != wd.EXECUTING:
            return "done"
        chain = {**doc["chain"], **fields, "polls": int(doc["chain"].get("polls") or 0) + 1}
        uow.update(ref, {"chain": chain, "updated_at": uow.now})
        _schedule_poll(uow, network, withdrawal_id, chain["polls"])
        return outcome

    return run_unit(deps, unit)


def _end(deps: Any, doc: dict[str, Any], *, ok: bool, reason: str | None,
         fields: dict[str, Any]) -> str:
    withdrawal_id = doc["id"]

    def unit(uow) -> str:
        wd.prefetch(uow, doc["livemode"], withdrawal_id, doc["destination"]["asset"])
        ref, doc_now = wd.load(uow, withdrawal_id)
        if doc_now["status"] != wd.EXECUTING:
            return "done"
        chain = {**doc_now["chain"], **fields}
        wd.close(uow, ref, doc_now, wd.SUCCEEDED if ok else wd.FAILED, reason, ACTOR,
                 extra={"chain": chain})
        return "succeeded" if ok else "failed"

    return run_unit(deps, unit)
