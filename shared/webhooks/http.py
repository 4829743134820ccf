"""Entry surfaces of the webhooks capability: every route module registered on its router."""
from __future__ import annotations

from shared.webhooks import routes_deliveries, routes_endpoints  # noqa: F401  (register routes)
from shared.webhooks.api import api, sweeper, tasks
from shared.webhooks.fanout import consume

__all__ = ["api", "tasks", "sweeper", "consume"]
