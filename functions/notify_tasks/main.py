"""notify_tasks: Cloud Tasks target for retries of queued messages."""
import functions_framework

from shared.platform.entry import boot
from shared.notify.http import tasks

boot("notify_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
