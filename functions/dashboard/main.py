"""dashboard: the merchant dashboard, server-rendered pages under /dashboard (issue 10)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (MFA seeds and webhook secrets: the KMS role)
from shared.dashboard.http import pages
from shared.platform.entry import boot

boot("dashboard")


@functions_framework.http
def handle(request):
    return pages(request)
