"""auth: sign-up and sign-in flows (HTTP, /v1/auth and /.well-known/jwks.json)."""
import functions_framework

import shared.identity.http.routes  # noqa: F401  (registers every identity route module)
from shared.identity.http.api import auth_api
from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot

boot("auth", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return auth_api(request)
