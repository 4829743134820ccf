"""Sweep and cold-transfer routes (on ``routers.tasks`` / ``routers.sweeper`` / ``routers.api``).

- ``sweeper`` ``POST /``: Cloud Scheduler (every 10 minutes) plans and sends sweeps and cold
  transfers for every configured network (or one: ``{"network": "..."}``).
- ``tasks`` ``POST /sweeps/poll``: follows one batch to finality (queue ``custody``).
- ``api`` ``GET /v1/custody/sweeps`` and ``GET /v1/custody/hot_wallet``: read-only, for the
  custodians of the mode (``Payloom-Mode``, test by default; ``shared.custody.custodians``,
  ADR 0039): users only, anyone else 403 ``custodian_required``.
"""
from __future__ import annotations

from shared.chain.networks import chain_networks
from shared.custody import custodians
from shared.custody import sweep_models as M
from shared.custody.routers import api, sweeper, tasks
from shared.platform.errors import InvalidRequest
from shared.platform.pagination import ListResponse
from shared.platform.router import SERVICE, Context


@sweeper.post("/", body=M.SweepRunRequest, response=M.SweepRun, auth=SERVICE, idempotent=False,
              atomic=False)
def run_sweeps(ctx: Context):
    """Cloud Scheduler target: discover final deposits, plan, sign and send sweeps and cold
    transfers (a duplicate delivery plans nothing twice)."""
    from shared.custody import sweeps
    nets = chain_networks(ctx.deps).networks
    if ctx.body is not None and ctx.body.network:
        nets = tuple(n for n in nets if n.name == ctx.body.network)
        if not nets:
            raise InvalidRequest(f"Unknown network {ctx.body.network!r}.", code="network_unknown",
                                 param="network")
    return M.SweepRun(networks=[sweeps.run(ctx.deps, n) for n in nets])


@tasks.post("/sweeps/poll", body=M.PollTask, response=M.PollOutcome, auth=SERVICE,
            idempotent=False, atomic=False)
def poll_sweeps(ctx: Context):
    """Follow a batch of sweeps to finality (sends the same signed bytes again, replaces a
    stuck transaction with a higher fee, books the gas once)."""
    from shared.custody import sweep_poll
    return M.PollOutcome(batch_id=ctx.body.batch_id,
                         outcome=sweep_poll.poll(ctx.deps, ctx.body.batch_id))


def _mode(ctx: Context) -> bool:
    """The custodian's mode (403 for anyone who is not a custodian of it)."""
    return custodians.require_custodian(ctx.principal, ctx.deps,
                                        livemode=custodians.mode_from(ctx.request.headers)).livemode


@api.get("/sweeps", query=M.SweepListQuery, response=ListResponse[M.Sweep], auth="user")
def list_sweeps(ctx: Context):
    """Sweeps and cold transfers of the mode, newest first; filter by network and status."""
    from shared.custody import sweep_views
    return sweep_views.list_sweeps(ctx.deps, _mode(ctx), ctx.query)


@api.get("/hot_wallet", response=M.HotWallet, auth="user")
def hot_wallet(ctx: Context):
    """The hot wallet per network of the mode: balances, caps, cold transfers in flight."""
    from shared.custody import sweep_views
    return sweep_views.hot_wallet(ctx.deps, _mode(ctx))
