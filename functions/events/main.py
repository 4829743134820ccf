"""events: the events API (HTTP, /v1/events)."""
import functions_framework

import shared.identity.authn  # noqa: F401  (registers the Bearer JWT / API key authenticator)
from shared.events.http import api
from shared.platform.entry import boot

boot("events")


@functions_framework.http
def handle(request):
    return api(request)
