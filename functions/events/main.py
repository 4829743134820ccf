"""events: the events API (HTTP, /v1/events)."""
import functions_framework

from shared.events.http import api
from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.platform.entry import boot

boot("events", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
