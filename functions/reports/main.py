"""reports: settlement reports and analytics for merchants (/v1/reports)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.platform.entry import boot
from shared.reports.http import api

boot("reports", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
