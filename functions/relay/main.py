"""relay: the SMS relay network (issue 11; ADR 0043, 0044)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot
from shared.relay.http import relay

boot("relay", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return relay(request)
