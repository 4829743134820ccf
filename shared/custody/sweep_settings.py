"""The sweeper's timing and size knobs (operational, not per network: those are the network's
``custody`` block). Tests and the bench inject their own through
``deps.extras["custody.sweep_settings"]``."""
from __future__ import annotations

import dataclasses
import datetime as dt

from shared.chain.outgoing import BUMP_AFTER, MAX_BUMPS


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    # addresses per batch: one planning unit writes about 4 documents per address and a commit
    # takes 500 writes; 50 also keeps one batched balance read under ~300 JSON-RPC calls
    batch_size: int = 50
    batches_per_run: int = 4            # per network and scheduled run (every 10 minutes)
    scan_blocks: int = 5_000            # chain_transfers block range read per run (catching up)
    bump_after: dt.timedelta = BUMP_AFTER   # unmined this long: replace (+12.5%)
    max_bumps: int = MAX_BUMPS
    poll_delay_s: float = 0.0           # 0: the network's block time
    max_poll_delay_s: float = 60.0
    in_flight_check: dt.timedelta = dt.timedelta(hours=1)  # nudge a batch whose poll went quiet
    retry_after: dt.timedelta = dt.timedelta(minutes=10)   # an address that could not be swept
    max_retry_after: dt.timedelta = dt.timedelta(hours=6)
    alert_after_failures: int = 3       # consecutive failed sweeps of one address: operators


def sweep_settings(deps) -> SweepSettings:
    return deps.extras.get("custody.sweep_settings") or SweepSettings()
