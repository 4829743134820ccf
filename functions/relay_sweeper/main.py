"""relay_sweeper: the SMS relay network (issue 11; ADR 0043, 0044)."""
import functions_framework

from shared.platform.entry import boot
from shared.relay.http import sweeper

boot("relay_sweeper")


@functions_framework.http
def handle(request):
    return sweeper(request)
