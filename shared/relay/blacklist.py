"""The relay blacklist: providers, devices and SIMs that may not relay, recipients that may not
be texted (ADR 0043).

``relay_blacklist/{bl_…}``: the id is derived from (kind, value), so an entry is found by one
read (``is_blocked_recipient`` costs one ``get`` per message) and adding it twice is harmless.
A recipient is stored as a SHA-256 of its E.164 number plus a masked copy for operators.

Blacklisting a provider, device or SIM also flags the availability documents it covers in the
same commit (so matching stops at once) and marks the provider, device or SIM record; lifting
the entry clears those flags. Admin routes take the platform's service credential.
"""
from __future__ import annotations

import hashlib
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from shared.identity.factors.phone import mask, parse_phone
from shared.platform.clock import unix
from shared.platform.errors import NotFound
from shared.platform.ids import derived_id, is_id
from shared.relay import availability, staging
from shared.relay import supply_models as M
from shared.relay.providers import device_ref, provider_ref, sim_ref

COLLECTION = "relay_blacklist"
FLAG = {"provider": "bl_provider", "device": "bl_device", "sim": "bl_sim"}
PREFIX = {"provider": "prv", "device": "dev", "sim": "sim"}


def recipient_key(e164: str) -> str:
    return hashlib.sha256(f"relay-recipient:{e164}".encode()).hexdigest()


def entry_id(kind: str, key: str) -> str:
    return derived_id("bl", "relay-blacklist", kind, key)


def entry_ref(db, kind: str, key: str):
    return db.collection(COLLECTION).document(entry_id(kind, key))


def is_blocked_recipient(db, e164: str) -> bool:
    """Whether texts to this E.164 number are refused (one read)."""
    return entry_ref(db, "recipient", recipient_key(e164)).get().exists


def is_blacklisted(db, kind: str, value: str) -> bool:
    return entry_ref(db, kind, value).get().exists


def _target(uow, kind: str, value: str) -> tuple[str, str, Any]:
    """(key, shown value, record ref or None) of what an entry names; 404 if it names nothing."""
    if kind == "recipient":
        e164 = parse_phone(value, param="value").e164
        return recipient_key(e164), mask(e164), None
    if not is_id(value, PREFIX[kind]):
        raise NotFound(f"No such {kind}: {value[:64]!r}", param="value")
    ref = {"provider": provider_ref, "device": device_ref, "sim": sim_ref}[kind](uow.db, value)
    if staging.load(uow, ref) is None:
        raise NotFound(f"No such {kind}: {value[:64]!r}", param="value")
    return value, value, ref


def _covered_sims(uow, kind: str, value: str, record: dict[str, Any]) -> list[str]:
    if kind == "sim":
        return [value]
    field = "provider_id" if kind == "provider" else "device_id"
    q = uow.db.collection(availability.COLLECTION).where(filter=FieldFilter(field, "==", value))
    return [snap.id for snap in uow.query(q)]


def _apply(uow, kind: str, value: str, ref, on: bool) -> None:
    record = staging.load(uow, ref)
    if record is None:
        return
    if kind == "provider":
        record["status"] = "blacklisted" if on else "active"
    else:
        record["blacklisted"] = on
    record["updated_at"] = uow.now
    staging.stage(uow, ref, record)
    availability.set_flag(uow, _covered_sims(uow, kind, value, record), FLAG[kind], on)


def add(uow, body: M.BlacklistRequest, *, actor: str = "service") -> tuple[M.BlacklistEntry, bool]:
    key, shown, ref = _target(uow, body.kind, body.value)
    eref = entry_ref(uow.db, body.kind, key)
    existing = staging.load(uow, eref)
    if existing is not None:
        return resource(existing), False
    doc = {"id": eref.id, "kind": body.kind, "key": key, "value": shown, "reason": body.reason,
           "created_at": uow.now, "created_by": actor}
    staging.stage(uow, eref, doc)
    if ref is not None:
        _apply(uow, body.kind, key, ref, True)
    return resource(doc), True


def remove(uow, entry: str) -> M.BlacklistEntry:
    eref = uow.db.collection(COLLECTION).document(entry)
    doc = staging.load(uow, eref)
    if doc is None:
        raise NotFound(f"No such blacklist entry: '{entry}'", param="entry_id")
    uow.delete(eref)
    if doc["kind"] in FLAG:
        ref = {"provider": provider_ref, "device": device_ref, "sim": sim_ref}[doc["kind"]](uow.db, doc["key"])
        _apply(uow, doc["kind"], doc["key"], ref, False)
    return resource(doc)


def resource(doc: dict[str, Any]) -> M.BlacklistEntry:
    return M.BlacklistEntry(id=doc["id"], kind=doc["kind"], value=doc["value"], reason=doc["reason"],
                            created=unix(doc["created_at"]), created_by=doc.get("created_by"))


def list_entries(db, *, kind: str | None, limit: int) -> M.BlacklistList:
    q = db.collection(COLLECTION)
    if kind:
        q = q.where(filter=FieldFilter("kind", "==", kind))
    q = q.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
    return M.BlacklistList(data=[resource(s.to_dict()) for s in q.stream()])
