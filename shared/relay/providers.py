"""Providers: a signed-in user who lends phones and SIMs to the relay network (ADR 0043).

``relay_providers/{prv_…}``: the id is derived from the user id, so a user is at most one
provider and finding the caller's record costs one read (no query, no index). It holds the
status (``active`` | ``blacklisted``), the ids of its devices and SIMs (a handful: capped by
settings), and a provider-level fraud penalty that every one of its SIMs carries into its
reputation (``fraud.py``).

Also here, for dispatch (R2): ``require_provider`` (the phone's caller), ``sim`` (a SIM's
routing facts), ``device_push_token`` and ``drop_push_token`` (FCM said the token is dead).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from shared.identity.factors.phone import mask
from shared.platform.auth import Principal
from shared.platform.clock import unix
from shared.platform.errors import PermissionDenied
from shared.platform.ids import derived_id
from shared.relay import availability, reputation, staging
from shared.relay import supply_models as M
from shared.relay.supply_settings import supply_settings

COLLECTION = "relay_providers"
SIMS = "relay_sims"
DEVICES = "relay_devices"


@dataclasses.dataclass(frozen=True)
class Provider:
    id: str
    user_id: str
    status: str
    display_name: str | None
    device_ids: tuple[str, ...]
    sim_ids: tuple[str, ...]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> "Provider":
        return cls(id=doc["id"], user_id=doc["user_id"], status=doc["status"],
                   display_name=doc.get("display_name"), device_ids=tuple(doc.get("device_ids") or ()),
                   sim_ids=tuple(doc.get("sim_ids") or ()))


@dataclasses.dataclass(frozen=True)
class Sim:
    id: str
    provider_id: str
    device_id: str
    carrier: str
    livemode: bool
    status: str          # active | removed
    phone_masked: str


def provider_id_for(user_id: str) -> str:
    return derived_id("prv", "relay-provider", user_id)


def provider_ref(db, provider_id: str):
    return db.collection(COLLECTION).document(provider_id)


def sim_ref(db, sim_id: str):
    return db.collection(SIMS).document(sim_id)


def device_ref(db, device_id: str):
    return db.collection(DEVICES).document(device_id)


class NotAProvider(PermissionDenied):
    code = "not_a_provider"


class ProviderBlacklisted(PermissionDenied):
    code = "provider_blacklisted"


def _check(principal: Principal, doc: dict[str, Any] | None) -> dict[str, Any]:
    if doc is None:
        raise NotAProvider("Register as a provider first (POST /v1/relay/providers).")
    if doc["status"] == "blacklisted":
        raise ProviderBlacklisted("This provider account is suspended.")
    return doc


def _require_user(principal: Principal) -> None:
    if principal.kind != "user":
        raise PermissionDenied("Provider routes take a signed-in user.", code="principal_not_allowed")


def require_provider(deps, principal: Principal) -> Provider:
    """The signed-in user's provider record, or 403 (``not_a_provider``,
    ``provider_blacklisted``, or a credential that is not a user's)."""
    _require_user(principal)
    snap = provider_ref(deps.db, provider_id_for(principal.id)).get()
    return Provider.of(_check(principal, snap.to_dict() if snap.exists else None))


def load_for_update(uow, principal: Principal, *, allow_blacklisted: bool = False) -> tuple[Any, dict[str, Any]]:
    """(ref, doc) of the caller's provider record read in ``uow`` (its writes are guarded)."""
    _require_user(principal)
    ref = provider_ref(uow.db, provider_id_for(principal.id))
    doc = staging.load(uow, ref)
    if allow_blacklisted and doc is not None:
        return ref, doc
    return ref, _check(principal, doc)


def register(uow, principal: Principal, body: M.RegisterProvider) -> tuple[M.Provider, bool]:
    """Make the signed-in user a provider (idempotent: an existing record is returned)."""
    _require_user(principal)
    now = uow.now
    ref = provider_ref(uow.db, provider_id_for(principal.id))
    existing = staging.load(uow, ref)
    if existing is not None:
        doc = _check(principal, existing)
        return resource(uow.db, doc, now, s=supply_settings(uow.deps)), False
    doc = {"id": ref.id, "user_id": principal.id, "status": "active",
           "display_name": body.display_name, "device_ids": [], "sim_ids": [],
           "penalty": 0.0, "penalty_at": None, "flags_last": {}, "created_at": now, "updated_at": now}
    staging.stage(uow, ref, doc)
    return resource(uow.db, doc, now, s=supply_settings(uow.deps), stats={}), True


def provider_stats(db, provider_id: str, now: dt.datetime, days: int) -> dict[str, dict[str, int]]:
    """The provider's day counters over the window, keyed like a SIM's ``stats``."""
    col = db.collection(availability.PROVIDER_STATS)
    keys = reputation.window_keys(now, days)
    snaps = db.get_all([col.document(f"{provider_id}:{k}") for k in keys])
    return {s.id.rsplit(":", 1)[1]: {k: v for k, v in (s.to_dict() or {}).items() if isinstance(v, int)}
            for s in snaps if s.exists}


def resource(db, doc: dict[str, Any], now: dt.datetime, *, s,
             stats: dict[str, dict[str, int]] | None = None, khmer: bool = False) -> M.Provider:
    if stats is None:
        stats = provider_stats(db, doc["id"], now, s.stats_window_days)
    smoothed, raw, _n = reputation.success_rate(stats, now, s)
    penalty = reputation.decayed(doc.get("penalty") or 0.0, doc.get("penalty_at"), now,
                                 s.penalty_half_life_hours)
    rep = max(0.0, min(1.0, smoothed * (1.0 - min(1.0, penalty))))
    delivered = reputation.totals(stats, now, s.stats_window_days)["d"]
    message_km = None
    if khmer:
        from shared.relay.khmer import status_km
        message_km = status_km("provider_" + doc["status"])
    return M.Provider(id=doc["id"], status=doc["status"], display_name=doc.get("display_name"),
                      reputation=round(rep, 4), success_rate=None if raw is None else round(raw, 4),
                      delivered_7_days=delivered, devices=list(doc.get("device_ids") or []),
                      sims=list(doc.get("sim_ids") or []), created=unix(doc["created_at"]),
                      message_km=message_km)


# --- for dispatch (R2) ------------------------------------------------------------------------

def sim(db, sim_id: str) -> Sim | None:
    """A SIM's routing facts (None if there is no such SIM)."""
    snap = sim_ref(db, sim_id).get()
    if not snap.exists:
        return None
    d = snap.to_dict()
    return Sim(id=d["id"], provider_id=d["provider_id"], device_id=d["device_id"], carrier=d["carrier"],
               livemode=d["livemode"], status=d["status"], phone_masked=mask(d["e164"]))


def device_push_token(db, device_id: str) -> str | None:
    """The device's current FCM token; None when dropped, blacklisted or unknown."""
    snap = device_ref(db, device_id).get()
    if not snap.exists:
        return None
    d = snap.to_dict()
    if d.get("blacklisted") or d.get("push_token_status") != "active":
        return None
    return d.get("push_token")


def drop_push_token(uow, device_id: str, reason: str) -> None:
    """FCM said the token is dead (unregistered, sender mismatch): forget it and stop matching
    the device's SIMs until the phone registers a new token (``POST .../push_token``)."""
    ref = device_ref(uow.db, device_id)
    d = staging.load(uow, ref)
    if d is None or d.get("push_token_status") == "dropped":
        return
    d.update({"push_token": None, "push_token_status": "dropped",
              "push_token_dropped_reason": str(reason)[:120], "push_token_dropped_at": uow.now,
              "updated_at": uow.now})
    staging.stage(uow, ref, d)
    availability.set_flag(uow, d.get("sim_ids") or [], "no_push", True)
