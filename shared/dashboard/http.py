"""The merchant dashboard (``/dashboard/...``), server-rendered on ``shared.web.pages.Pages``.

Importing the route modules registers their pages on ``site.pages``: sign-in and the session
(``routes_session``), payments and refunds (``routes_payments``), webhooks (``routes_webhooks``),
API keys (``routes_keys``), invoices and payment links (``routes_billing``), settlement reports
and analytics (``routes_reports``), the payment page's branding (``routes_branding``). ADR 0041 has the decisions.
"""
from __future__ import annotations

from shared.dashboard import (  # noqa: F401  (each module registers its pages)
    routes_billing,
    routes_branding,
    routes_keys,
    routes_payments,
    routes_reports,
    routes_session,
    routes_webhooks,
)
from shared.dashboard.site import pages

__all__ = ["pages"]
