"""accounts: the signed-in user's own resources (HTTP, /v1/me)."""
import functions_framework

import shared.identity.authn  # noqa: F401  (registers the JWT and API-key authenticators)
import shared.identity.routes  # noqa: F401  (registers every identity route module)
from shared.identity.api import accounts_api
from shared.platform.entry import boot

boot("accounts")


@functions_framework.http
def handle(request):
    return accounts_api(request)
