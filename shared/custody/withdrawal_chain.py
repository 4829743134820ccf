"""Withdrawals on chain: the checks before a proposal, then sign once, broadcast, confirm.

The hot wallet (``shared.refunds.hot_wallet``: the custodial seed's ``m/44'/60'/1'/0/0``) pays.
Every chain step is ``shared.chain.outgoing``'s, the one implementation refunds and sweeps use
too; this module says what each outcome means for a withdrawal:

1. ``precheck`` (the create route, before its unit): the destination is not the hot wallet;
   ``outgoing.quote`` of the very transfer from the hot wallet: it must hold the amount (and
   the gas, for ether) on chain now, else 409 ``insufficient_hot_balance``; the gas estimate
   must not revert (a contract that refuses ether, a token that refuses the receiver), else
   400 ``destination_rejected``. Nothing is written.
2. ``send`` (task ``/withdrawals/send``, queued by the unit that approved): outside any unit,
   unseal the key and quote again: the balance may have moved since the proposal. Short of
   funds → ``failed`` (``insufficient_hot_balance``), a reverting transfer → ``failed``
   (``destination_rejected``), nothing signed, hold voided. Then ONE unit reads the withdrawal
   and the nonce document ``chain_nonces/{network}:{hot address}`` (the document refunds and
   sweeps reserve from: the same read-then-write in one unit, so no two of them can ever sign
   with one nonce), signs with ``max(stored next, node pending count)``, stores the raw bytes
   on the withdrawal (``executing``), writes the next nonce, schedules the first poll. Only
   after that commit is the transaction broadcast; a crash in between loses nothing (the poll
   sends the SAME bytes). A withdrawal that has a signed transaction is never signed again.
3. ``poll`` (task ``/withdrawals/poll``, ``outgoing.follow``): no receipt → the stored bytes
   again, or, unmined after the sweeps' ``bump_after``, a replacement with +12.5% fees and the
   same nonce; poll again (back-off to a minute); status 1 with the policy's confirmations →
   ``succeeded`` (hold posted); status 0 or the nonce taken by another transaction →
   ``failed`` (hold voided). A mined transaction's gas (reverted ones pay too) is booked in the
   same unit, ``network_fees`` → ``external`` in the native asset, as sweeps book theirs.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.chain import outgoing
from shared.chain.networks import Network, get_network
from shared.chain.rpc import RpcClient, RpcUnavailable
from shared.custody import withdrawals as wd
from shared.custody.withdrawal_models import CreateWithdrawal
from shared.ledger import assets
from shared.platform import logs
from shared.platform.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit
from shared.refunds import crypto

_log = logs.get_logger(__name__)
ACTOR = "system:custody_tasks"
GAS_SCOPE = "custody"          # the gas transfer's id: derived from ("custody", withdrawal id)


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


def _rpc(deps: Any, name: str) -> tuple[Network, RpcClient]:
    network = get_network(deps, name)
    return network, outgoing.rpc_for(deps, network)


def precheck(deps: Any, livemode: bool, proposal: wd.Plan) -> None:
    """The proposal against the chain now (see the module doc). Nothing is written."""
    dest = proposal.destination
    hot = crypto.hot(deps, livemode).address
    if dest["address"].lower() == hot.lower():
        raise InvalidRequest("The hot wallet cannot withdraw to itself.", code="invalid_address",
                             param="destination")
    _, rpc = _rpc(deps, dest["network"])
    try:
        outgoing.quote(rpc, hot, dest)
    except outgoing.ShortOfFunds as exc:
        raise Conflict(f"The hot wallet does not hold enough on chain for this withdrawal "
                       f"({exc}).", code="insufficient_hot_balance", param="amount") from None
    except outgoing.Rejected:
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
        outgoing.broadcast(_rpc(deps, doc["destination"]["network"])[1], chain["raw"])
        return "rebroadcast"
    if doc["status"] != wd.APPROVED:
        return "done"
    network, rpc = _rpc(deps, doc["destination"]["network"])
    hot = crypto.hot(deps, doc["livemode"])
    try:
        q = outgoing.quote(rpc, hot.address, doc["destination"])
    except outgoing.ShortOfFunds as exc:
        return _fail_unsigned(deps, withdrawal_id, "insufficient_hot_balance", f"short: {exc}",
                              livemode=doc["livemode"], asset=doc["destination"]["asset"])
    except outgoing.Rejected as exc:
        return _fail_unsigned(deps, withdrawal_id, "destination_rejected", f"estimate: {exc}",
                              livemode=doc["livemode"], asset=doc["destination"]["asset"])
    except RpcUnavailable:
        raise ServiceUnavailable("The network's RPC endpoints are unavailable.",
                                 code="rpc_unavailable") from None
    wref = wd.withdrawal_ref(deps.db, withdrawal_id)
    nonces = outgoing.Nonces(deps.db, network.name, hot.address)

    def claim(uow) -> dict[str, Any]:
        wd.prefetch(uow, doc["livemode"])
        snaps = uow.get_all([wref, nonces.ref])
        current = snaps[wref.path].to_dict()
        if current["status"] != wd.APPROVED or (current.get("chain") or {}).get("raw"):
            return current
        nonces.load(snaps[nonces.ref.path], q.pending_count)
        nonce = nonces.take()
        signed = {**(current.get("chain") or {}), **outgoing.sign_transfer(
            network, current["destination"], q, nonce, hot.key, hot.address, uow.now)}
        nonces.write(uow)
        changes = {"status": wd.EXECUTING, "executed_at": uow.now, "chain": signed,
                   "updated_at": uow.now}
        uow.update(wref, changes)
        current = {**current, **changes}
        wd.record(uow, current, "withdrawal.executed", ACTOR, transaction=signed["hash"],
                  nonce=nonce, sender=hot.address)
        wd.emit(uow, current, "executed")
        _schedule_poll(uow, network, withdrawal_id, 0)
        return current

    claimed = run_unit(deps, claim)
    if claimed["status"] == wd.EXECUTING and (claimed.get("chain") or {}).get("raw"):
        outgoing.broadcast(rpc, claimed["chain"]["raw"])
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
    """Follow the transaction to its confirmations (``outgoing.follow``)."""
    doc = _load(deps, withdrawal_id)
    if doc is None:
        return "missing"
    if doc["status"] == wd.APPROVED:
        return send(deps, withdrawal_id)
    if doc["status"] != wd.EXECUTING:
        return "done"
    network, rpc = _rpc(deps, doc["destination"]["network"])
    return outgoing.follow(rpc, network, doc["chain"], _Owner(deps, doc, network),
                           now=deps.clock.now(), policy=outgoing.bump_policy(deps))


class _Owner:
    """An executing withdrawal as the owner of its transaction (``outgoing.Owner``)."""

    def __init__(self, deps: Any, doc: dict[str, Any], network: Network):
        self.deps, self.doc, self.network = deps, doc, network

    def save(self, change: outgoing.Change, *, expect_hash: str | None = None):
        withdrawal_id = self.doc["id"]

        def unit(uow) -> dict[str, Any] | None:
            ref, doc = wd.load(uow, withdrawal_id)
            if doc["status"] != wd.EXECUTING:
                return None
            if expect_hash is not None and outgoing.latest(doc["chain"])["hash"] != expect_hash:
                return None                   # a concurrent poll replaced it already
            chain = change(doc["chain"], uow.now)
            chain["polls"] = int(chain.get("polls") or 0) + 1
            uow.update(ref, {"chain": chain, "updated_at": uow.now})
            _schedule_poll(uow, self.network, withdrawal_id, chain["polls"])
            return chain

        return run_unit(self.deps, unit)

    def end(self, ok: bool, reason: str, fields: dict[str, Any]) -> str:
        doc, withdrawal_id = self.doc, self.doc["id"]
        gas = outgoing.mined_gas(fields, scope=GAS_SCOPE, record_id=withdrawal_id,
                                 kind="custody_withdrawal", network=self.network,
                                 livemode=doc["livemode"])

        def unit(uow) -> str:
            if gas is not None:
                gas.prefetch(uow)
            wd.prefetch(uow, doc["livemode"], withdrawal_id, doc["destination"]["asset"])
            ref, doc_now = wd.load(uow, withdrawal_id)
            if doc_now["status"] != wd.EXECUTING:
                return "done"
            chain = {**doc_now["chain"], **fields, **(gas.fields() if gas else {})}
            if gas is not None:
                gas.book(uow)
            wd.close(uow, ref, doc_now, wd.SUCCEEDED if ok else wd.FAILED, reason or None,
                     ACTOR, extra={"chain": chain})
            return "succeeded" if ok else "failed"

        return run_unit(self.deps, unit)

    def key(self) -> bytes:
        return crypto.hot(self.deps, self.doc["livemode"]).key
