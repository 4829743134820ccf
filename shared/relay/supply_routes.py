"""Supply-side routes: providers, SIMs, devices, heartbeats, earnings; the sweeper's pass (ADR 0043).

The provider's phone app calls these with the signed-in user's access token (``/v1/relay/...``);
answers are small and, with ``Accept-Language: km``, carry Khmer (``khmer.py``). Someone
else's device or SIM is a 404, like one that does not exist. The blacklist and
suspicious-activity routes are for operators (staff users with an MFA session, or the
platform's service credential: ``operators.py``).
"""
from __future__ import annotations

import logging

from shared.identity.responses import PhoneVerification
from shared.merchants.context import parse_mode
from shared.platform import logs
from shared.platform.pagination import ListQuery, ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import SERVICE, Context, Result
from shared.relay import (availability, blacklist, devices, earnings, fraud, heartbeats, operators,
                          providers, sims, sweeper_hooks)
from shared.relay import supply_models as M
from shared.relay.khmer import wants_khmer
from shared.relay.routers import relay, sweeper

_log = logs.get_logger(__name__)
USER = ("user",)
OPERATOR = (SERVICE, "user")   # narrowed to operators by ``operators.require_operator``
PROVIDER_CREATE = Limit("relay.providers.create", 10, 3600)
DEVICE_WRITE = Limit("relay.devices.write", 30, 3600)
HEARTBEAT = Limit("relay.heartbeat", 20, 60)
SIM_START = Limit("auth.relay_sim.start.principal", 10, 3600)   # texts a code: counted exactly
SIM_WRITE = Limit("relay.sims.write", 60, 3600)


def _provider(ctx: Context, *, device_id: str | None = None, sim_id: str | None = None) -> providers.Provider:
    """The caller's provider record; the device or SIM the route names is read in the same
    batch (one round trip for both)."""
    if device_id is not None:
        ctx.uow.prefetch(providers.device_ref(ctx.uow.db, device_id))
    if sim_id is not None:
        ctx.uow.prefetch(providers.sim_ref(ctx.uow.db, sim_id))
        ctx.uow.prefetch(availability.availability_ref(ctx.uow.db, sim_id))
    _ref, doc = providers.load_for_update(ctx.uow, ctx.principal)
    return providers.Provider.of(doc)


# --- providers ---------------------------------------------------------------------------------

@relay.post("/providers", body=M.RegisterProvider, response=M.Provider, auth=USER, status=201,
            other_statuses=(200,), rate_limits=[(PROVIDER_CREATE, "principal")])
def register_provider(ctx: Context):
    """Become a provider (idempotent: 200 with the existing record)."""
    provider, created = providers.register(ctx.uow, ctx.principal, ctx.body)
    if wants_khmer(ctx.request):
        from shared.relay.khmer import status_km
        provider.message_km = status_km("provider_" + provider.status)
    return Result(provider, status=201 if created else 200)


@relay.get("/providers/me", response=M.Provider, auth=USER)
def get_provider(ctx: Context):
    """The caller's provider record: status, reputation, success rate, devices and SIMs."""
    _ref, doc = providers.load_for_update(ctx.uow, ctx.principal, allow_blacklisted=True)
    if doc is None:
        raise providers.NotAProvider("Register as a provider first (POST /v1/relay/providers).")
    from shared.relay.supply_settings import supply_settings
    return providers.resource(ctx.deps.db, doc, ctx.now, s=supply_settings(ctx.deps),
                              khmer=wants_khmer(ctx.request))


# --- devices ------------------------------------------------------------------------------------

@relay.post("/devices", body=M.RegisterDevice, response=M.Device, auth=USER, status=201,
            other_statuses=(200,), rate_limits=[(DEVICE_WRITE, "principal")])
def register_device(ctx: Context):
    """Register this phone and its FCM token (again: rotates the token, 200)."""
    device, created = devices.register(
        ctx.uow, _provider(ctx, device_id=devices.device_id_for(ctx.body.fingerprint)), ctx.body)
    return Result(device, status=201 if created else 200)


@relay.get("/devices", response=ListResponse[M.Device], auth=USER)
def list_devices(ctx: Context):
    """The caller's devices."""
    data = devices.list_devices(ctx.deps.db, _provider(ctx), ctx.now)
    return ListResponse[M.Device](data=data, has_more=False, url="/v1/relay/devices")


@relay.get("/devices/{device_id}", response=M.Device, auth=USER)
def get_device(ctx: Context, device_id: str):
    return devices.get(ctx.uow, _provider(ctx, device_id=device_id), device_id)


@relay.patch("/devices/{device_id}", body=M.UpdateDevice, response=M.Device, auth=USER,
             rate_limits=[(DEVICE_WRITE, "principal")])
def update_device(ctx: Context, device_id: str):
    """Set the device ``busy`` (pause its SIMs) or back ``online``."""
    return devices.set_status(ctx.uow, _provider(ctx, device_id=device_id), device_id, ctx.body.status)


@relay.delete("/devices/{device_id}", response=M.Device, auth=USER,
              rate_limits=[(DEVICE_WRITE, "principal")])
def retire_device(ctx: Context, device_id: str):
    """Stop using this phone (it must hold no SIM); registering it again brings it back."""
    return devices.retire(ctx.uow, _provider(ctx, device_id=device_id), device_id)


@relay.post("/devices/{device_id}/push_token", body=M.RotatePushToken, response=M.Device, auth=USER,
            rate_limits=[(DEVICE_WRITE, "principal")])
def rotate_push_token(ctx: Context, device_id: str):
    """The app got a new FCM token (or the old one was dropped): matching resumes."""
    return devices.rotate_token(ctx.uow, _provider(ctx, device_id=device_id), device_id, ctx.body.push_token)


@relay.post("/devices/{device_id}/heartbeat", body=M.Heartbeat, response=M.HeartbeatAck, auth=USER,
            idempotent=False, rate_limits=[(HEARTBEAT, "principal")])
def heartbeat(ctx: Context, device_id: str):
    """Check in (every 15 minutes at most; offline 16 minutes after the last one)."""
    return heartbeats.heartbeat(ctx.uow, _provider(ctx, device_id=device_id), device_id, ctx.body,
                                khmer=wants_khmer(ctx.request))


# --- SIMs ---------------------------------------------------------------------------------------

@relay.post("/sims", body=M.StartSim, response=PhoneVerification, auth=USER, status=202,
            idempotent=False, rate_limits=[(SIM_START, "principal")])
def start_sim(ctx: Context):
    """Text a 6-digit code to the SIM's number to add it."""
    return sims.start(ctx.uow, _provider(ctx, device_id=ctx.body.device), ctx.body,
                      user_id=ctx.principal.id)


@relay.post("/sims/verify", body=M.VerifySim, response=M.Sim, auth=USER, status=201,
            other_statuses=(200,), idempotent=False, rate_limits=[(SIM_WRITE, "principal")])
def verify_sim(ctx: Context):
    """Confirm the texted code: the SIM is added (mode: ``Payloom-Mode``, test by default)."""
    sim, created = sims.verify(ctx.uow, _provider(ctx), ctx.body, user_id=ctx.principal.id,
                               ip=ctx.ip, livemode=bool(parse_mode(ctx.request.headers)))
    return Result(sim, status=201 if created else 200)


@relay.get("/sims", response=ListResponse[M.Sim], auth=USER)
def list_sims(ctx: Context):
    """The caller's SIMs with their caps, usage today and status."""
    return ListResponse[M.Sim](data=sims.list_sims(ctx.uow, _provider(ctx)), has_more=False,
                               url="/v1/relay/sims")


@relay.get("/sims/{sim_id}", response=M.Sim, auth=USER)
def get_sim(ctx: Context, sim_id: str):
    return sims.get(ctx.uow, _provider(ctx, sim_id=sim_id), sim_id)


@relay.patch("/sims/{sim_id}", body=M.UpdateSim, response=M.Sim, auth=USER,
             rate_limits=[(SIM_WRITE, "principal")])
def update_sim(ctx: Context, sim_id: str):
    """Caps, active hours, enabled, label, or the device the SIM is now in."""
    return sims.update(ctx.uow, _provider(ctx, sim_id=sim_id), sim_id, ctx.body)


@relay.delete("/sims/{sim_id}", response=M.Sim, auth=USER, rate_limits=[(SIM_WRITE, "principal")])
def remove_sim(ctx: Context, sim_id: str):
    """Stop relaying through this SIM."""
    return sims.remove(ctx.uow, _provider(ctx, sim_id=sim_id), sim_id)


# --- earnings -----------------------------------------------------------------------------------

@relay.get("/earnings", query=ListQuery, response=ListResponse[M.Earning], auth=USER)
def list_earnings(ctx: Context):
    """One record per delivered message, newest first (PPT, paid out by a later release)."""
    return earnings.list_earnings(ctx.deps.db, _provider(ctx).id, ctx.query)


@relay.get("/earnings/summary", response=M.EarningsSummary, auth=USER)
def earnings_summary(ctx: Context):
    """Earned today, in the last 7 days and in all, with delivered counts."""
    return earnings.summary(ctx.deps.db, _provider(ctx).id, ctx.now)


# --- operators ----------------------------------------------------------------------------------

@relay.post("/admin/blacklist", body=M.BlacklistRequest, response=M.BlacklistEntry, auth=OPERATOR,
            status=201, other_statuses=(200,))
def add_blacklist(ctx: Context):
    """Blacklist a provider, device, SIM (matching stops at once) or a recipient (operators)."""
    actor = operators.require_operator(ctx.deps, ctx.principal)
    entry, created = blacklist.add(ctx.uow, ctx.body, actor=actor)
    return Result(entry, status=201 if created else 200)


@relay.get("/admin/blacklist", query=M.BlacklistQuery, response=M.BlacklistList, auth=OPERATOR)
def list_blacklist(ctx: Context):
    """Blacklist entries, newest first (operators)."""
    operators.require_operator(ctx.deps, ctx.principal)
    return blacklist.list_entries(ctx.deps.db, kind=ctx.query.kind, limit=ctx.query.limit)


@relay.delete("/admin/blacklist/{entry_id}", response=M.BlacklistEntry, auth=OPERATOR)
def remove_blacklist(ctx: Context, entry_id: str):
    """Lift an entry (its flags are cleared in the same commit; operators)."""
    actor = operators.require_operator(ctx.deps, ctx.principal)
    entry = blacklist.remove(ctx.uow, entry_id)
    logs.log(_log, logging.INFO, "relay blacklist entry lifted", entry=entry.id, kind=entry.kind,
             actor=actor)
    return entry


@relay.get("/admin/suspicious", query=M.SuspiciousQuery, response=M.SuspiciousList, auth=OPERATOR)
def list_suspicious(ctx: Context):
    """Recent suspicious activity, newest first (also sent as ``relay.suspicious_activity``;
    operators)."""
    operators.require_operator(ctx.deps, ctx.principal)
    return fraud.list_suspicious(ctx.deps.db, provider=ctx.query.provider, limit=ctx.query.limit)


# --- the sweeper (Cloud Scheduler, every minute) ---------------------------------------------------

@sweeper.post("/", response=M.SupplySweep, auth=SERVICE, idempotent=False, atomic=False)
def run_sweeper(ctx: Context):
    """Catch the availability index up with time (offline phones, active hours, day quotas,
    stale reservations), then run every registered hook (dispatch's pass)."""
    rechecked, went_offline = heartbeats.sweep(ctx.deps, ctx.now)
    counts = {}
    for hook in list(sweeper_hooks.HOOKS):
        name = f"{hook.__module__}.{hook.__name__}"
        try:
            counts[name] = int(hook(ctx.deps, ctx.now) or 0)
        except Exception:  # noqa: BLE001 - one hook must not stop the others
            _log.exception("relay sweeper hook %s failed", name)
            counts[name] = -1
    return M.SupplySweep(rechecked=rechecked, went_offline=went_offline, hooks=counts)

