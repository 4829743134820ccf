"""webhooks_sweeper: Cloud Scheduler target that re-enqueues deliveries whose attempt was lost."""
import functions_framework

from shared.platform.entry import boot
from shared.webhooks.http import sweeper

boot("webhooks_sweeper")


@functions_framework.http
def handle(request):
    return sweeper(request)
