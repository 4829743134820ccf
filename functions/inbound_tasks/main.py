"""inbound_tasks: processes stored provider events with retries; handlers named here."""
import functions_framework

import shared.refunds.inbound  # noqa: F401  (card processor refund events)
import shared.wallet.inbound  # noqa: F401  (card processor events: top-ups, intents, disputes)
from shared.inbox.http import tasks
from shared.platform.entry import boot

boot("inbound_tasks")


@functions_framework.http
def handle(request):
    return tasks(request)
