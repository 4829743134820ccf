"""platform: probes API (HTTP, /v1/platform)."""
import functions_framework

from shared.platform.entry import boot
from shared.probes.http import api

boot("platform")


@functions_framework.http
def handle(request):
    return api(request)
