"""ledger_tasks: Cloud Tasks target for ledger timers (hold expiry)."""
import functions_framework

from shared.ledger.http import tasks
from shared.platform.entry import boot

boot("ledger_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
