"""Heartbeats and liveness: a phone checks in every 15 minutes and is offline 16 minutes after
its last check-in (httpSMS's rule; ADR 0043).

A heartbeat is one unit of work: the device and the availability documents of its SIMs are
read in one batch and written in one commit (``online_until``, battery, signal, charging).
Liveness is computed from ``online_until`` wherever it is read (the device resource, matching),
so it is exact to the second between sweeper runs. The sweeper (every minute) only catches up
the index: it rewrites availability documents whose ``recheck_at`` passed (offline, active
hours, day quota, stale reservations) and emits ``relay.device.offline`` once per missed
window.

Privacy: a location, if the app sends one, is stored rounded to 2 decimal places (about 1 km)
with its time; the raw coordinates and accuracy are not kept, it is never shown to clients
and it is overwritten by the next heartbeat (no history).
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.platform import logs
from shared.platform.clock import unix
from shared.platform.uow import run_unit
from shared.relay import availability, devices, staging
from shared.relay import supply_models as M
from shared.relay.providers import Provider, device_ref
from shared.relay.supply_settings import supply_settings

_log = logs.get_logger(__name__)
LOCATION_DECIMALS = 2
SWEEP_PAGE = 200
SWEEP_MAX = 2000


def coarse(location: M.Location | None) -> dict[str, float] | None:
    if location is None:
        return None
    return {"lat": round(location.lat, LOCATION_DECIMALS), "lng": round(location.lng, LOCATION_DECIMALS)}


def heartbeat(uow, provider: Provider, device_id: str, body: M.Heartbeat, *,
              khmer: bool = False) -> M.HeartbeatAck:
    now, s = uow.now, supply_settings(uow.deps)
    ref, doc = devices.owned(uow, provider, device_id)
    until = now + dt.timedelta(seconds=s.offline_after_seconds)
    health = {"battery": body.battery, "charging": body.charging, "signal": body.signal}
    doc.update({**health, "network": body.network, "last_heartbeat_at": now, "online_until": until,
                "updated_at": now})
    if body.location is not None:
        doc.update({"location": coarse(body.location), "location_at": now})
    staging.stage(uow, ref, doc)
    for sim_doc in availability.load_many(uow, doc.get("sim_ids") or []).values():
        if sim_doc is None:
            continue
        sim_doc.update({**health, "online_until": until, "offline_seen": False})
        availability.evaluate(sim_doc, now, s)
        availability.stage(uow, sim_doc)
    state = devices.status(doc, now)
    message_km = None
    if khmer:
        from shared.relay.khmer import status_km
        message_km = status_km(state)
    return M.HeartbeatAck(device=doc["id"], status=state, online_until=unix(until),
                          next_heartbeat_in=s.heartbeat_interval_seconds, message_km=message_km)


# --- the sweeper's pass ---------------------------------------------------------------------

def sweep(deps, now: dt.datetime) -> tuple[int, int]:
    """Rewrite availability documents due for a recheck; emit offline events. Returns
    (documents rechecked, devices that went offline)."""
    db = deps.db
    due = (db.collection(availability.COLLECTION).where(filter=FieldFilter("recheck_at", "<=", now))
           .order_by("recheck_at").limit(SWEEP_PAGE))
    rechecked, offline_devices = 0, set()
    seen: set[str] = set()
    while rechecked < SWEEP_MAX:
        ids = [s.id for s in due.stream() if s.id not in seen]
        if not ids:
            break
        seen.update(ids)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for device_id in pool.map(lambda sid: _recheck(deps, sid, now), ids):
                if device_id:
                    offline_devices.add(device_id)
        rechecked += len(ids)
    went = 0
    for device_id in sorted(offline_devices):
        try:
            went += run_unit(deps, lambda uow: _offline_event(uow, device_id), now=now)
        except Exception:  # noqa: BLE001 - one device's failure must not stop the pass
            _log.exception("offline event for a relay device failed")
    return rechecked, went


def _recheck(deps, sim_id: str, now: dt.datetime) -> str | None:
    """One SIM: expire stale reservations, close delivery-report windows, re-evaluate. Returns
    its device id when this pass is the one that saw it go offline."""
    def unit(uow):
        s = supply_settings(uow.deps)
        doc = availability.load(uow, sim_id)
        if doc is None or (doc.get("recheck_at") and doc["recheck_at"] > now):
            return None
        for job_id, at in list((doc.get("in_flight_jobs") or {}).items()):
            if at + dt.timedelta(seconds=s.stale_in_flight_seconds) <= now:
                del doc["in_flight_jobs"][job_id]
                availability.finish(uow, doc, job_id, "timeout", now)
        for job_id, at in list((doc.get("sent_jobs") or {}).items()):
            if at + dt.timedelta(seconds=s.sent_report_window_seconds) <= now:
                del doc["sent_jobs"][job_id]
                availability.finish(uow, doc, job_id, "unconfirmed", now)
        went_offline = None
        until = doc.get("online_until")
        if until is not None and until <= now and not doc.get("offline_seen"):
            doc["offline_seen"] = True
            went_offline = doc["device_id"]
        availability.evaluate(doc, now, s)
        availability.stage(uow, doc)
        return went_offline
    try:
        return run_unit(deps, unit, now=now)
    except Exception:  # noqa: BLE001
        logs.log(_log, logging.WARNING, "relay availability recheck failed", sim_id=sim_id)
        return None


def _offline_event(uow, device_id: str) -> int:
    ref = device_ref(uow.db, device_id)
    doc = staging.load(uow, ref)
    if doc is None or devices.status(doc, uow.now) != "offline":
        return 0
    marker = doc.get("last_heartbeat_at")
    if doc.get("offline_event_for") == marker:
        return 0
    doc.update({"offline_event_for": marker, "offline_since": doc.get("online_until"), "updated_at": uow.now})
    staging.stage(uow, ref, doc)
    uow.emit(M.DEVICE_OFFLINE.name, tenant=doc["user_id"],
             data={"object": devices.resource(doc, uow.now).model_dump(mode="json")})
    return 1


def device_health(doc: dict[str, Any] | None) -> dict[str, Any]:
    """What a new SIM's availability document copies from its device."""
    if not doc:
        return {}
    return {k: doc.get(k) for k in ("battery", "charging", "signal")}
