"""dashboard: server-rendered pages under /dashboard (issue 10)."""
import functions_framework

from shared.dashboard.http import pages
from shared.platform.entry import boot

boot("dashboard")


@functions_framework.http
def handle(request):
    return pages(request)
