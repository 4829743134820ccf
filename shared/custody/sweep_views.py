"""Read-only views for custodians: the sweeps list and the hot wallet against its caps.

Both are in the caller's mode only (``principal.livemode``): test sweeps and live sweeps never
show together. The hot wallet's balances are read live from the chain (one batched request per
network); an unreachable network is shown as ``rpc_unavailable``, never a 500.
"""
from __future__ import annotations

from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.chain.networks import chain_networks
from shared.chain.rpc import RpcError, RpcUnavailable
from shared.custody import cold
from shared.custody import sweep_models as M
from shared.custody import sweep_records as R
from shared.custody.sweeps import balance_call, rpc_for
from shared.platform.pagination import ListResponse, paginate

URL = "/v1/custody/sweeps"


def list_sweeps(deps: Any, livemode: bool, query: M.SweepListQuery) -> ListResponse[M.Sweep]:
    """Newest first. Composite indexes: chain_sweeps (livemode, [network], [status],
    created_at desc): four."""
    col = deps.db.collection(R.SWEEPS)
    q = col.where(filter=FieldFilter("livemode", "==", livemode))
    for field in ("network", "status"):
        value = getattr(query, field)
        if value is not None:
            q = q.where(filter=FieldFilter(field, "==", value))
    page = paginate(q, col, query, url=URL, to_resource=M.resource,
                    belongs=lambda d: d.get("livemode") == livemode
                    and d.get("object") == "custody_sweep")
    return ListResponse[M.Sweep](data=page.data, has_more=page.has_more, url=page.url)


def hot_wallet(deps: Any, livemode: bool) -> M.HotWallet:
    """Each network of the mode: the hot wallet's balances, caps, targets and cold transfers
    in flight."""
    from shared.chain import hd
    from shared.custody.sweep_keys import SweepKeys
    from shared.platform.errors import ServiceUnavailable
    networks = chain_networks(deps).for_mode(livemode)
    out = []
    if networks:
        try:
            hot = SweepKeys(deps, livemode).hot().address
        except hd.CustodySeedMissing:
            raise ServiceUnavailable("The custodial seed is not provisioned for this mode.",
                                     code="custody_unavailable") from None
        cursors = {s.id: s.to_dict() for s in deps.db.get_all(
            [R.cursor_ref(deps.db, n.name) for n in networks]) if s.exists}
        for network in networks:
            out.append(_network(deps, network, hot, cursors.get(network.name) or {}))
    return M.HotWallet(livemode=livemode, networks=out)


def _network(deps: Any, network, hot: str, cursor: dict[str, Any]) -> M.HotNetwork:
    rules = network.custody_rules
    view = M.HotNetwork(network=network.name, chain_id=network.chain_id, address=hot,
                        cold_address=rules.cold_address)
    assets = network.assets
    calls = [("eth_getBalance", [hot, "latest"])]
    calls += [balance_call(network.tokens[a], hot, "latest") for a in assets[1:]]
    try:
        raw = rpc_for(deps, network).batch(calls)
    except (RpcUnavailable, RpcError):
        view.status = "rpc_unavailable"
        raw = [None] * len(calls)
    flight = cursor.get("cold_in_flight") or {}
    for asset, value in zip(assets, raw):
        balance = int(str(value), 16) if value not in (None, "0x") else 0
        cap, target = rules.cap(asset), rules.target(asset)
        view.assets.append(M.HotAsset(
            asset=asset, balance=str(balance), cap=None if cap is None else str(cap),
            target=None if target is None else str(target),
            over_cap=value is not None and cold.over_cap(network, asset, balance),
            cold_in_flight=flight.get(asset)))
    return view
