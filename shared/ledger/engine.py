"""The transfer engine: read, then the pure ``plan``, then write, in one unit of work.

``execute(uow, specs, templates=..., extra_refs=...)``:
1. reads in ONE ``uow.get_all`` the batch's transfer ids, the transfers they name, the main
   documents of the accounts they name (hot accounts known from the metadata cache are not
   read: a credit to them is blind), the shards of the accounts expected to be debited with a
   check, and the caller's ``extra_refs`` (the wallet's handle, user and usage documents);
2. calls ``plan.plan`` on plain values; when it needs more (accounts named only by a
   referenced transfer, a recipient found through a handle), it reads those and plans again;
3. buffers the writes: transfers with ``create`` (the id is the idempotency key: a concurrent
   creator makes the commit fail and the unit re-runs, then answers ``exists``), annotations and
   checked balances with a precondition (they were read), credits as blind ``Increment``s into
   balance shards, entries stamped with the commit time (``SERVER_TIMESTAMP``), one event per
   owner, and the hold-expiry timer.
Nothing is sent or enqueued here: events and timers leave through the outbox after commit.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable

from google.cloud import firestore

from shared.ledger import accounts as acc_mod
from shared.ledger import plan as rules
from shared.ledger.model import (BALANCE_FIELDS, ENTRIES, PENDING, SHARDS, SINGLE, TRANSFERS,
                                 AccountTemplate, Balances, TransferResult, TransferSpec)
from shared.platform.tasks import task_name
from shared.platform.uow import UnitOfWork

MAX_READ_ROUNDS = 4
TASK_QUEUE, TASK_FUNCTION, EXPIRE_PATH = "ledger", "ledger_tasks", "/expire-pending"
transfer_resource = rules.transfer_resource


@dataclasses.dataclass
class Outcome:
    results: list[TransferResult]
    extra: dict[str, Any]          # path -> snapshot for ``extra_refs``
    balances: dict[str, Balances]  # accounts whose totals after the batch are known

    @property
    def created(self) -> bool:
        return any(r.status == "created" for r in self.results)


def transfer_ref(db, transfer_id: str):
    return db.collection(TRANSFERS).document(transfer_id)


def first_refs(db, specs: Iterable[TransferSpec], templates: Iterable[AccountTemplate] = (), *,
               assume_new: bool = False) -> list:
    """What ``execute`` reads in its first round, so a caller can read it together with its
    own documents in one ``get_all`` (``uow`` caches what it has read)."""
    specs, refs = list(specs), []
    by_template = {t.id: t for t in templates}
    for s in specs:
        if not assume_new:
            refs.append(transfer_ref(db, s.id))
        for other in (s.pending_id, s.reverses):
            if other:
                refs.append(transfer_ref(db, other))
        for a, debit in ((s.debit_account_id, s.kind in (SINGLE, PENDING) and not s.reverses),
                         (s.credit_account_id, False)):
            if not a:
                continue
            meta = acc_mod.cached_meta(db, a)
            t = by_template.get(a)
            known = meta or (t.document(dt.datetime.min) if t else None)
            if meta and (meta.get("flags") or {}).get("hot") and \
                    not (debit and rules.needs_shards_for_debit(meta)):
                continue                                   # blind: no read at all
            refs.append(acc_mod.account_ref(db, a))
            if debit and known and rules.needs_shards_for_debit(known):
                refs += acc_mod.shard_refs(db, a, rules.shard_count(known))
    return refs


def execute(uow: UnitOfWork, specs: list[TransferSpec], *,
            templates: Iterable[AccountTemplate] = (), extra_refs: Iterable = (),
            assume_new: bool = False) -> Outcome:
    """Plan and buffer a linked batch in ``uow``. Raises a PayloomError on any refusal.

    ``assume_new``: do not read the batch's own transfer ids (a blind credit then costs one
    commit and no read). ``create()`` still guards them: if one exists the commit fails, the
    unit runs again, and the caller must then pass ``assume_new=False`` to read and replay it."""
    rules.validate(specs)
    db, now = uow.db, uow.now
    templates = list(templates)
    extra_refs = list(extra_refs)
    transfers: dict[str, dict[str, Any] | None] = {}
    if assume_new:
        transfers.update((s.id, None) for s in specs)
    states: dict[str, rules.AccountState] = {}
    refs = first_refs(db, specs, templates, assume_new=assume_new) + extra_refs
    for s in specs:                      # hot accounts skipped by first_refs: cached metadata
        for a in (s.debit_account_id, s.credit_account_id):
            meta = a and acc_mod.cached_meta(db, a)
            if meta and (meta.get("flags") or {}).get("hot"):
                states[a] = rules.AccountState(dict(meta), read=False)
    for _ in range(MAX_READ_ROUNDS):
        snaps = uow.get_all(refs)
        _absorb(db, uow, snaps, transfers, states)
        try:
            planned = rules.plan(specs, transfers=transfers, accounts=states, now=now,
                                 templates=templates)
            break
        except rules.NeedReads as need:
            refs = _refs_for(db, need, states)
    else:  # pragma: no cover — every round names new documents
        raise RuntimeError("ledger plan did not converge")
    _write(uow, planned)
    extra = {r.path: uow.get_all([r])[r.path] for r in extra_refs}
    return Outcome(planned.results, extra, planned.balances)


def _absorb(db, uow: UnitOfWork, snaps: dict[str, Any], transfers: dict, states: dict) -> None:
    """Turn snapshots into the plain values ``plan`` takes."""
    shard_sums: dict[str, list] = {}
    for path, snap in snaps.items():
        parts = path.split("/")
        if parts[0] == TRANSFERS and len(parts) == 2:
            transfers[parts[1]] = snap.to_dict() if snap.exists else None
        elif parts[0] == acc_mod.ACCOUNTS and len(parts) == 2:
            doc = snap.to_dict() if snap.exists else None
            prev = states.get(parts[1])
            states[parts[1]] = rules.AccountState(doc, True, prev.shards if prev and prev.read else None)
            if doc:   # immutable metadata: a hint for the next first round (shards to read)
                acc_mod.remember_meta(db, doc)
        elif parts[0] == acc_mod.ACCOUNTS and len(parts) == 4 and parts[2] == SHARDS:
            shard_sums.setdefault(parts[1], [])
    for acc_id in shard_sums:
        st = states.get(acc_id)
        if st is None or st.doc is None:
            continue
        refs = acc_mod.shard_refs(db, acc_id, rules.shard_count(st.doc))
        if not all(uow.was_read(r) for r in refs):
            continue      # shard_count grew since the hint: _refs_for reads the rest
        got = uow.get_all(refs)
        total = Balances()
        for r in refs:
            if got[r.path].exists:
                total = total + Balances.of(got[r.path].to_dict())
        states[acc_id] = dataclasses.replace(st, shards=total)


def _refs_for(db, need: rules.NeedReads, states: dict) -> list:
    refs = [transfer_ref(db, t) for t in need.transfers]
    refs += [acc_mod.account_ref(db, a) for a in need.accounts]
    for a in need.shards:
        st = states.get(a)
        if st is not None and st.doc is not None and st.read:
            refs += acc_mod.shard_refs(db, a, rules.shard_count(st.doc))
        else:
            refs.append(acc_mod.account_ref(db, a))
    return refs


def _increments(delta: Balances, entries: int) -> dict[str, Any]:
    values = {f: firestore.Increment(v) for f, v in delta.as_dict().items() if v}
    if entries:
        values["entry_count"] = firestore.Increment(entries)
    return values


def _write(uow: UnitOfWork, p: rules.Plan) -> None:
    if not p.created:
        return
    db, now = uow.db, uow.now
    for tid, fields in p.transfer_updates.items():
        uow.update(transfer_ref(db, tid), fields)
    for tid, doc in p.transfer_creates.items():
        uow.create(transfer_ref(db, tid), doc)
        if doc["kind"] == PENDING and doc.get("hold_expires_at"):
            schedule_expiry(uow, tid, doc["hold_expires_at"])
    for acc_id, doc in p.account_creates.items():
        uow.create(acc_mod.account_ref(db, acc_id), doc)
    for acc_id, delta in p.main_deltas.items():
        values = _increments(delta, p.main_entries.get(acc_id, 0))
        if values:
            uow.update(acc_mod.account_ref(db, acc_id), {**values, "updated_at": now})
    for (acc_id, k), delta in p.shard_deltas.items():
        values = _increments(delta, p.shard_entries.get((acc_id, k), 0))
        if values:
            ref = acc_mod.account_ref(db, acc_id).collection(SHARDS).document(str(k))
            uow.set(ref, values, merge=True)
    ecol = db.collection(ENTRIES)
    for e in p.entries:
        uow.create(ecol.document(e["id"]), {**e, "committed_at": firestore.SERVER_TIMESTAMP})
    for type_, tenant, data in p.events:
        uow.emit(type_, tenant=tenant, data=data)


def schedule_expiry(uow: UnitOfWork, pending_id: str, when: dt.datetime, *, attempt: str = "") -> None:
    """The hold's timer, enqueued after commit through the outbox (named: a redo is refused)."""
    uow.schedule_task(queue=TASK_QUEUE, function=TASK_FUNCTION, path=EXPIRE_PATH,
                      body={"pending_id": pending_id}, schedule_time=when,
                      name=task_name("ledger-expire", uow.deps.settings.project_id, pending_id,
                                     attempt))


__all__ = ["Outcome", "execute", "first_refs", "schedule_expiry", "transfer_resource",
           "BALANCE_FIELDS"]
