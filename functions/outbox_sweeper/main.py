"""outbox_sweeper: Cloud Scheduler target that republishes unpublished events."""
import functions_framework

from shared.events.http import sweeper
from shared.platform.entry import boot

boot("outbox_sweeper")


@functions_framework.http
def handle(request):
    return sweeper(request)
