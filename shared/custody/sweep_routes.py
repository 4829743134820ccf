"""Sweep and cold-transfer routes (on ``routers.tasks`` / ``routers.sweeper`` / ``routers.api``)."""
