"""accounts: the signed-in user's own resources (HTTP, /v1/me)."""
import functions_framework

import shared.identity.http.routes  # noqa: F401  (registers every identity route module)
from shared.identity.http.api import accounts_api
from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot

boot("accounts", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return accounts_api(request)
