"""Ledger service: create transfers (linked, two-phase, reversals), expire holds, read.

Every function that writes takes a ``UnitOfWork`` and only buffers: the caller (the router, a
task handler, ``run_unit``) commits once and publishes after commit. See ``engine`` for the
read/plan/write steps and ``plan`` for the rules.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from google.cloud import firestore

from shared.ledger import engine
from shared.ledger.model import (PENDING, TRANSFERS, AccountTemplate, TransferResult,
                                 TransferSpec)
from shared.ledger.resources import HoldExpiry
from shared.platform.deps import Deps
from shared.platform.errors import NotFound, PayloomError, Unprocessable
from shared.platform.ids import derived_id, new_id
from shared.platform.uow import UnitOfWork, run_unit

TASK_QUEUE, TASK_FUNCTION, EXPIRE_PATH = engine.TASK_QUEUE, engine.TASK_FUNCTION, engine.EXPIRE_PATH


def new_transfer_id() -> str:
    return new_id("txf")


def create_transfers(uow: UnitOfWork, specs: list[TransferSpec], *,
                     templates: Iterable[AccountTemplate] = (),
                     assume_new: bool = False) -> list[TransferResult]:
    """A linked batch: every leg commits or none does. A retry answers ``exists``."""
    return engine.execute(uow, specs, templates=templates, assume_new=assume_new).results


def create_transfer(uow: UnitOfWork, spec: TransferSpec, **kw) -> TransferResult:
    return create_transfers(uow, [spec], **kw)[0]


def transfer_now(deps: Deps, spec: TransferSpec | list[TransferSpec], **kw):
    """Outside a request (tests, tasks, the bench): run, commit and publish one batch."""
    specs = spec if isinstance(spec, list) else [spec]
    attempts = [0]

    def attempt(uow: UnitOfWork):
        # First attempt: blind (the ids are not read; create() guards them). If the commit
        # failed, the next attempt reads them, so an existing batch is compared and replayed.
        attempts[0] += 1
        return create_transfers(uow, specs, assume_new=attempts[0] == 1, **kw)

    try:
        results = run_unit(deps, attempt)
    except PayloomError:
        if attempts[0] != 1:
            raise
        # A refusal decided blind may be about a batch that already exists: decide again with
        # the ids read (then it answers ``exists`` or the same refusal).
        results = run_unit(deps, lambda uow: create_transfers(uow, specs, **kw))
    return results if isinstance(spec, list) else results[0]


def post_pending(uow: UnitOfWork, pending_id: str, *, id: str | None = None,
                 amount: int | None = None, code: str = "post",
                 description: str | None = None) -> TransferResult:
    return create_transfer(uow, TransferSpec(id=id or new_transfer_id(), post_pending_id=pending_id,
                                             amount=amount, code=code, description=description))


def void_pending(uow: UnitOfWork, pending_id: str, *, id: str | None = None,
                 code: str = "void", description: str | None = None) -> TransferResult:
    return create_transfer(uow, TransferSpec(id=id or new_transfer_id(), void_pending_id=pending_id,
                                             code=code, description=description))


def expiry_transfer_id(pending_id: str) -> str:
    return derived_id("txf", "expire", pending_id)


def transfer_status(doc: dict[str, Any]) -> str:
    """What a transfer is now: a hold's ``pending_status``, else its own ``status``."""
    return str(doc.get("pending_status") if doc.get("kind") == PENDING else doc.get("status"))


def expire_pending(uow: UnitOfWork, pending_id: str) -> HoldExpiry:
    """Cloud Task logic: expire the hold if it is still pending and due.

    Delivery is at least once, early (clock skew) or late: reload, act only if still pending;
    if not due yet, schedule again (through the outbox) for the due time."""
    snap = uow.get(engine.transfer_ref(uow.db, pending_id))
    if not snap.exists:
        return HoldExpiry(pending_id=pending_id, result="not_found")
    doc = snap.to_dict()
    if doc.get("kind") != PENDING or doc.get("pending_status") != "pending":
        return HoldExpiry(pending_id=pending_id, result="already_" + transfer_status(doc))
    if not doc.get("hold_expires_at"):
        return HoldExpiry(pending_id=pending_id, result="no_timeout")
    if uow.now < doc["hold_expires_at"]:
        engine.schedule_expiry(uow, pending_id, doc["hold_expires_at"], attempt=uow.now.isoformat())
        return HoldExpiry(pending_id=pending_id, result="rescheduled")
    result = create_transfer(uow, TransferSpec(id=expiry_transfer_id(pending_id),
                                               expire_pending_id=pending_id, code="expiry"))
    return HoldExpiry(pending_id=pending_id, transfer_id=result.id,
                      result="expired" if result.status == "created" else "exists")


def expire_overdue(deps: Deps, *, grace_seconds: int = 60, limit: int = 500) -> int:
    """Safety net run by the audit: expire holds whose timer was lost (overdue by > grace)."""
    db, now = deps.db, deps.clock.now()
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    q = (db.collection(TRANSFERS)
         .where(filter=firestore.FieldFilter("pending_status", "==", "pending"))
         .where(filter=firestore.FieldFilter("hold_expires_at", "<=", cutoff))
         .limit(limit))
    done = 0
    for snap in q.stream():
        try:
            out = run_unit(deps, lambda uow, pid=snap.id: expire_pending(uow, pid))
        except Unprocessable:      # resolved meanwhile
            continue
        done += out.result == "expired"
    return done


def reverse(uow: UnitOfWork, transfer_id: str, *, id: str | None = None, amount: int | None = None,
            code: str = "reversal", description: str | None = None) -> TransferResult:
    """A correction: a new transfer in the opposite direction (never an edit).

    Without ``id`` the reversal id derives from the original, so "reverse X" is idempotent."""
    rid = id or derived_id("txf", "reverse", transfer_id, str(amount))
    return create_transfer(uow, TransferSpec(id=rid, reverses=transfer_id, amount=amount,
                                             code=code, description=description))


def get_transfer(db, transfer_id: str) -> dict[str, Any]:
    snap = engine.transfer_ref(db, transfer_id).get()
    if not snap.exists:
        raise NotFound(f"No such transfer: '{transfer_id}'", param="id", code="transfer_not_found")
    return snap.to_dict()
