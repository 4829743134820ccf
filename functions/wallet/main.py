"""wallet: balances, top-ups, P2P transfers, history and statements (/v1/wallet)."""
import functions_framework

import shared.identity.authn  # noqa: F401  (registers the Bearer JWT / API key authenticator)
from shared.platform.entry import boot
from shared.wallet.http import api

boot("wallet")


@functions_framework.http
def handle(request):
    return api(request)
