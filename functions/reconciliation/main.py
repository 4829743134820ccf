"""reconciliation: Cloud Scheduler target comparing the ledger with on-chain balances."""
import functions_framework

from shared.platform.entry import boot
from shared.reports.http import reconcile_job

boot("reconciliation")


@functions_framework.http
def handle(request):
    return reconcile_job(request)
