"""Private HTTP surfaces of the ledger: the Cloud Tasks target (hold expiry) and the scheduled
audit. Neither is public; both require service credentials (OIDC in production)."""
from __future__ import annotations

from pydantic import Field

from shared.ledger import audit, service
from shared.ledger.resources import HoldExpiry, LedgerAudit
from shared.platform.models import DocId, RequestModel
from shared.platform.router import SERVICE, Context, Router


class ExpirePending(RequestModel):
    pending_id: DocId = Field(..., max_length=80)


tasks = Router("ledger_tasks")


@tasks.post("/expire-pending", body=ExpirePending, response=HoldExpiry, auth=SERVICE,
            idempotent=False)
def expire_pending(ctx: Context):
    """Cloud Tasks target: expire a hold if it is still pending (idempotent)."""
    return service.expire_pending(ctx.uow, ctx.body.pending_id)


class RunAudit(RequestModel):
    full: bool | None = Field(None, description="Scan the whole ledger (default: incremental "
                              "from the checkpoint, full when the last full run is a week old).")


audit_api = Router("ledger_audit")


@audit_api.post("/", body=RunAudit, response=LedgerAudit, auth=SERVICE, idempotent=False,
                atomic=False)
def run_audit(ctx: Context):
    """Cloud Scheduler target: verify the ledger's invariants; violations emit an event."""
    return audit.run_audit(ctx.deps, full=ctx.body.full)
