"""custody_sweeper: custody (sweeps, cold storage, withdrawals with approvals; ADR 0038, 0039)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (unseals the custodial seed: the KMS role)
from shared.custody.http import sweeper
from shared.platform.entry import boot

boot("custody_sweeper")


@functions_framework.http
def handle(request):
    return sweeper(request)
