"""Provider SIMs: added by proving the number with a texted code, then tuned (ADR 0043).

Adding a SIM is identity's phone OTP with its own purpose (``relay_sim``), bound to the
signed-in user: ``start`` texts a code through the same pumping protections as sign-in
(allowed countries, per-number, per-block and per-country limits, resend interval); ``verify``
consumes it and creates, in the same commit, the SIM (``relay_sims/{sim_…}``, id derived from
the number: one number is one SIM, held by one provider at a time) and its availability
document, and links it to its device and provider. The carrier is detected from the number
(``carriers.relay_carrier``). A number held by another provider is 409 ``sim_in_use`` at
verify time (only someone who received the code learns it).

The SIM's mode (test or live) is the caller's ``Payloom-Mode`` when it is verified (test by
default, as everywhere): test-mode messages are only ever matched to test-mode SIMs.

Per-SIM settings: ``per_minute``/``per_hour``/``per_day`` caps (defaults 6/60/100; carriers
tolerate about 100 a day), ``active_hours`` in Asia/Phnom_Penh time, ``enabled``. Removing a
SIM keeps its history (stats, penalties): re-adding the number does not wash its reputation.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.identity.factors import otp
from shared.identity.factors.phone import mask, parse_phone
from shared.identity.responses import PhoneVerification
from shared.platform.clock import unix
from shared.platform.errors import Conflict, InvalidRequest, NotFound, PermissionDenied, Unprocessable
from shared.platform.ids import derived_id
from shared.relay import availability, carriers, devices, heartbeats, staging
from shared.relay import supply_models as M
from shared.relay.providers import Provider, provider_ref, sim_ref
from shared.relay.supply_settings import TIME_ZONE, SupplySettings, supply_settings

PURPOSE = "relay_sim"


class SimInUse(Conflict):
    code = "sim_in_use"


class SimBlacklisted(PermissionDenied):
    code = "sim_blacklisted"


class SimLimit(Unprocessable):
    code = "sim_limit_reached"


def sim_id_for(e164: str) -> str:
    return derived_id("sim", "relay-sim", e164)


def _caps(body: M.SimCaps, current: dict[str, int] | None, s: SupplySettings) -> dict[str, int]:
    """The caps after ``body`` (unset fields keep ``current`` or the defaults); checked."""
    base = current or {"per_minute": s.default_per_minute, "per_hour": s.default_per_hour,
                       "per_day": s.default_per_day, "in_flight": s.in_flight_per_sim}
    caps = {**base}
    for name in ("per_minute", "per_hour", "per_day"):
        value = getattr(body, name)
        if value is not None:
            caps[name] = value
    limits = {"per_minute": s.max_per_minute, "per_hour": s.max_per_hour, "per_day": s.max_per_day}
    for name, top in limits.items():
        if caps[name] > top:
            raise InvalidRequest(f"{name} is at most {top}.", code="caps_invalid", param=name)
    if not caps["per_minute"] <= caps["per_hour"] <= caps["per_day"]:
        raise InvalidRequest("Caps must satisfy per_minute <= per_hour <= per_day.",
                             code="caps_invalid", param="per_hour")
    caps.setdefault("in_flight", s.in_flight_per_sim)
    return caps


def start(uow, provider: Provider, body: M.StartSim, *, user_id: str) -> PhoneVerification:
    """Text a code to the SIM's number (the device must be the caller's)."""
    s = supply_settings(uow.deps)
    devices.owned(uow, provider, body.device)
    if len(provider.sim_ids) >= s.max_sims_per_provider:
        raise SimLimit(f"A provider has at most {s.max_sims_per_provider} SIMs; remove one first.")
    number = parse_phone(body.phone)
    expires_at = otp.issue_code(uow, number, PURPOSE, user_id=user_id)
    return otp.code_sent(uow.deps, number, PURPOSE, expires_at)


def verify(uow, provider: Provider, body: M.VerifySim, *, user_id: str, ip: str | None,
           livemode: bool) -> tuple[M.Sim, bool]:
    """Consume the code and add (or re-add) the SIM; (sim, created)."""
    now, s = uow.now, supply_settings(uow.deps)
    number = parse_phone(body.phone)
    sref = sim_ref(uow.db, sim_id_for(number.e164))
    dref = devices.device_ref(uow.db, body.device)
    pref = provider_ref(uow.db, provider.id)
    aref = availability.availability_ref(uow.db, sref.id)
    sim_doc, ddoc, pdoc, old = staging.load_many(uow, [sref, dref, pref, aref])
    otp.verify_code(uow, phone=number.e164, code=body.code, purpose=PURPOSE, ip=ip, user_id=user_id)
    uow.keep_writes_on_error = True   # the code is spent whatever happens next
    _ref, ddoc = devices.owned(uow, provider, body.device)
    if sim_doc is not None and sim_doc.get("blacklisted"):
        raise SimBlacklisted("This SIM may not relay messages.")
    if sim_doc is not None and sim_doc["status"] != "removed" and sim_doc["provider_id"] != provider.id:
        raise SimInUse("This number is registered to another provider.", param="phone")
    re_adding = sim_doc is not None and sim_doc["status"] == "removed"
    if sim_doc is not None and not re_adding:   # already ours: answer it (idempotent)
        uow.keep_writes_on_error = False
        return resource(sim_doc, old, now, s), False
    sim_ids = list(pdoc.get("sim_ids") or [])
    if len(sim_ids) >= s.max_sims_per_provider:
        raise SimLimit(f"A provider has at most {s.max_sims_per_provider} SIMs; remove one first.")
    if len(ddoc.get("sim_ids") or []) >= s.max_sims_per_device:
        raise SimLimit(f"A device holds at most {s.max_sims_per_device} SIMs.")
    uow.keep_writes_on_error = False
    carrier = carriers.relay_carrier(number)
    caps = _caps(body, None, s)
    hours = body.active_hours.minutes() if body.active_hours else None
    sim_doc = {"id": sref.id, "provider_id": provider.id, "user_id": user_id, "device_id": ddoc["id"],
               "e164": number.e164, "carrier": carrier,
               "operator": number.carrier.key if number.carrier else None, "livemode": livemode,
               "label": body.label, "status": "active", "blacklisted": False, "verified_at": now,
               "created_at": now, "updated_at": now}
    staging.stage(uow, sref, sim_doc)
    online = ddoc.get("online_until") if ddoc.get("online_until") and ddoc["online_until"] > now else None
    state = availability.new_state(
        sim_id=sref.id, provider_id=provider.id, device_id=ddoc["id"], carrier=carrier,
        livemode=livemode, caps=caps, active_hours=hours, now=now,
        push_ok=ddoc.get("push_token_status") == "active", online_until=online,
        provider_penalty=pdoc.get("penalty") or 0.0, provider_penalty_at=pdoc.get("penalty_at"),
        flags={"busy": ddoc.get("status_pref") == "busy", "bl_device": bool(ddoc.get("blacklisted"))},
        device_health=heartbeats.device_health(ddoc))
    if old is not None:   # a re-added number keeps its record
        for key in ("stats", "penalty", "penalty_at", "latencies_ms", "flags_last", "windows", "created_at"):
            state[key] = old.get(key, state[key])
        state["flags"]["bl_sim"] = bool(old.get("flags", {}).get("bl_sim"))
    availability.evaluate(state, now, s)
    availability.stage(uow, state)
    ddoc["sim_ids"] = [*(ddoc.get("sim_ids") or []), sref.id]
    ddoc["updated_at"] = now
    staging.stage(uow, dref, ddoc)
    pdoc["sim_ids"] = [*sim_ids, sref.id]
    pdoc["updated_at"] = now
    staging.stage(uow, pref, pdoc)
    return resource(sim_doc, state, now, s), True


def owned(uow, provider: Provider, sim_id: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(ref, sim doc, availability doc) of one of the provider's SIMs; otherwise 404."""
    ref = sim_ref(uow.db, sim_id)
    doc, avail = staging.load_many(uow, [ref, availability.availability_ref(uow.db, sim_id)])
    if doc is None or doc.get("provider_id") != provider.id or doc["status"] == "removed" or avail is None:
        raise NotFound(f"No such SIM: '{sim_id}'", param="sim_id")
    return ref, doc, avail


def get(uow, provider: Provider, sim_id: str) -> M.Sim:
    _ref, doc, avail = owned(uow, provider, sim_id)
    return resource(doc, avail, uow.now, supply_settings(uow.deps))


def list_sims(uow, provider: Provider) -> list[M.Sim]:
    s, now = supply_settings(uow.deps), uow.now
    ids = list(provider.sim_ids)
    docs = staging.load_many(uow, [sim_ref(uow.db, i) for i in ids]
                             + [availability.availability_ref(uow.db, i) for i in ids])  # one read
    out = []
    for doc, avail in zip(docs[:len(ids)], docs[len(ids):]):
        if doc is not None and avail is not None and doc["status"] != "removed":
            out.append(resource(doc, avail, now, s))
    return sorted(out, key=lambda r: r.created)


def update(uow, provider: Provider, sim_id: str, body: M.UpdateSim) -> M.Sim:
    now, s = uow.now, supply_settings(uow.deps)
    ref, doc, avail = owned(uow, provider, sim_id)
    fields = body.model_fields_set
    avail["caps"] = _caps(body, avail["caps"], s)
    if "active_hours" in fields:
        avail["active_hours"] = body.active_hours.minutes() if body.active_hours else None
    if body.enabled is not None:
        avail.setdefault("flags", {})["disabled"] = not body.enabled
    if body.label is not None:
        doc["label"] = body.label
    if body.device is not None and body.device != doc["device_id"]:
        _move(uow, provider, doc, avail, body.device, s)
    doc["updated_at"] = now
    staging.stage(uow, ref, doc)
    availability.evaluate(avail, now, s)
    availability.stage(uow, avail)
    return resource(doc, avail, now, s)


def _move(uow, provider: Provider, doc, avail, device_id: str, s: SupplySettings) -> None:
    """The SIM moved to another of the provider's phones: it takes that phone's liveness."""
    now = uow.now
    new_ref, new_dev = devices.owned(uow, provider, device_id)
    if len(new_dev.get("sim_ids") or []) >= s.max_sims_per_device:
        raise SimLimit(f"A device holds at most {s.max_sims_per_device} SIMs.")
    old_ref = devices.device_ref(uow.db, doc["device_id"])
    old_dev = staging.load(uow, old_ref)
    if old_dev is not None:
        old_dev["sim_ids"] = [i for i in old_dev.get("sim_ids") or [] if i != doc["id"]]
        staging.stage(uow, old_ref, old_dev)
    new_dev["sim_ids"] = [*(new_dev.get("sim_ids") or []), doc["id"]]
    staging.stage(uow, new_ref, new_dev)
    doc["device_id"] = avail["device_id"] = device_id
    until = new_dev.get("online_until")
    avail.update({"online_until": until if until and until > now else None, "offline_seen": False,
                  **heartbeats.device_health(new_dev)})
    avail["flags"].update({"busy": new_dev.get("status_pref") == "busy",
                           "no_push": new_dev.get("push_token_status") != "active",
                           "bl_device": bool(new_dev.get("blacklisted"))})


def remove(uow, provider: Provider, sim_id: str) -> M.Sim:
    """Stop relaying through the SIM (jobs already assigned finish); history is kept."""
    now, s = uow.now, supply_settings(uow.deps)
    ref, doc, avail = owned(uow, provider, sim_id)
    doc.update({"status": "removed", "removed_at": now, "updated_at": now})
    staging.stage(uow, ref, doc)
    avail.setdefault("flags", {})["removed"] = True
    availability.evaluate(avail, now, s)
    availability.stage(uow, avail)
    for r in (provider_ref(uow.db, provider.id), devices.device_ref(uow.db, doc["device_id"])):
        holder = staging.load(uow, r)
        if holder is not None:
            holder["sim_ids"] = [i for i in holder.get("sim_ids") or [] if i != sim_id]
            holder["updated_at"] = now
            staging.stage(uow, r, holder)
    return resource(doc, avail, now, s)


_STATUS = {"removed": "removed", "bl_provider": "blacklisted", "bl_device": "blacklisted",
           "bl_sim": "blacklisted", "disabled": "disabled", "busy": "busy", "no_push": "unreachable",
           "low_reputation": "low_reputation", "offline": "offline", "inactive_hours": "inactive_hours",
           "quota_day": "quota_reached"}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def resource(doc: dict[str, Any], avail: dict[str, Any], now: dt.datetime, s: SupplySettings) -> M.Sim:
    from shared.relay import reputation
    reason = availability.lasting_block(avail, now, s)
    used = availability.usage(avail, now)
    _smoothed, raw, _n = reputation.success_rate(avail.get("stats") or {}, now, s)
    hours = avail.get("active_hours")
    caps = avail["caps"]
    return M.Sim(
        id=doc["id"], phone=mask(doc["e164"]), carrier=doc["carrier"],
        carrier_name=carriers.NAMES.get(doc["carrier"], "Other"), livemode=doc["livemode"],
        device=doc["device_id"], label=doc.get("label"),
        enabled=not (avail.get("flags") or {}).get("disabled"),
        status=_STATUS.get(reason, "online") if reason else "online",
        caps=M.SimCapsOut(per_minute=caps["per_minute"], per_hour=caps["per_hour"], per_day=caps["per_day"]),
        usage=M.SimUsage(minute=used["m"], hour=used["h"], day=used["d"]),
        active_hours=M.ActiveHoursOut(start=_hhmm(hours["start"]), end=_hhmm(hours["end"]),
                                      time_zone=TIME_ZONE) if hours else None,
        reputation=round(reputation.reputation(avail, now, s), 4),
        success_rate=None if raw is None else round(raw, 4), created=unix(doc["created_at"]))
