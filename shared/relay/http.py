"""Every relay route, registered by importing the modules that declare them."""
from __future__ import annotations

from shared.relay import dispatch_routes, supply_routes  # noqa: F401  (register their routes)
from shared.relay.routers import messages, relay, sweeper, tasks

__all__ = ["relay", "messages", "tasks", "sweeper"]
