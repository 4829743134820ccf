"""chain: networks, their heads, watcher lag and RPC health (/v1/chain)."""
import functions_framework

from shared.chain.watcher_http import api
from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot

boot("chain", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
