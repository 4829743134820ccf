"""inbound: the verified inbox for providers' webhooks (/v1/inbound/<provider>)."""
import functions_framework

from shared.inbox.http import api
from shared.platform.entry import boot

boot("inbound")


@functions_framework.http
def handle(request):
    return api(request)
