"""events: the events API (HTTP, /v1/events)."""
import functions_framework

from shared.events.http import api
from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot

boot("events", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
