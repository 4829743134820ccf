"""webhooks_tasks: Cloud Tasks target, one delivery attempt per task."""
import functions_framework

from shared.platform.entry import boot
from shared.webhooks.http import tasks

boot("webhooks_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
