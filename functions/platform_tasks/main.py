"""platform_tasks: Cloud Tasks target for platform timers."""
import functions_framework

from shared.platform.entry import boot
from shared.probes.http import tasks

boot("platform_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
