"""webhooks_events: fans each public event out to the endpoints subscribed to it."""
import functions_framework

from shared.platform.entry import boot
from shared.webhooks.fanout import consume

boot("webhooks_events")


@functions_framework.cloud_event
def handle(cloud_event):
    consume(cloud_event)
