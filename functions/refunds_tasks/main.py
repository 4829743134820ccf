"""refunds_tasks: Cloud Tasks target that follows crypto and card refunds to their end."""
import functions_framework

import shared.platform.secrets_at_rest  # noqa: F401  (unseals the hot wallet's seed: the KMS role)
from shared.platform.entry import boot
from shared.refunds.http import tasks

boot("refunds_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
