"""Rate limits of the dashboard's actions: the SAME limits (names, budgets, keys) as the API
routes that do the same thing, so the dashboard is no way around them. The API keeps these
beside its routes; the sign-in limits come from ``shared.identity.limits`` directly."""
from __future__ import annotations

from shared.platform.ratelimit import Limit

REFUNDS_CREATE = Limit("refunds.create", 300, 60)              # per merchant (tenant)
REPLAY = Limit("webhooks.replay.principal", 120, 60)           # per member
REPORTS_READ = Limit("reports.read", 60, 60)                   # per merchant: reports read a lot
INVOICES_CREATE = Limit("invoices.create", 300, 60)            # per merchant
LINKS_CREATE = Limit("payment_links.create", 300, 60)          # per merchant
