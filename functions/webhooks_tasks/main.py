"""webhooks_tasks: Cloud Tasks target, one delivery attempt per task."""
import functions_framework

import shared.webhooks.secrets  # noqa: F401  (seals or opens signing secrets: the KMS role)
from shared.platform.entry import boot
from shared.webhooks.http import tasks

boot("webhooks_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
