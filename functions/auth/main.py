"""auth: sign-up and sign-in flows (HTTP, /v1/auth and /.well-known/jwks.json)."""
import functions_framework

import shared.identity.authn  # noqa: F401  (registers the JWT and API-key authenticators)
import shared.identity.routes  # noqa: F401  (registers every identity route module)
from shared.identity.api import auth_api
from shared.platform.entry import boot

boot("auth")


@functions_framework.http
def handle(request):
    return auth_api(request)
