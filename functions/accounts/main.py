"""accounts: the signed-in user's own resources (HTTP, /v1/me)."""
import functions_framework

import shared.identity.routes  # noqa: F401  (registers every identity route module)
from shared.identity.api import accounts_api
from shared.identity.authn import identity_authenticator
from shared.platform.entry import boot

boot("accounts", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return accounts_api(request)
