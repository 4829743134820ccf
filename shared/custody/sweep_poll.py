"""The sweep poll task (``/sweeps/poll``, queue ``custody``): follows one batch to finality.

Each run reads, in ONE batched JSON-RPC request, the head, the fee market, the latest and
pending nonce of every sender and the receipt of every signing of every transaction still in
play; then ONE unit moves each record along (``Step``):

- ``funding``: its top-ups (hot wallet → deposit address) are on their way. All mined → the
  token transfer is sent (``sending``). Unmined after ``bump_after`` → replaced with +12.5% fees
  (same nonce); otherwise the same bytes are sent again. A top-up whose nonce the hot wallet
  spent on something else (latest nonce past it, no receipt) is lost: the sweep fails before
  anything left the deposit address.
- ``sending``: the transfer was sent. Mined (any signing) → ``confirming``. Its nonce taken by a
  transaction that is not ours → failed (``nonce_replaced``: custody keys used elsewhere,
  reconciliation will say so). Unmined after ``bump_after`` → replaced: an ether sweep lowers
  its value by the extra gas reservation; a token sweep needs more ether for the higher fee,
  so the hot wallet sends exactly that difference first (a new top-up, a new hot nonce, through
  the shared nonce document) and the record goes back to ``funding``; a cold transfer's fee is
  paid by the hot wallet. Otherwise the same bytes again.
- ``confirming``: final when ``reorg_depth + 1`` blocks deep (the network's own finality, the
  same depth the planner reads balances at) and every top-up is settled: status 1 → succeeded,
  0 → failed (reverted). A receipt that disappears (reorg) sends the record back to
  ``sending`` (the same signed bytes go out again).

Finishing a record books its gas (``sweep_ledger``), emits ``custody.sweep.*`` /
``custody.cold_transfer.*``, frees the address's queue entry (again due if something remains;
after a failure with exponential back-off, and an alert after repeated failures) or the cold
lock. Sends happen after the commit; a duplicate delivery reads the same chain and changes
nothing (a resend of known bytes is answered "already known"). The mechanics of one transaction
(which signing is mined, a lost nonce, when and how to replace, the hot wallet's nonces, the
batched broadcast) are ``shared.chain.outgoing``'s, shared with refunds and withdrawals; this
module is the sweep's state machine.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from typing import Any

from shared.chain import outgoing
from shared.chain.networks import Network, get_network
from shared.chain.outgoing import broadcast_many
from shared.chain.rpc import RpcError, RpcUnavailable
from shared.custody import gas, sweep_ledger
from shared.custody import sweep_models as M
from shared.custody import sweep_records as R
from shared.custody.sweep_keys import SweepKeys
from shared.custody.sweep_settings import SweepSettings, sweep_settings
from shared.custody.sweeps import rpc_for
from shared.ledger import service as ledger
from shared.platform import logs
from shared.platform.tasks import task_name
from shared.platform.uow import run_unit

_log = logs.get_logger(__name__)
MAX_FINISHED_PER_UNIT = 20     # each finish books a ledger transfer: keep a commit well under 500


@dataclasses.dataclass
class ChainView:
    head: int
    fees: gas.Fees
    receipts: dict[str, dict[str, Any] | None]
    latest: dict[str, int]      # sender (lower) -> mined nonce count
    pending: dict[str, int]


def observe(rpc, records: list[dict[str, Any]]) -> ChainView:
    """One batched request: head, fees, every sender's nonces, every signing's receipt."""
    senders = sorted({o["sender"].lower() for r in records for o in R.all_outgoing(r)})
    hashes = [h for r in records for o in R.all_outgoing(r) for h in outgoing.hashes(o)]
    calls = [("eth_blockNumber", []), *gas.fee_calls()]
    calls += [("eth_getTransactionCount", [s, tag]) for s in senders for tag in ("latest", "pending")]
    calls += [("eth_getTransactionReceipt", [h]) for h in hashes]
    out = rpc.batch(calls)
    k = 3 + 2 * len(senders)
    return ChainView(head=int(out[0], 16), fees=gas.fees_from(out[1], out[2]),
                     receipts=dict(zip(hashes, out[k:])),
                     latest={s: int(out[3 + 2 * i], 16) for i, s in enumerate(senders)},
                     pending={s: int(out[4 + 2 * i], 16) for i, s in enumerate(senders)})


class Step:
    """Moves records of one batch along inside one unit (see the module doc)."""

    def __init__(self, uow, network: Network, view: ChainView, settings: SweepSettings,
                 keys: SweepKeys):
        self.uow, self.network, self.view, self.settings, self.keys = uow, network, view, settings, keys
        self.now = uow.now
        self.sends: list[str] = []
        self._nonces: outgoing.Nonces | None = None

    # --- chain facts ---------------------------------------------------------------------------
    def _lost(self, out: dict[str, Any]) -> bool:
        return outgoing.lost(out, self.view.latest.get(out["sender"].lower(), 0))

    def _due_for_bump(self, out: dict[str, Any]) -> bool:
        return outgoing.due_for_bump(out, self.now, after=self.settings.bump_after,
                                     max_bumps=self.settings.max_bumps)

    def _send(self, out: dict[str, Any]) -> None:
        out["broadcast_at"] = out.get("broadcast_at") or self.now
        self.sends.append(outgoing.latest(out)["raw"])

    # --- signing -------------------------------------------------------------------------------
    def _resign(self, out: dict[str, Any], key: bytes, *, value: int, max_fee: int, tip: int) -> None:
        outgoing.resign(out, key, self.network.chain_id, value=value, max_fee=max_fee, tip=tip,
                        now=self.now)

    def _hot_nonce(self, hot: str) -> int:
        """The next hot-wallet nonce, reserved in the shared ``chain_nonces`` document."""
        if self._nonces is None:
            self._nonces = outgoing.Nonces(self.uow.db, self.network.name, hot)
            self._nonces.load(self.uow.get(self._nonces.ref), self.view.pending.get(hot.lower(), 0))
        return self._nonces.take()

    def write_hot_nonce(self) -> None:
        if self._nonces is not None:
            self._nonces.write(self.uow)

    def _bump(self, doc: dict[str, Any], out: dict[str, Any], *, top_up: bool) -> bool:
        """Replace ``out`` with higher fees (see the module doc). False when it cannot."""
        last = outgoing.latest(out)
        old_max, old_tip = int(last["max_fee_per_gas"]), int(last["max_priority_fee_per_gas"])
        new_max, new_tip = gas.bumped(old_max, old_tip, self.view.fees)
        extra = out["gas"] * (new_max - old_max)
        value = int(last["value"])
        from_hot = top_up or doc["kind"] == R.COLD
        if from_hot:
            self._resign(out, self.keys.hot().key, value=value, max_fee=new_max, tip=new_tip)
            self._send(out)
            return True
        key = self.keys.deposit(doc["index"], doc["from"])
        if doc["asset"] == self.network.native_asset:            # an ether sweep pays itself
            if value - extra <= 0:
                return False
            self._resign(out, key, value=value - extra, max_fee=new_max, tip=new_tip)
            self._send(out)
            return True
        # a token sweep: the hot wallet first sends exactly the extra gas reservation
        hot = self.keys.hot()
        nonce = self._hot_nonce(hot.address)
        up = {"chainId": self.network.chain_id, "nonce": nonce, "to": doc["from"], "value": extra,
              "data": "0x", "gas": gas.ETH_TRANSFER_GAS, "maxFeePerGas": self.view.fees.max_fee,
              "maxPriorityFeePerGas": self.view.fees.tip}
        new = outgoing.sign_new(up, hot.key, hot.address, self.now)
        doc["top_ups"] = [*(doc.get("top_ups") or []), new]
        self._send(new)
        self._resign(out, key, value=0, max_fee=new_max, tip=new_tip)
        out["broadcast_at"] = None                 # the replacement waits for its top-up
        doc["status"] = R.FUNDING
        return True

    def _push(self, doc: dict[str, Any], out: dict[str, Any], *, top_up: bool = False) -> None:
        """An unmined transaction: replace it when it is overdue, else send the same bytes."""
        if self._due_for_bump(out) and self._bump(doc, out, top_up=top_up):
            return
        self._send(out)

    # --- the state machine ------------------------------------------------------------------
    def advance(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        for out in R.all_outgoing(doc):
            outgoing.see(out, self.view.receipts)
        tx, ups = doc["tx"], doc.get("top_ups") or []
        if doc["status"] == R.FUNDING:
            if tx.get("mined"):
                doc["status"] = R.CONFIRMING        # an earlier signing was mined meanwhile
            elif any(self._lost(t) for t in ups):
                return self._fail(doc, "top_up_nonce_taken")
            else:
                waiting = [t for t in ups if not t.get("mined")]
                for t in waiting:
                    self._push(doc, t, top_up=True)
                if not waiting:
                    doc["status"] = R.SENDING
                    tx["broadcast_at"] = None
                    self._send(tx)
                return doc
        if doc["status"] == R.SENDING:
            if tx.get("mined"):
                doc["status"] = R.CONFIRMING
            elif self._lost(tx):
                return self._fail(doc, "nonce_replaced")
            else:
                self._push(doc, tx)
                return doc
        if doc["status"] == R.CONFIRMING:
            if not tx.get("mined"):                 # reorged away: the same bytes again
                doc["status"] = R.SENDING
                self._send(tx)
                return doc
            depth = max(0, self.view.head - tx["mined"]["block_number"] + 1)
            tx["confirmations"] = depth
            for t in ups:                           # an extra top-up still on its way
                if not t.get("mined") and not self._lost(t):
                    self._send(t)
            settled = all(t.get("mined") or self._lost(t) for t in ups)
            if depth > self.network.reorg_depth and settled:
                if tx["mined"]["status"] == 1:
                    doc["status"] = R.SUCCEEDED
                    if doc["asset"] == self.network.native_asset and doc["kind"] == R.SWEEP:
                        doc["amount"] = tx["mined"]["value"]
                    return doc
                return self._fail(doc, "transaction_reverted")
        return doc

    def _fail(self, doc: dict[str, Any], reason: str) -> dict[str, Any]:
        doc["status"], doc["failure_reason"] = R.FAILED, reason
        return doc


# --- the task -------------------------------------------------------------------------------------
def poll(deps: Any, batch_id: str) -> str:
    """Move a batch's records along (see the module doc). Returns an outcome word."""
    db = deps.db
    bsnap = R.batch_ref(db, batch_id).get()
    if not bsnap.exists:
        return "missing"
    batch = bsnap.to_dict()
    if batch["status"] == "done":
        return "done"
    network = get_network(deps, batch["network"])
    settings = sweep_settings(deps)
    docs = [s.to_dict() for s in db.get_all([R.sweep_ref(db, i) for i in batch["sweeps"]])
            if s.exists]
    active = [d for d in docs if d["status"] in R.ACTIVE]
    rpc = rpc_for(deps, network)
    view = None
    if active:
        try:
            view = observe(rpc, active)
        except (RpcUnavailable, RpcError) as exc:
            logs.log(_log, 30, "sweep poll: rpc failed", network=network.name, error=str(exc)[:200])
    keys = SweepKeys(deps, batch["livemode"])
    project = deps.settings.project_id
    sends: list[str] = []

    def unit(uow) -> str:
        sends.clear()
        bref = R.batch_ref(uow.db, batch_id)
        refs = [R.sweep_ref(uow.db, i) for i in batch["sweeps"]]
        snaps = uow.get_all([bref, *refs])
        current = snaps[bref.path].to_dict()
        if current["status"] == "done":
            return "done"
        polls = int(current.get("polls") or 0) + 1
        step = Step(uow, network, view, settings, keys) if view is not None else None
        finished, remaining = 0, 0
        specs, cold_done = [], []
        for ref in refs:
            doc = snaps[ref.path].to_dict() if snaps[ref.path].exists else None
            if doc is None or doc["status"] not in R.ACTIVE:
                continue
            if step is None:
                remaining += 1
                continue
            new = step.advance(doc)
            if new["status"] in R.TERMINAL:
                if finished >= MAX_FINISHED_PER_UNIT:
                    remaining += 1                  # finish it in the next poll
                    continue
                finished += 1
                spec = _finish(uow, network, settings, new)
                if spec is not None:
                    specs.append(spec)
                if new["kind"] == R.COLD:
                    cold_done.append(new)
            else:
                remaining += 1
            if new != doc:
                new["updated_at"] = uow.now
                uow.set(ref, new)
        if specs:
            ledger.create_transfers(uow, specs, templates=sweep_ledger.templates(
                network.native_asset, batch["livemode"]))
        if cold_done:
            _unlock_cold(uow, network, cold_done)
        if step is not None:
            step.write_hot_nonce()
            sends.extend(step.sends)
        fields: dict[str, Any] = {"polls": polls, "updated_at": uow.now}
        if remaining:
            base = settings.poll_delay_s or network.block_time_seconds
            delay = min(settings.max_poll_delay_s, max(0.5, base) * min(polls, 30))
            if finished >= MAX_FINISHED_PER_UNIT:
                delay = 0.5
            uow.schedule_task(queue=R.TASK_QUEUE, function=R.TASK_FUNCTION, path=R.POLL_PATH,
                              body={"batch_id": batch_id},
                              schedule_time=uow.now + dt.timedelta(seconds=delay),
                              name=task_name("sweep-poll", project, batch_id, str(polls)))
        else:
            fields.update(status="done", finished_at=uow.now)
        uow.update(bref, fields)
        return "pending" if remaining else "done"

    outcome = run_unit(deps, unit)
    if sends:
        broadcast_many(rpc, sends)
    return outcome


def _finish(uow, network: Network, settings: SweepSettings, doc: dict[str, Any]):
    """Book the gas, emit the event, free the queue entry or the cold lock. Returns the ledger
    transfer to create (None below one ledger unit)."""
    fee = R.fee_total(doc)
    spec, rest = sweep_ledger.fee_booking(doc, network.native_asset, fee)
    doc.update(fee=str(fee), fee_unbooked_wei=str(rest), finished_at=uow.now,
               ledger_transfer=spec.id if spec is not None else None, updated_at=uow.now)
    ok = doc["status"] == R.SUCCEEDED
    if doc["kind"] == R.COLD:
        event = M.COLD_SUCCEEDED if ok else M.COLD_FAILED
    else:
        event = M.SWEEP_SUCCEEDED if ok else M.SWEEP_FAILED
        _release(uow, network, settings, doc, ok)
    uow.emit(event.name, tenant="platform", livemode=doc["livemode"], data=M.payload(doc))
    if not ok:
        logs.log(_log, 40, "custody transfer failed", network=network.name, sweep=doc["id"],
                 kind=doc["kind"], reason=doc.get("failure_reason"))
    return spec


def _unlock_cold(uow, network: Network, docs: list[dict[str, Any]]) -> None:
    """Let the next run decide on these assets again (one write of the cursor)."""
    cref = R.cursor_ref(uow.db, network.name)
    snap = uow.get(cref)
    flight = dict((snap.to_dict() or {}).get("cold_in_flight") or {}) if snap.exists else {}
    for doc in docs:
        if flight.get(doc["asset"]) == doc["id"]:
            flight.pop(doc["asset"])
    uow.update(cref, {"cold_in_flight": flight, "updated_at": uow.now})


def _release(uow, network: Network, settings: SweepSettings, doc: dict[str, Any], ok: bool) -> None:
    """The address's queue entry after its sweep: deleted when nothing is left, due again when
    something is (or arrived meanwhile), retried with back-off after a failure."""
    qref = R.queue_ref(uow.db, network.name, doc["from"])
    snap = uow.get(qref)
    if not snap.exists:
        return
    q = snap.to_dict()
    if q.get("in_flight") != doc["batch_id"]:
        return
    if ok:
        touched = q.get("touched_at") and q.get("planned_at") and q["touched_at"] > q["planned_at"]
        if q.get("remaining") or touched:
            uow.update(qref, {"in_flight": None, "due_at": uow.now, "failures": 0,
                              "updated_at": uow.now})
        else:
            uow.delete(qref)
        return
    failures = int(q.get("failures") or 0) + 1
    wait = min(settings.max_retry_after, settings.retry_after * 2 ** (failures - 1))
    uow.update(qref, {"in_flight": None, "due_at": uow.now + wait, "failures": failures,
                      "last_reason": doc.get("failure_reason"), "updated_at": uow.now})
    if failures >= settings.alert_after_failures:
        alert = M.SweepAlert(network=network.name, address=doc["from"], failures=failures,
                             last_sweep=doc["id"], failure_reason=doc.get("failure_reason"))
        uow.emit(M.SWEEP_ALERT.name, tenant="platform", livemode=doc["livemode"],
                 data={"object": alert.model_dump(mode="json")})
