"""platform_events: Pub/Sub consumer of domain events for the platform capability."""
import functions_framework

from shared.platform.entry import boot
from shared.probes.http import consumer

boot("platform_events")


@functions_framework.cloud_event
def handle(cloud_event):
    consumer(cloud_event)
