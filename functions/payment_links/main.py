"""payment_links: reusable links and buttons that create payment intents (/v1/payment_links)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.invoices.http import links_api
from shared.platform.entry import boot

boot("payment_links", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return links_api(request)
