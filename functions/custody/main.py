"""custody: custody (sweeps, cold storage, withdrawals with approvals; ADR 0038, 0039)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (unseals the custodial seed: the KMS role)
from shared.custody.http import api
from shared.identity.sessions.authn import identity_authenticator
from shared.platform.entry import boot

boot("custody", authenticators=[identity_authenticator])


@functions_framework.http
def handle(request):
    return api(request)
