"""payments: payment intents and how they are paid (/v1/payment_intents)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.payments.http import api
from shared.platform.entry import boot

boot("payments", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
