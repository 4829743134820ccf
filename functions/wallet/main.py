"""wallet: balances, top-ups, P2P transfers, history and statements (/v1/wallet)."""
import functions_framework

from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot
from shared.wallet.http import api

boot("wallet", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
