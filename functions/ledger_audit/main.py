"""ledger_audit: Cloud Scheduler target that verifies the ledger's invariants."""
import functions_framework

from shared.ledger.http import audit_api
from shared.platform.entry import boot

boot("ledger_audit")


@functions_framework.http
def handle(request):
    return audit_api(request)
