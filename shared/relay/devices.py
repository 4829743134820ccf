"""Provider devices: the phones that send the SMS, with their FCM tokens (ADR 0043).

``relay_devices/{dev_…}``: the id is derived from a hash of the app's stable per-install
``fingerprint``, so one phone is one document whoever registers it. A device belongs to ONE
provider: another account registering the same phone gets 409 ``device_in_use`` and is
remembered on the device (``accounts_seen``); when ``accounts_per_device_alert`` distinct
accounts have tried it, every one of them is penalised and operators get a
``relay.suspicious_activity`` event (``fraud.many_accounts``). The fingerprint itself is
never stored, only its SHA-256.

The provider's own status choice (``online`` or ``busy``: busy pauses all its SIMs) is kept
apart from liveness: the device is ``offline`` when ``online_until`` (last heartbeat + 16 min)
has passed, computed on read so it is exact between sweeper runs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from shared.platform.clock import unix
from shared.platform.errors import Conflict, NotFound, PermissionDenied, Unprocessable
from shared.platform.ids import derived_id
from shared.relay import availability, fraud, staging
from shared.relay import supply_models as M
from shared.relay.providers import Provider, device_ref, provider_ref
from shared.relay.supply_settings import supply_settings

MAX_ACCOUNTS_SEEN = 20


class DeviceInUse(Conflict):
    code = "device_in_use"


class DeviceBlacklisted(PermissionDenied):
    code = "device_blacklisted"


class DeviceLimit(Unprocessable):
    code = "device_limit_reached"


class DeviceHasSims(Conflict):
    code = "device_has_sims"


def fingerprint_hash(fingerprint: str) -> str:
    return hashlib.sha256(f"relay-device:{fingerprint}".encode()).hexdigest()


def device_id_for(fingerprint: str) -> str:
    return derived_id("dev", "relay-device", fingerprint_hash(fingerprint))


def status(doc: dict[str, Any], now: dt.datetime) -> str:
    if doc.get("blacklisted"):
        return "blacklisted"
    until = doc.get("online_until")
    if until is None or until <= now:
        return "offline"
    return "busy" if doc.get("status_pref") == "busy" else "online"


def resource(doc: dict[str, Any], now: dt.datetime) -> M.Device:
    return M.Device(id=doc["id"], status=status(doc, now), push_token_status=doc["push_token_status"],
                    platform=doc.get("platform") or "android", model=doc.get("model"),
                    app_version=doc.get("app_version"),
                    last_heartbeat=unix(doc["last_heartbeat_at"]) if doc.get("last_heartbeat_at") else None,
                    online_until=unix(doc["online_until"]) if doc.get("online_until") else None,
                    battery=doc.get("battery"), charging=doc.get("charging"), signal=doc.get("signal"),
                    sims=list(doc.get("sim_ids") or []), created=unix(doc["created_at"]))


def owned(uow, provider: Provider, device_id: str) -> tuple[Any, dict[str, Any]]:
    """(ref, doc) of one of the provider's devices, read in ``uow``; someone else's device or
    no device at all is the same 404 (no probing of other providers' ids)."""
    ref = device_ref(uow.db, device_id)
    doc = staging.load(uow, ref)
    if doc is None or doc.get("provider_id") != provider.id or doc.get("retired"):
        raise NotFound(f"No such device: '{device_id}'", param="device_id")
    if doc.get("blacklisted"):
        raise DeviceBlacklisted("This device may not relay messages.")
    return ref, doc


def register(uow, provider: Provider, body: M.RegisterDevice) -> tuple[M.Device, bool]:
    """Register (or re-register, rotating its token) the phone; (device, created)."""
    now, s = uow.now, supply_settings(uow.deps)
    ref = device_ref(uow.db, device_id_for(body.fingerprint))
    pref = provider_ref(uow.db, provider.id)
    doc, pdoc = staging.load_many(uow, [ref, pref])
    if doc is not None and doc["provider_id"] != provider.id:
        _another_account(uow, ref, doc, provider.id, now)
    if doc is not None:
        if doc.get("blacklisted"):
            raise DeviceBlacklisted("This device may not relay messages.")
        if doc.get("retired"):   # the owner brings a retired phone back
            if len(pdoc.get("device_ids") or []) >= s.max_devices_per_provider:
                raise DeviceLimit(f"A provider has at most {s.max_devices_per_provider} devices; "
                                  f"remove one first.")
            doc["retired"] = False
            pdoc["device_ids"] = [*(pdoc.get("device_ids") or []), ref.id]
            staging.stage(uow, pref, pdoc)
        changed = doc.get("push_token") != body.push_token or doc.get("push_token_status") != "active"
        doc.update({"push_token": body.push_token, "push_token_status": "active",
                    "push_token_at": now if changed else doc.get("push_token_at"),
                    "model": body.model or doc.get("model"), "app_version": body.app_version or doc.get("app_version"),
                    "updated_at": now})
        staging.stage(uow, ref, doc)
        if changed:
            availability.set_flag(uow, doc.get("sim_ids") or [], "no_push", False)
        return resource(doc, now), False
    if len(pdoc.get("device_ids") or []) >= s.max_devices_per_provider:
        raise DeviceLimit(f"A provider has at most {s.max_devices_per_provider} devices; remove one first.")
    doc = {"id": ref.id, "provider_id": provider.id, "user_id": provider.user_id,
           "fingerprint_hash": fingerprint_hash(body.fingerprint), "platform": body.platform,
           "model": body.model, "app_version": body.app_version, "push_token": body.push_token,
           "push_token_status": "active", "push_token_at": now, "status_pref": "online",
           "last_heartbeat_at": None, "online_until": None, "battery": None, "charging": None,
           "signal": None, "network": None, "location": None, "sim_ids": [],
           "accounts_seen": [provider.id], "blacklisted": False, "offline_event_for": None,
           "created_at": now, "updated_at": now}
    staging.stage(uow, ref, doc)
    pdoc["device_ids"] = [*(pdoc.get("device_ids") or []), ref.id]
    pdoc["updated_at"] = now
    staging.stage(uow, pref, pdoc)
    return resource(doc, now), True


def _another_account(uow, ref, doc: dict[str, Any], provider_id: str, now: dt.datetime) -> None:
    """Another account tried this phone: remember it, maybe alert, and refuse (409). The
    record is committed although the request fails."""
    s = supply_settings(uow.deps)
    seen = list(doc.get("accounts_seen") or [doc["provider_id"]])
    if provider_id not in seen:
        seen = (seen + [provider_id])[-MAX_ACCOUNTS_SEEN:]
        doc["accounts_seen"] = seen
        doc["updated_at"] = now
        staging.stage(uow, ref, doc)
        if len(seen) >= s.accounts_per_device_alert:
            fraud.many_accounts(uow, doc, seen, now)
        uow.keep_writes_on_error = True
    raise DeviceInUse("This phone is registered to another provider account.", param="fingerprint")


def rotate_token(uow, provider: Provider, device_id: str, token: str) -> M.Device:
    ref, doc = owned(uow, provider, device_id)
    if doc.get("push_token") != token or doc.get("push_token_status") != "active":
        doc.update({"push_token": token, "push_token_status": "active", "push_token_at": uow.now,
                    "push_token_dropped_reason": None, "updated_at": uow.now})
        staging.stage(uow, ref, doc)
        availability.set_flag(uow, doc.get("sim_ids") or [], "no_push", False)
    return resource(doc, uow.now)


def set_status(uow, provider: Provider, device_id: str, wanted: str) -> M.Device:
    """``busy`` pauses every SIM of the device (no new jobs); ``online`` resumes them."""
    ref, doc = owned(uow, provider, device_id)
    if doc.get("status_pref") != wanted:
        doc.update({"status_pref": wanted, "updated_at": uow.now})
        staging.stage(uow, ref, doc)
        availability.set_flag(uow, doc.get("sim_ids") or [], "busy", wanted == "busy")
    return resource(doc, uow.now)


def retire(uow, provider: Provider, device_id: str) -> M.Device:
    """The provider stops using this phone (it must hold no SIM: move or remove them first).
    The record stays, still bound to the provider: another account registering the same phone
    is still refused and remembered; the owner may bring it back by registering it again."""
    ref, doc = owned(uow, provider, device_id)
    if doc.get("sim_ids"):
        raise DeviceHasSims("Move or remove this device's SIMs first.", param="device_id")
    doc.update({"retired": True, "push_token": None, "push_token_status": "dropped",
                "push_token_dropped_reason": "retired", "updated_at": uow.now})
    staging.stage(uow, ref, doc)
    pref = provider_ref(uow.db, provider.id)
    pdoc = staging.load(uow, pref)
    pdoc["device_ids"] = [d for d in pdoc.get("device_ids") or [] if d != device_id]
    pdoc["updated_at"] = uow.now
    staging.stage(uow, pref, pdoc)
    return resource(doc, uow.now)


def get(uow, provider: Provider, device_id: str) -> M.Device:
    _ref, doc = owned(uow, provider, device_id)
    return resource(doc, uow.now)


def list_devices(db, provider: Provider, now: dt.datetime) -> list[M.Device]:
    refs = [device_ref(db, d) for d in provider.device_ids]
    docs = [s.to_dict() for s in db.get_all(refs) if s.exists] if refs else []
    return [resource(d, now) for d in sorted(docs, key=lambda d: d["created_at"])]
