"""Merchants: organisations that own payments, keys and webhooks; members, roles, projects,
settings (issue 9 item 1, docs/decisions/0030-merchants.md)."""
