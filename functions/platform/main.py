"""platform: probes API (HTTP, /v1/platform)."""
import functions_framework

import shared.identity.authn  # noqa: F401  (registers the Bearer JWT / API key authenticator)
from shared.platform.entry import boot
from shared.probes.http import api

boot("platform")


@functions_framework.http
def handle(request):
    return api(request)
