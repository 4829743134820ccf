"""inbound_sweeper: Cloud Scheduler target that re-schedules inbox events whose task was lost."""
import functions_framework

from shared.inbox.http import sweeper
from shared.platform.entry import boot

boot("inbound_sweeper")


@functions_framework.http
def handle(request):
    return sweeper(request)
