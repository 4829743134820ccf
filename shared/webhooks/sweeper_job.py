"""The webhooks sweeper (every minute): deliveries whose next step was lost get it back.

Two ways a delivery can stall, both rare:

* ``sending`` past its lease: the worker died between claim and record. The attempt is recorded
  as ``lost`` and counts as a failed attempt (``delivery.lose``): attempt n+1 is scheduled on the
  usual schedule, so a delivery that keeps crashing its worker still ends dead-lettered.
* ``pending``/``retrying`` more than ``LATE_SECONDS`` past ``next_attempt_at``: its task was never
  enqueued or was dropped. The same attempt is queued again under a new ``requeues`` number
  (a new task name; the old task, should it still come, is then stale and does nothing).

Each run handles at most ``BATCH`` deliveries per state, one small unit each, oldest first.
Queries (composite indexes): (status, lease_until) and (status, next_attempt_at).
"""
from __future__ import annotations

import datetime as dt
import logging

from google.cloud import firestore

from shared.platform import logs
from shared.platform.deps import Deps
from shared.platform.uow import run_unit
from shared.webhooks import deliveries
from shared.webhooks.deliveries import COLLECTION, WAITING
from shared.webhooks.delivery import lose, slot_ref
from shared.webhooks.settings import webhook_settings

BATCH = 100
LATE_SECONDS = 60
_log = logs.get_logger(__name__)


def sweep(deps: Deps, *, batch: int = BATCH) -> tuple[int, int]:
    """Recover lost attempts and re-enqueue late ones; returns (lost, requeued)."""
    settings = webhook_settings(deps)
    now = deps.clock.now()
    col = deps.db.collection(COLLECTION)
    expired = (col.where(filter=firestore.FieldFilter("status", "==", "sending"))
               .where(filter=firestore.FieldFilter("lease_until", "<", now))
               .order_by("lease_until").limit(batch))
    lost = sum(1 for snap in expired.stream() if _recover(deps, settings, snap))
    late_before = now - dt.timedelta(seconds=LATE_SECONDS)
    requeued = 0
    for status in WAITING:
        late = (col.where(filter=firestore.FieldFilter("status", "==", status))
                .where(filter=firestore.FieldFilter("next_attempt_at", "<", late_before))
                .order_by("next_attempt_at").limit(batch))
        requeued += sum(1 for snap in late.stream() if _requeue(deps, settings, snap, late_before))
    if lost or requeued:
        logs.log(_log, logging.WARNING, "webhooks sweeper recovered deliveries", lost=lost,
                 requeued=requeued)
    return lost, requeued


def _recover(deps: Deps, settings, found) -> bool:
    slot = found.get("slot")
    endpoint_id = found.get("endpoint_id")

    def unit(uow) -> bool:
        refs = [found.reference]
        if isinstance(slot, int) and 0 <= slot < max(1, settings.endpoint_concurrency):
            refs.append(slot_ref(uow.db, endpoint_id, slot))
        snaps = uow.get_all(refs)
        snap = snaps[found.reference.path]
        doc = snap.to_dict() if snap.exists else None
        if not doc or doc.get("status") != "sending" or not doc.get("lease_until") \
                or doc["lease_until"] > uow.now:
            return False  # recorded meanwhile
        slot_snap = snaps.get(refs[1].path) if len(refs) > 1 and doc.get("slot") == slot else None
        lose(uow, settings, doc, slot_snap)
        return True

    return run_unit(deps, unit)


def _requeue(deps: Deps, settings, found, late_before: dt.datetime) -> bool:
    def unit(uow) -> bool:
        snap = uow.get(found.reference)
        doc = snap.to_dict() if snap.exists else None
        if not doc or doc.get("status") not in WAITING or not doc.get("next_attempt_at") \
                or doc["next_attempt_at"] >= late_before:
            return False  # its task ran meanwhile
        requeues = doc.get("requeues", 0) + 1
        uow.update(found.reference, {"requeues": requeues, "next_attempt_at": uow.now,
                                     "updated_at": uow.now})
        deliveries.schedule_attempt(uow, settings, doc, run=doc["run"],
                                    n=doc.get("attempt_count", 0) + 1, requeues=requeues)
        return True

    return run_unit(deps, unit)
