"""The custody routers, created once so the sweep and withdrawal modules can both register on them.

- ``api``: ``/v1/custody/...`` (custodians: withdrawals, approvals, sweep and hot-wallet status);
- ``tasks``: the Cloud Tasks target (queue ``custody``) that moves sweeps and withdrawals along;
- ``sweeper``: the scheduled job that plans sweeps and cold transfers.
"""
from __future__ import annotations

from shared.platform.router import Router

api = Router("custody", public_prefix="custody", tags=["custody"])
tasks = Router("custody_tasks")
sweeper = Router("custody_sweeper")
