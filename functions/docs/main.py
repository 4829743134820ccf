"""docs: server-rendered pages under /docs (issue 10)."""
import functions_framework

from shared.docs.http import pages
from shared.platform.entry import boot

boot("docs")


@functions_framework.http
def handle(request):
    return pages(request)
