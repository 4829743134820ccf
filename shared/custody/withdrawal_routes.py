"""Withdrawal and approval routes (on ``routers.api`` / ``routers.tasks``)."""
