"""custody_tasks: custody (sweeps, cold storage, withdrawals with approvals; ADR 0038, 0039)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (unseals the custodial seed: the KMS role)
from shared.custody.http import tasks
from shared.platform.entry import boot

boot("custody_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
