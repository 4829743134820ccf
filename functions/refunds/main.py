"""refunds: refunds of captured payments by wallet, card or chain (/v1/refunds)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.platform.entry import boot
from shared.refunds.http import api

boot("refunds", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
