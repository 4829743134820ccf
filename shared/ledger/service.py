"""Ledger service: create transfers (linked, two-phase, reversals), expire holds, read.

Pure Python over ports: Firestore (``deps.db``), the task queue (hold expiry) and the publisher
(events after commit). Each call is one Firestore transaction; see ``engine`` for the rules.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from google.cloud import firestore

from shared.ledger import engine
from shared.ledger.model import (PENDING, TRANSFERS, AccountTemplate, TransferResult,
                                 TransferSpec)
from shared.platform.deps import Deps
from shared.platform.errors import NotFound
from shared.platform.ids import derived_id, new_id
from shared.platform.outbox import publish_events
from shared.platform.tasks import task_name

TASK_QUEUE, TASK_FUNCTION, EXPIRE_PATH = "ledger", "ledger_tasks", "/expire-pending"


def new_transfer_id() -> str:
    return new_id("txf")


def create_transfers(deps: Deps, specs: list[TransferSpec], *,
                     templates: Iterable[AccountTemplate] = (),
                     now: dt.datetime | None = None) -> list[TransferResult]:
    """Create a linked batch: every leg commits or none does. Retries answer ``exists``."""
    db = deps.db
    now = now or deps.clock.now()
    templates = list(templates)
    # Expiry is scheduled BEFORE the commit: every committed hold then has its timer. If the
    # transaction fails (or the id already exists) the task finds nothing to expire: a no-op.
    for s in specs:
        if s.kind == PENDING and s.timeout_seconds:
            schedule_expiry(deps, s.id, now + dt.timedelta(seconds=s.timeout_seconds))

    @firestore.transactional
    def run(txn):
        return engine.execute(db, txn, specs, now=now, templates=templates)

    outcome = run(db.transaction())
    publish_events(db, deps.publisher, outcome.events, topic=deps.settings.events_topic, now=now)
    return outcome.results


def create_transfer(deps: Deps, spec: TransferSpec, **kw) -> TransferResult:
    return create_transfers(deps, [spec], **kw)[0]


def post_pending(deps: Deps, pending_id: str, *, id: str | None = None, amount: int | None = None,
                 code: str = "post", description: str | None = None) -> TransferResult:
    return create_transfer(deps, TransferSpec(id=id or new_transfer_id(), post_pending_id=pending_id,
                                              amount=amount, code=code, description=description))


def void_pending(deps: Deps, pending_id: str, *, id: str | None = None,
                 code: str = "void", description: str | None = None) -> TransferResult:
    return create_transfer(deps, TransferSpec(id=id or new_transfer_id(), void_pending_id=pending_id,
                                              code=code, description=description))


def expiry_transfer_id(pending_id: str) -> str:
    return derived_id("txf", "expire", pending_id)


def expire_pending(deps: Deps, pending_id: str) -> dict[str, Any]:
    """Cloud Task target logic: expire the hold if it is still pending and due.

    Delivery is at least once and may be early (clock skew) or late: reload, act only if still
    pending; if not yet due, schedule again for the due time.
    """
    db, now = deps.db, deps.clock.now()
    snap = db.collection(TRANSFERS).document(pending_id).get()
    if not snap.exists:
        return {"pending_id": pending_id, "result": "not_found"}
    doc = snap.to_dict()
    if doc.get("kind") != PENDING or doc.get("pending_status") != "pending":
        return {"pending_id": pending_id, "result": "already_" + str(doc.get("pending_status"))}
    if not doc.get("expires_at"):
        return {"pending_id": pending_id, "result": "no_timeout"}
    if now < doc["expires_at"]:
        schedule_expiry(deps, pending_id, doc["expires_at"], attempt=now.isoformat())
        return {"pending_id": pending_id, "result": "rescheduled"}
    from shared.platform.errors import Unprocessable
    try:
        result = create_transfer(deps, TransferSpec(id=expiry_transfer_id(pending_id),
                                                    expire_pending_id=pending_id, code="expiry"),
                                 now=now)
    except Unprocessable as exc:   # resolved between our read and the transaction
        return {"pending_id": pending_id, "result": exc.code}
    return {"pending_id": pending_id, "result": "expired" if result.status == "created" else "exists",
            "transfer_id": result.id}


def schedule_expiry(deps: Deps, pending_id: str, when: dt.datetime, *, attempt: str = "") -> str:
    return deps.tasks.enqueue(queue=TASK_QUEUE, function=TASK_FUNCTION, path=EXPIRE_PATH,
                              body={"pending_id": pending_id}, schedule_time=when,
                              name=task_name("ledger-expire", deps.settings.project_id,
                                             pending_id, attempt))


def expire_overdue(deps: Deps, *, grace_seconds: int = 60, limit: int = 500) -> int:
    """Safety net run by the audit: expire holds whose timer was lost (overdue by > grace)."""
    db, now = deps.db, deps.clock.now()
    cutoff = now - dt.timedelta(seconds=grace_seconds)
    q = (db.collection(TRANSFERS)
         .where(filter=firestore.FieldFilter("pending_status", "==", "pending"))
         .where(filter=firestore.FieldFilter("expires_at", "<=", cutoff))
         .limit(limit))
    done = 0
    for snap in q.stream():
        if expire_pending(deps, snap.id).get("result") == "expired":
            done += 1
    return done


def reverse(deps: Deps, transfer_id: str, *, id: str | None = None, amount: int | None = None,
            code: str = "reversal", description: str | None = None) -> TransferResult:
    """A correction: a new transfer in the opposite direction (never an edit).

    Without ``id`` the reversal id derives from the original, so "reverse X" is idempotent.
    """
    rid = id or derived_id("txf", "reverse", transfer_id, str(amount))
    return create_transfer(deps, TransferSpec(id=rid, reverses=transfer_id, amount=amount,
                                              code=code, description=description))


def get_transfer(db, transfer_id: str) -> dict[str, Any]:
    snap = db.collection(TRANSFERS).document(transfer_id).get()
    if not snap.exists:
        raise NotFound(f"No such transfer: '{transfer_id}'", param="id", code="transfer_not_found")
    return snap.to_dict()
