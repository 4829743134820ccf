"""merchants: organisations, members and roles, projects, settings, keys (/v1/merchants)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.merchants.http import api
from shared.platform.entry import boot

boot("merchants", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return api(request)
