"""The routers of the webhooks functions, created once; route modules register on them."""
from __future__ import annotations

from shared.platform.router import Router

api = Router("webhooks", public_prefix="webhook_endpoints", tags=["webhooks"])
tasks = Router("webhooks_tasks")
sweeper = Router("webhooks_sweeper")
