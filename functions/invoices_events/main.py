"""invoices_events: marks invoices paid (or reopened) when their payment intents change."""
import functions_framework

from shared.invoices.http import consume
from shared.platform.entry import boot

boot("invoices_events")


@functions_framework.cloud_event
def handle(cloud_event):
    consume(cloud_event)
