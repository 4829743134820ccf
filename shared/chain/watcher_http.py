"""Entry surfaces of the chain watcher.

* ``job`` (function ``chain_watcher``, Cloud Scheduler every minute, ``auth=SERVICE``): one
  invocation follows every configured network for ``run_seconds`` (ADR 0033).
* ``api`` (function ``chain``, ``GET /v1/chain/networks``, any signed-in caller): each network's
  head, cursor, lag, watcher lease and RPC endpoints' health. It reads what the watcher stored
  (one ``batch_get``) and calls no node: a status page must not amplify traffic to the RPC
  providers, and it stays up when they are down. Endpoint URLs are shown redacted.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.chain.networks import chain_networks
from shared.chain.rpc import HEALTH_COLLECTION, redact
from shared.chain.watcher import CURSORS, run_networks, watcher_settings
from shared.platform.models import RequestModel
from shared.platform.router import SERVICE, Context, Router

job = Router("chain_watcher")


class RunWatcher(RequestModel):
    """Cloud Scheduler posts ``{}``; tests and a manual catch-up may ask for a shorter run."""
    run_seconds: float | None = Field(None, gt=0, le=300, description="A shorter run; never longer "
                                      "than the configured run_seconds.")
api = Router("chain", public_prefix="chain", tags=["chain"])


class NetworkRun(BaseModel):
    network: str
    acquired: bool
    steps: int
    blocks: int
    transfers: int
    confirmed: int
    reorgs: int
    reorged: int
    rpc_errors: int
    head: int | None
    cursor: int | None
    stopped: str


class WatcherRun(BaseModel):
    object: Literal["chain_watcher_run"] = "chain_watcher_run"
    networks: list[NetworkRun]


class EndpointStatus(BaseModel):
    index: int
    url: str
    healthy: bool | None
    latest_block: int | None = None
    latency_ms: float | None = None
    calls: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    last_ok_at: dt.datetime | None = None


class NetworkStatus(BaseModel):
    object: Literal["chain_network"] = "chain_network"
    name: str
    chain_id: int
    livemode: bool
    native_asset: str
    assets: list[str]
    head: int | None
    cursor: int | None
    lag_blocks: int | None
    cursor_updated_at: dt.datetime | None
    watcher_active: bool
    lease_until: dt.datetime | None
    last_reorg: dict[str, Any] | None
    endpoints: list[EndpointStatus]


class NetworkStatusList(BaseModel):
    object: Literal["list"] = "list"
    data: list[NetworkStatus]
    has_more: bool = False
    url: str = "/v1/chain/networks"


@job.post("/", body=RunWatcher, response=WatcherRun, auth=SERVICE, idempotent=False, atomic=False)
def run_watcher(ctx: Context):
    """Cloud Scheduler target: follow every network's new blocks for about a minute."""
    settings = watcher_settings(ctx.deps)
    want = ctx.body.run_seconds if ctx.body else None
    stats = run_networks(ctx.deps, chain_networks(ctx.deps).networks, settings=settings,
                         seconds=min(want, settings.run_seconds) if want else None)
    return WatcherRun(networks=[NetworkRun(**vars(s)) for s in stats])


@api.get("/networks", response=NetworkStatusList)
def list_networks(ctx: Context):
    """Configured networks with their head, watcher cursor, lag and RPC endpoints' health."""
    nets = chain_networks(ctx.deps).networks
    db = ctx.deps.db
    refs = []
    for net in nets:
        refs.append(db.collection(CURSORS).document(net.name))
        refs.extend(db.collection(HEALTH_COLLECTION).document(f"{net.name}:{i}")
                    for i in range(len(net.rpc_urls)))
    snaps = {s.reference.path: s.to_dict() or {} for s in db.get_all(refs)} if refs else {}
    now = ctx.now
    data = []
    for net in nets:
        cursor = snaps.get(db.collection(CURSORS).document(net.name).path, {})
        endpoints = []
        for i, url in enumerate(net.rpc_urls):
            h = snaps.get(db.collection(HEALTH_COLLECTION).document(f"{net.name}:{i}").path, {})
            endpoints.append(EndpointStatus(
                index=i, url=redact(url), healthy=h.get("healthy"),
                **{k: h.get(k) for k in ("latest_block", "latency_ms", "last_error",
                                         "last_error_at", "last_ok_at")},
                **{k: h.get(k) or 0 for k in ("calls", "errors", "consecutive_errors")}))
        seen = [cursor.get("head")] + [e.latest_block for e in endpoints]
        head = max((x for x in seen if isinstance(x, int)), default=None)
        block = cursor.get("block_number")
        lease_until = cursor.get("lease_until")
        data.append(NetworkStatus(
            name=net.name, chain_id=net.chain_id, livemode=net.livemode,
            native_asset=net.native_asset, assets=list(net.assets), head=head, cursor=block,
            lag_blocks=(max(0, head - block) if head is not None and block is not None else None),
            cursor_updated_at=cursor.get("updated_at"),
            watcher_active=bool(cursor.get("lease_owner") and lease_until and lease_until > now),
            lease_until=lease_until, last_reorg=cursor.get("last_reorg"), endpoints=endpoints))
    return NetworkStatusList(data=data)
