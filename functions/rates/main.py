"""rates: exchange rates and conversions from the price feed (/v1/rates)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot
from shared.rates.http import api

boot("rates", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
