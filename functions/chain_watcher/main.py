"""chain_watcher: Cloud Scheduler target; holds a lease per network and follows new blocks."""
import functions_framework

from shared.chain.watcher_http import job
from shared.platform.entry import boot

boot("chain_watcher")


@functions_framework.http
def handle(request):
    return job(request)
