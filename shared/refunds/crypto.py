"""Crypto refunds: signed by the hot wallet, broadcast once, tracked to confirmation.

Flow (Cloud Tasks on queue ``payments``, function ``refunds_tasks``; every step reloads the
refund and acts only if it still expects to, so a duplicate delivery is a no-op). The chain
steps are ``shared.chain.outgoing``'s (shared with sweeps and withdrawals); this module says what
they mean for a refund:

1. ``/crypto/send`` (scheduled by the create unit): outside any unit, unseal the hot key and
   ``outgoing.quote`` the transfer (pending nonce, fee market, balances, gas); then ONE unit
   claims: it reads the refund and the hot wallet's nonce document, signs (deterministic
   signature) with ``max(stored, node)`` as nonce, and writes the signed bytes and hash ON THE
   REFUND together with the next nonce, and schedules the first ``/crypto/poll``. Only then is
   the transaction broadcast. A crash after the commit loses nothing: the poll rebroadcasts the
   SAME bytes. A refund that has a signed transaction is never signed again, so it can never
   be paid twice.
2. ``/crypto/poll`` (``outgoing.follow``): the receipts of every signing. None yet: the stored
   bytes again ("already known" is fine), or, unmined after the sweeps' ``bump_after``, a
   replacement with +12.5% fees and the same nonce (the hot wallet pays the difference); poll
   again later. Mined with status 1 and the intent's required confirmations (at least 1):
   ``service.complete`` posts the holds (merchant settlement and fee shares → ``external``) and
   emits ``refund.succeeded``. Reverted (status 0), or the nonce was taken by another
   transaction and none of ours mined: ``service.fail`` voids the holds, the amount is
   refundable again, ``refund.failed``.
3. The hot wallet cannot pay (balance or gas): the send is retried every minute; after
   ``SEND_DEADLINE`` the refund fails with ``hot_wallet_underfunded`` (nothing left). A transfer
   that would revert whatever the balance (``eth_estimateGas`` reverts: a contract refusing
   ETH, a token refusing the receiver) fails at once with ``destination_rejected``.

Gas is paid by the hot wallet (the platform). The unit that ends a refund whose transaction was
mined (succeeded or reverted: both pay) books it as sweeps do: ``network_fees`` → ``external``
in the native asset, id derived from the refund, the sub-gwei rest kept on ``chain``
(``fee``, ``fee_unbooked_wei``, ``fee_transfer``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from eth_utils import is_address, is_checksum_address, to_checksum_address

from shared.chain import outgoing
from shared.chain.networks import Network, get_network
from shared.chain.outgoing import (  # noqa: F401  (re-exported: the refund's transaction rules)
    classify_broadcast_error,
    max_fee,
    transaction_fields,
)
from shared.chain.rpc import RpcClient, RpcUnavailable
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
GAS_SCOPE = "refunds"          # the gas transfer's id: derived from ("refunds", refund id)


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


def rpc_for(deps: Any, network: Network) -> RpcClient:
    return outgoing.rpc_for(deps, network)


def hot(deps: Any, livemode: bool) -> hot_wallet.HotKey:
    """The mode's hot key; 503 while the custodial seed is not provisioned."""
    from shared.chain import hd
    try:
        return hot_wallet.hot_key(deps, livemode=livemode)
    except hd.CustodySeedMissing:
        raise ServiceUnavailable("The hot wallet is not provisioned.",
                                 code="custody_unavailable") from None


# --- 1. send ------------------------------------------------------------------------------------
def _load(deps: Any, refund_id: str) -> dict[str, Any] | None:
    snap = service.refund_ref(deps.db, refund_id).get()
    return snap.to_dict() if snap.exists else None


def send(deps: Any, refund_id: str) -> str:
    """Sign once, store, broadcast (see the module doc). Returns an outcome word."""
    doc = _load(deps, refund_id)
    if doc is None or doc["method"] != "crypto":
        return "missing"
    if doc["status"] != service.PENDING:
        return "done"
    network = get_network(deps, doc["destination"]["network"])
    rpc = rpc_for(deps, network)
    if (doc.get("chain") or {}).get("raw"):
        outgoing.broadcast(rpc, doc["chain"]["raw"])
        return "rebroadcast"
    key = hot(deps, doc["livemode"])
    try:
        q = outgoing.quote(rpc, key.address, doc["destination"])
    except outgoing.ShortOfFunds as exc:
        return _underfunded(deps, refund_id, str(exc))
    except outgoing.Rejected as exc:
        # the transfer itself reverts (a contract refusing ETH, a token refusing the receiver):
        # sending would only burn gas; fail now, nothing signed, the amount is refundable again
        return _end(deps, refund_id, ok=False, reason="destination_rejected", chain_fields={
            "last_error": f"estimate: {exc}"}, unsigned_only=True)
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None
    nonces = outgoing.Nonces(deps.db, network.name, key.address)
    rref = service.refund_ref(deps.db, refund_id)
    project = deps.settings.project_id

    def claim(uow) -> dict[str, Any]:
        snaps = uow.get_all([rref, nonces.ref])
        current = snaps[rref.path].to_dict()
        if current["status"] != service.PENDING or (current.get("chain") or {}).get("raw"):
            return current
        nonces.load(snaps[nonces.ref.path], q.pending_count)
        chain = {**(current.get("chain") or {}), **outgoing.sign_transfer(
            network, current["destination"], q, nonces.take(), key.key, key.address, uow.now)}
        nonces.write(uow)
        uow.update(rref, {"chain": chain, "updated_at": uow.now})
        uow.schedule_task(queue=service.TASK_QUEUE, function=service.TASK_FUNCTION,
                          path=service.CRYPTO_POLL_PATH, body={"refund_id": refund_id},
                          schedule_time=uow.now + dt.timedelta(seconds=network.block_time_seconds),
                          name=task_name("refund-poll", project, refund_id, "0"))
        return {**current, "chain": chain}

    claimed = run_unit(deps, claim)
    chain = claimed.get("chain") or {}
    if claimed["status"] == service.PENDING and chain.get("raw"):
        outgoing.broadcast(rpc, chain["raw"])
        return "sent"
    return "done"


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
    return outgoing.follow(rpc_for(deps, network), network, chain, _Owner(deps, doc, network),
                           now=deps.clock.now(), policy=outgoing.bump_policy(deps))


class _Owner:
    """A pending refund as the owner of its transaction (``outgoing.Owner``)."""

    def __init__(self, deps: Any, doc: dict[str, Any], network: Network):
        self.deps, self.doc, self.network = deps, doc, network

    def save(self, change: outgoing.Change, *, expect_hash: str | None = None):
        return _next_poll(self.deps, self.doc["id"], self.network, change, expect_hash)

    def end(self, ok: bool, reason: str, fields: dict[str, Any]) -> str:
        gas = outgoing.mined_gas(fields, scope=GAS_SCOPE, record_id=self.doc["id"], kind="refund",
                                 network=self.network, livemode=self.doc["livemode"])
        return _end(self.deps, self.doc["id"], ok=ok, reason=reason, chain_fields=fields, gas=gas)

    def key(self) -> bytes:
        return hot(self.deps, self.doc["livemode"]).key


def _next_poll(deps: Any, refund_id: str, network: Network, change: outgoing.Change,
               expect_hash: str | None) -> dict[str, Any] | None:
    """Record what was seen (``change``) and schedule the next poll (a named task per poll
    number, back-off up to a minute). None when the refund moved on."""
    project = deps.settings.project_id

    def unit(uow) -> dict[str, Any] | None:
        ref, doc = service.load_for_update(uow, refund_id)
        if doc is None or doc["status"] != service.PENDING:
            return None
        chain = doc.get("chain") or {}
        if expect_hash is not None and outgoing.latest(chain)["hash"] != expect_hash:
            return None                       # a concurrent poll replaced it already
        chain = change(chain, uow.now)
        chain["polls"] = int(chain.get("polls") or 0) + 1
        delay = min(MAX_POLL_DELAY_S, max(1.0, network.block_time_seconds) * min(chain["polls"], 30))
        uow.update(ref, {"chain": chain, "updated_at": uow.now})
        uow.schedule_task(queue=service.TASK_QUEUE, function=service.TASK_FUNCTION,
                          path=service.CRYPTO_POLL_PATH, body={"refund_id": refund_id},
                          schedule_time=uow.now + dt.timedelta(seconds=delay),
                          name=task_name("refund-poll", project, refund_id, str(chain["polls"])))
        return chain

    return run_unit(deps, unit)


def _end(deps: Any, refund_id: str, *, ok: bool, reason: str, chain_fields: dict[str, Any],
         unsigned_only: bool = False, gas: outgoing.GasBooking | None = None) -> str:
    """Finish the refund in one unit (``complete`` or ``fail``, and its gas booked).
    ``unsigned_only``: only if no transaction was signed meanwhile (a concurrent send that
    signed wins: its poll decides)."""
    def unit(uow) -> str:
        if gas is not None:
            gas.prefetch(uow)
        ref, doc = service.load_for_update(uow, refund_id)
        if doc is None or doc["status"] != service.PENDING:
            return "done"
        if unsigned_only and (doc.get("chain") or {}).get("raw"):
            return "done"
        chain = {**(doc.get("chain") or {}), **chain_fields, **(gas.fields() if gas else {})}
        if gas is not None:
            gas.book(uow)
        if ok:
            service.complete(uow, ref, doc, chain=chain)
            return "succeeded"
        service.fail(uow, ref, doc, reason, chain=chain)
        return "failed"

    return run_unit(deps, unit)
