"""relay_tasks: the SMS relay network (issue 11; ADR 0043, 0044)."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (opens callback secrets to sign callbacks: the KMS role)
from shared.platform.entry import boot
from shared.relay.http import tasks

boot("relay_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
