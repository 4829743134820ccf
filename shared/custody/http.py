"""Every custody route, registered by importing the modules that declare them."""
from __future__ import annotations

from shared.custody import sweep_routes, withdrawal_routes  # noqa: F401  (register their routes)
from shared.custody.routers import api, sweeper, tasks

__all__ = ["api", "sweeper", "tasks"]
