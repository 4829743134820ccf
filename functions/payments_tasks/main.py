"""payments_tasks: Cloud Tasks target for payment intent timers (expiry)."""
import functions_framework

from shared.payments.http import tasks
from shared.platform.entry import boot

boot("payments_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
