"""Card refunds through the card processor (Stripe protocol; the simulator locally).

The create unit reserved the money (holds) and scheduled ``/card/submit``. The task, outside
any unit, asks the processor for the refund with ``Idempotency-Key = <refund id>`` (a retried
task, or two deliveries at once, make ONE processor refund: Stripe's own idempotency), then
records the answer in a unit that reloads the refund (claim → call → record):

- ``succeeded`` → ``service.complete`` (holds posted: settlement and fee shares → card clearing);
- ``failed`` / ``canceled`` → ``service.fail`` (holds voided, refundable again);
- ``pending`` / ``requires_action`` → stays pending; the processor's ``refund.updated`` /
  ``refund.failed`` webhook (``inbound.py``, through the inbox) finishes it.

A processor error that says "retry" (503) is raised, so Cloud Tasks retries the task; a
refusal of the request itself (400 from the processor) fails the refund with its message.

The processor's PaymentIntent is the card method's ``card.processor_id`` on the intent. The
processor refund carries ``metadata.payloom_refund`` so its webhooks find our refund even before
the call's answer is recorded.
"""
from __future__ import annotations

from typing import Any

from shared.payments import intents
from shared.platform.errors import InvalidRequest
from shared.platform.uow import run_unit
from shared.refunds import service

SUCCEEDED, FAILED = {"succeeded"}, {"failed", "canceled"}
METADATA_KEY = "payloom_refund"


def processor_intent_id(intent: dict[str, Any]) -> str | None:
    """The processor's PaymentIntent id of a card-paid intent: ``card.processor_id`` (the card
    method), else the settled receipt's reference ``card:<id>``."""
    card = intent.get("card") or {}
    if isinstance(card.get("processor_id"), str) and card["processor_id"]:
        return card["processor_id"]
    for r in intent.get("receipts") or []:
        ref = str(r.get("reference") or "")
        if r.get("method") == "card" and r.get("settled") and ref.startswith("card:"):
            return ref.split(":", 1)[1]
    return None


def submit(deps: Any, refund_id: str) -> str:
    """Claim → call → record (see the module doc). Returns an outcome word."""
    from shared.payments import card_events, card_method
    snap = service.refund_ref(deps.db, refund_id).get()
    doc = snap.to_dict() if snap.exists else None
    if doc is None or doc["method"] != "card":
        return "missing"
    if doc["status"] != service.PENDING:
        return "done"
    intent = intents.intent_ref(deps.db, doc["payment_intent"]).get().to_dict()
    pi = processor_intent_id(intent)
    if pi is None:
        return record(deps, refund_id, None, "failed", "processor_payment_unknown")
    port = card_method.processor(deps)
    try:
        answer = port.create_refund(
            pi, card_events.processor_amount(int(doc["amount"]), doc["currency"]), refund_id,
            reason=_processor_reason(doc.get("reason")),
            metadata={METADATA_KEY: refund_id, "payloom_intent_id": doc["payment_intent"]})
    except InvalidRequest as exc:       # the processor refused the request itself: final
        return record(deps, refund_id, None, "failed", exc.message[:200])
    return record(deps, refund_id, answer.id, answer.status, answer.failure_reason)


def _processor_reason(reason: str | None) -> str | None:
    """Stripe takes duplicate | fraudulent | requested_by_customer; ours map or are left out."""
    return reason if reason in ("duplicate", "fraudulent", "requested_by_customer") else None


def record(deps: Any, refund_id: str, processor_id: str | None, status: str,
           failure_reason: str | None = None) -> str:
    """Apply the processor's word on a refund (from the call's answer or a webhook)."""
    return run_unit(deps, lambda uow: apply(uow, refund_id, processor_id, status, failure_reason))


def apply(uow, refund_id: str, processor_id: str | None, status: str,
          failure_reason: str | None = None) -> str:
    ref, doc = service.load_for_update(uow, refund_id)
    if doc is None:
        return "missing"
    if doc["status"] != service.PENDING:
        return "done"
    processor = {**(doc.get("processor") or {}), "status": status}
    if processor_id:
        processor["id"] = processor_id
    if status in SUCCEEDED:
        service.complete(uow, ref, doc, processor=processor)
        return "succeeded"
    if status in FAILED:
        service.fail(uow, ref, doc, failure_reason or "processor_declined", processor=processor)
        return "failed"
    uow.update(ref, {"processor": processor, "updated_at": uow.now})
    return "pending"


def on_processor_event(uow, event: dict[str, Any]) -> str | None:
    """The inbox handler of Stripe ``refund.*`` events: find our refund by the processor's
    refund id (or ``metadata.payloom_refund``) and apply its status."""
    from google.cloud.firestore_v1 import FieldFilter
    obj = ((event.get("data") or {}).get("object")) or {}
    pid, status = obj.get("id"), obj.get("status")
    if not pid or not status:
        return "ignored"
    refund_id = (obj.get("metadata") or {}).get(METADATA_KEY)
    if not refund_id:
        q = (uow.db.collection(service.COLLECTION)
             .where(filter=FieldFilter("processor.id", "==", pid)).limit(1))
        found = uow.query(q)
        if not found:
            return "unknown_refund"
        refund_id = found[0].id
    return apply(uow, refund_id, pid, status, obj.get("failure_reason"))
