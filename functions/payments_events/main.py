"""payments_events: applies chain transfers (seen, confirmed, reorged) to payment intents."""
import functions_framework

from shared.payments.http import consume
from shared.platform.entry import boot

boot("payments_events")


@functions_framework.cloud_event
def handle(cloud_event):
    consume(cloud_event)
