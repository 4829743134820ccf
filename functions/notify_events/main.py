"""notify_events: Pub/Sub consumer that sends queued email, SMS and push messages."""
import functions_framework

from shared.platform.entry import boot
from shared.notify.http import consume

boot("notify_events")


@functions_framework.cloud_event
def handle(cloud_event):
    consume(cloud_event)
