"""invoices: merchants' invoices, each paid through a payment intent (/v1/invoices)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.invoices.http import invoices_api
from shared.platform.entry import boot

boot("invoices", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return invoices_api(request)
