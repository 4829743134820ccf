"""The custody audit log: append-only records chained by SHA-256, one chain per mode.

Nothing in Payloom kept such a log (the ledger audit recomputes balances; identity emits
events), so custody has its own. Every proposal, approval, rejection, cancellation, execution,
confirmation and failure of a treasury movement appends one record IN THE SAME unit of work as
the state change it describes, so a record exists if and only if the change committed.

Layout: ``custody_audit/{test|live}`` is the head (``seq``, ``hash`` of the last record);
``custody_audit/{mode}/custody_audit_records/{seq:012d}`` holds ``seq``, ``prev`` (the
previous record's hash; 64 zeros for the first), ``at`` (RFC 3339 with microseconds),
``action``, ``actor``, ``subject`` (the object's id), ``data`` (JSON values, no floats) and
``hash`` = SHA-256(canonical JSON of the other fields). Appending reads the head (the unit's
precondition serialises appenders: custody actions are a few per hour, not a hot path) and
``create``s the next record, so two appenders can never take one sequence number.

``verify`` walks a chain and reports what an edit leaves behind: a record whose content no
longer matches its hash (altered), a missing sequence number or a ``prev`` that does not match
(deleted or inserted), a head that does not match the last record (the tail was cut). Someone
who can rewrite the whole suffix AND the head is not detected by the chain alone: the head's
hash is also logged at every verification, so an outside copy (Cloud Logging) anchors it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from shared.platform import logs

COLLECTION, RECORDS = "custody_audit", "custody_audit_records"
GENESIS = "0" * 64
_log = logs.get_logger(__name__)


def mode_key(livemode: bool) -> str:
    return "live" if livemode else "test"


def head_ref(db, livemode: bool):
    return db.collection(COLLECTION).document(mode_key(livemode))


def record_ref(db, livemode: bool, seq: int):
    return head_ref(db, livemode).collection(RECORDS).document(f"{seq:012d}")


def _canonical(value: Any) -> Any:
    """JSON-stable form of a record's data: Firestore gives back what we stored, but tuples
    and datetimes must be spelled one way before hashing."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"audit data must be JSON values, not {type(value).__name__}")


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record without its own hash (pure)."""
    body = {k: _canonical(record.get(k)) for k in
            ("seq", "prev", "at", "action", "actor", "subject", "data")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def append(uow, *, livemode: bool, action: str, actor: dict[str, Any] | str,
           subject: str, data: dict[str, Any]) -> dict[str, Any]:
    """Append one record in ``uow``: read the head, create the next record, move the head.
    One record per unit (a unit describes one change; two appends would write the head
    twice in one commit)."""
    db = uow.db
    href = head_ref(db, livemode)
    snap = uow.get(href)
    head = snap.to_dict() if snap.exists else {}
    seq, prev = int(head.get("seq") or 0), head.get("hash") or GENESIS
    record = {"seq": seq + 1, "prev": prev, "at": uow.now.isoformat(), "action": action,
              "actor": actor if isinstance(actor, dict) else {"system": actor},
              "subject": subject, "data": _canonical(data), "livemode": livemode}
    record["hash"] = record_hash(record)
    uow.create(record_ref(db, livemode, record["seq"]), record)
    # the head was read: its write carries the precondition (must-not-exist or update_time),
    # so concurrent appenders serialise and the loser's unit runs again
    uow.set(href, {"seq": record["seq"], "hash": record["hash"], "livemode": livemode,
                   "updated_at": uow.now})
    return record


def verify(db, livemode: bool) -> dict[str, Any]:
    """Walk the mode's chain in sequence order; returns ``{ok, records, head_seq, head_hash,
    problems: [{seq, problem}]}`` (``altered``, ``missing``, ``broken_link``,
    ``head_mismatch``). Reads every record: an operator's check, not a request path."""
    head_snap = head_ref(db, livemode).get()
    head = head_snap.to_dict() if head_snap.exists else {"seq": 0, "hash": GENESIS}
    problems: list[dict[str, Any]] = []
    expected_seq, prev_hash, count = 1, GENESIS, 0
    query = head_ref(db, livemode).collection(RECORDS).order_by("seq")
    for snap in query.stream():
        rec = snap.to_dict()
        count += 1
        seq = rec.get("seq")
        if not isinstance(seq, int) or snap.id != f"{seq:012d}":
            problems.append({"seq": seq, "problem": "altered"})
            continue
        if seq != expected_seq:
            problems.append({"seq": expected_seq, "problem": "missing"})
        if rec.get("prev") != prev_hash:
            problems.append({"seq": seq, "problem": "broken_link"})
        if record_hash(rec) != rec.get("hash"):
            problems.append({"seq": seq, "problem": "altered"})
        expected_seq, prev_hash = seq + 1, rec.get("hash")
    if int(head.get("seq") or 0) != expected_seq - 1 or (head.get("hash") or GENESIS) != prev_hash:
        problems.append({"seq": int(head.get("seq") or 0), "problem": "head_mismatch"})
    report = {"ok": not problems, "records": count, "head_seq": int(head.get("seq") or 0),
              "head_hash": head.get("hash") or GENESIS, "problems": problems[:50]}
    logs.log(_log, logging.INFO if report["ok"] else logging.ERROR, "custody audit verified",
             mode=mode_key(livemode), ok=report["ok"], records=count,
             head_seq=report["head_seq"], head_hash=report["head_hash"],
             problems=len(problems))
    return report


def records_query(db, livemode: bool):
    """The mode's records (paginated by ``seq``: a single-field order, no composite index)."""
    return head_ref(db, livemode).collection(RECORDS)
