"""auth: sign-up and sign-in flows (HTTP, /v1/auth and /.well-known/jwks.json)."""
import functions_framework

import shared.identity.routes  # noqa: F401  (registers every identity route module)
from shared.identity.api import auth_api
from shared.identity.authn import identity_authenticator
from shared.platform.entry import boot

boot("auth", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return auth_api(request)
