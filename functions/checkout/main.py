"""checkout: server-rendered pages under /pay (issue 10)."""
import functions_framework

from shared.checkout.http import pages
from shared.platform.entry import boot

boot("checkout")


@functions_framework.http
def handle(request):
    return pages(request)
