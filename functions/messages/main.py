"""messages: the SMS relay network (issue 11; ADR 0043, 0044)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (seals clients' callback secrets: the KMS role)
from shared.identity.sessions.authn import identity_authenticator
from shared.merchants.context import merchant_context
from shared.platform.entry import boot
from shared.relay.http import messages

boot("messages", authenticators=[identity_authenticator], resolvers=[merchant_context])


@functions_framework.http
def handle(request):
    return messages(request)
