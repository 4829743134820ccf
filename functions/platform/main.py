"""platform: probes API (HTTP, /v1/platform)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot
from shared.probes.http import api

boot("platform", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
