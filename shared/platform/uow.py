"""The unit of work: one atomic phase per write.

A service reads through the unit, buffers its writes, emits its events and schedules its timers;
the unit commits all of it in ONE atomic batch commit, together with the outbox record (and, in
the router, the idempotency record holding the response: Stripe's "atomic phase").

Why optimistic concurrency and not a Firestore transaction: the server SDK's transactions cost a
``begin_transaction`` round trip, take pessimistic locks that the emulator answers with
``ABORTED: Transaction lock timeout`` under contention, and cannot be read before they begin, so a
replay would cost three round trips. Here reads are plain batch gets and every write to a
document that was read carries a precondition: *must not exist* if it was missing, else
``update_time`` equal to what was read. A concurrent writer makes the commit fail as a whole; the
service function is re-run with fresh reads (a few attempts, jittered back-off), and then the
caller gets a retryable 503 ``contention``. Writes to documents that were not read (a blind
``Increment`` into a balance shard, a new event) carry no precondition, so credits never contend.

Rules for code run in a unit: no side effect but through the unit (it may run several times);
every read that a decision depends on must be of a document the unit also writes (a read-only
document is not protected, as with snapshot reads).

Cost: one ``batch_get`` per ``get_all`` of documents not read yet (the router's idempotency record
rides along with the first one), one ``commit``; after commit, when events or timers were
recorded, one Pub/Sub publish for all events of the commit and one outbox update.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
from typing import Any, Callable, Iterable, TypeVar

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1 import types

from shared.platform import catalog, logs, outbox
from shared.platform.errors import ServiceUnavailable

_log = logs.get_logger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 0.01
BACKOFF_CAP_S = 0.25
# What a failed optimistic commit looks like: a precondition (update_time or must-not-exist)
# failed because someone else wrote first.
CONFLICTS = (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted, gexc.Conflict)


class Contention(ServiceUnavailable):
    """Too many concurrent writers on the same documents; the same request can succeed later."""
    code = "contention"

    def __init__(self, message: str = "Too many concurrent changes to the same objects; retry "
                                      "the request.", **kw):
        kw.setdefault("headers", {"Retry-After": "1"})
        super().__init__(message, **kw)


class Conflicted(Exception):
    """Internal signal: the commit's preconditions failed, or the unit's code found that its
    reads were taken on both sides of a concurrent commit; run the unit again."""


@dataclasses.dataclass
class _Write:
    op: str            # create | set | update | delete
    ref: Any
    data: Any = None
    merge: bool | list = False


class UnitOfWork:
    """Reads, buffered writes and outbox records of one attempt. Create one per attempt."""

    def __init__(self, deps, *, now: dt.datetime | None = None, attempt: int = 0):
        self.deps = deps
        self.attempt = attempt  # 0 first; more when a concurrent writer made a commit fail
        self.now = now or deps.clock.now()
        self._snaps: dict[str, Any] = {}
        self._prefetch: list[Any] = []
        self._watchers: dict[str, Callable[[Any], None]] = {}
        self._writes: list[_Write] = []
        self.events: list[outbox.Event] = []
        self.tasks: list[dict[str, Any]] = []
        self.keep_writes_on_error = False
        self.committed = False
        self.commit_time: dt.datetime | None = None
        self._record: outbox.OutboxRecord | None = None

    @property
    def db(self):
        """The Firestore client, created on first use (a route that touches nothing needs none)."""
        return self.deps.db

    # ---- reads ---------------------------------------------------------------------------
    def prefetch(self, ref, on_read: Callable[[Any], None] | None = None) -> None:
        """Read ``ref`` together with the next ``get_all`` (no round trip of its own); call
        ``on_read(snapshot)`` as soon as it is read. The router uses this for the idempotency
        record, so a replay costs one round trip and a new key costs none."""
        self._prefetch.append(ref)
        if on_read is not None:
            self._watchers[ref.path] = on_read

    def get_all(self, refs: Iterable) -> dict[str, Any]:
        refs = list(refs)
        wanted: dict[str, Any] = {}
        for ref in refs + self._prefetch:
            if ref.path not in self._snaps:
                wanted.setdefault(ref.path, ref)
        self._prefetch = []
        if wanted:
            for snap in self.db.get_all(list(wanted.values())):
                self._snaps[snap.reference.path] = snap
            for path in wanted:
                watcher = self._watchers.pop(path, None)
                if watcher is not None:
                    watcher(self._snaps[path])
        return {ref.path: self._snaps[ref.path] for ref in refs}

    def get(self, ref):
        return self.get_all([ref])[ref.path]

    def flush_prefetch(self) -> None:
        """Read what was prefetched now (when the unit's code reads nothing itself)."""
        if self._prefetch:
            self.get_all([])

    def query(self, query) -> list:
        """Run a query. Its results are not protected by preconditions unless written."""
        self.flush_prefetch()
        snaps = list(query.stream())
        for snap in snaps:
            self._snaps.setdefault(snap.reference.path, snap)
        return snaps

    def was_read(self, ref) -> bool:
        return ref.path in self._snaps

    # ---- writes --------------------------------------------------------------------------
    def create(self, ref, data: dict[str, Any]) -> None:
        self._writes.append(_Write("create", ref, data))

    def set(self, ref, data: dict[str, Any], merge: bool | list = False) -> None:
        self._writes.append(_Write("set", ref, data, merge))

    def update(self, ref, data: dict[str, Any]) -> None:
        self._writes.append(_Write("update", ref, data))

    def delete(self, ref) -> None:
        self._writes.append(_Write("delete", ref))

    @property
    def has_writes(self) -> bool:
        return bool(self._writes or self.events or self.tasks)

    def discard(self) -> None:
        """Forget every buffered write, event and timer (the service raised)."""
        self._writes.clear()
        self.events.clear()
        self.tasks.clear()

    # ---- effects after commit --------------------------------------------------------------
    def emit(self, type: str, *, tenant: str, data: dict[str, Any], livemode: bool = False,
             event_id: str | None = None) -> outbox.Event:
        """Record a domain event: it exists if and only if this unit commits. Its type and
        payload must be declared in ``shared.platform.catalog`` (checked in tests)."""
        if self.deps.settings.strict_checks:
            catalog.check(type, data)
        event = outbox.new_event(type=type, tenant=tenant, data=data, now=self.now,
                                 livemode=livemode, event_id=event_id)
        self.events.append(event)
        return event

    def schedule_task(self, *, queue: str, function: str, path: str, body: dict[str, Any],
                      schedule_time: dt.datetime | None = None, name: str | None = None) -> None:
        """A Cloud Task enqueued after commit (at least once; give it a deterministic ``name``
        so a redo is refused by the queue, and make its handler idempotent)."""
        if self.deps.settings.strict_checks:
            from shared.platform.manifest import check_task_target
            check_task_target(queue, function)
        self.tasks.append({"queue": queue, "function": function, "path": path, "body": body,
                           "schedule_time": schedule_time, "name": name})

    # ---- commit ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Commit every buffered write atomically. Raises ``Conflicted`` when a precondition
        failed (a concurrent writer): the caller runs the unit again."""
        if self.committed:
            raise RuntimeError("a unit of work commits once")
        if not self.has_writes:
            self.committed = True
            return
        batch = self.db.batch()
        guarded: set[str] = set()
        for w in self._writes:
            before = len(batch._write_pbs)
            if w.op == "create":
                batch.create(w.ref, w.data)
            elif w.op == "set":
                batch.set(w.ref, w.data, merge=w.merge)
            elif w.op == "update":
                batch.update(w.ref, w.data)
            else:
                batch.delete(w.ref)
            path = w.ref.path
            snap = self._snaps.get(path)
            if snap is not None and path not in guarded and w.op != "create":
                guarded.add(path)
                for pb in batch._write_pbs[before:]:  # the write(s) this call added
                    _guard(pb, snap)
        if self.events or self.tasks:
            self._record = outbox.OutboxRecord.build(self.db, self.events, self.tasks, self.now,
                                                     topic=self.deps.settings.events_topic)
            self._record.add_to(batch)
        try:
            batch.commit()
        except CONFLICTS as exc:
            raise Conflicted(type(exc).__name__) from exc
        except gexc.NotFound as exc:  # an update of a document deleted meanwhile
            raise Conflicted("NotFound") from exc
        self.committed = True
        self.commit_time = _commit_time(batch)

    def publish(self) -> None:
        """After commit: enqueue the timers, publish the events in ONE message, and mark the
        outbox record done. A failure leaves the record for the sweeper."""
        if self._record is not None:
            outbox.deliver(self.db, self.deps.publisher, self.deps.tasks, self._record, now=self.now)


def _guard(write_pb, snap) -> None:
    """Make the write conditional on the document being as this unit read it."""
    pre = (types.Precondition(update_time=snap.update_time) if snap.exists
           else types.Precondition(exists=False))
    write_pb._pb.current_document.CopyFrom(pre._pb)


def _commit_time(batch) -> dt.datetime | None:
    ts = getattr(batch, "commit_time", None)
    if ts is None:
        return None
    if isinstance(ts, dt.datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=dt.timezone.utc)
    return ts.ToDatetime(tzinfo=dt.timezone.utc)


def backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt)))


def run_unit(deps, fn: Callable[[UnitOfWork], T], *, attempts: int = MAX_ATTEMPTS,
             now: dt.datetime | None = None) -> T:
    """Run ``fn(uow)``, commit, publish; re-run on a conflict, then raise ``Contention``.

    A ``PayloomError`` raised by ``fn`` discards its writes (unless ``uow.keep_writes_on_error``)
    and propagates."""
    from shared.platform.errors import PayloomError
    for attempt in range(attempts):
        uow = UnitOfWork(deps, now=now, attempt=attempt)
        try:
            result = fn(uow)
        except Conflicted as exc:
            # the unit's code saw reads that cannot all be current (one batch read before a
            # concurrent commit, a later one after it): nothing is committed; run it again
            logs.log(_log, logging.DEBUG, "unit of work saw a concurrent change; running again",
                     attempt=attempt, reason=str(exc))
            backoff(attempt)
            continue
        except PayloomError:
            if uow.keep_writes_on_error and uow.has_writes:
                try:
                    uow.commit()
                except Conflicted:
                    backoff(attempt)
                    continue
                uow.publish()
            raise
        try:
            uow.commit()
        except Conflicted as exc:
            logs.log(_log, logging.DEBUG, "unit of work conflicted; running again",
                     attempt=attempt, reason=str(exc))
            backoff(attempt)
            continue
        uow.publish()
        return result
    raise Contention()
