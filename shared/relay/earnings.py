"""Providers' earnings: one record per delivered message, in PPT ledger units (ADR 0043).

``relay_earnings/{ern_…}`` (the id is derived from the job id, so a message earns once) holds
the provider, SIM, job, ``amount`` (integer PPT units at the ledger scale, 6) and ``status``
``unpaid``. It is written in the same commit as the delivery that earned it
(``availability.release(..., outcome="delivered")``, or ``record_late`` for a phone that
delivered after its job was taken away on a deadline), and the provider's day and lifetime
counters (``relay_provider_stats``) grow by blind increments in that commit. Paying out —
crediting the provider's PPT wallet through the ledger and marking records ``paid`` — is the
next issue's; nothing here moves money yet.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.ledger.assets import format_decimal
from shared.platform.clock import unix
from shared.platform.ids import derived_id
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.relay import reputation
from shared.relay.supply_models import Earning, EarningsSummary

COLLECTION = "relay_earnings"
ASSET = "PPT"


def earning_ref(db, job_id: str):
    return db.collection(COLLECTION).document(derived_id("ern", "relay-earning", job_id))


def record(uow, sim_doc: dict[str, Any], job_id: str, now: dt.datetime, units: int) -> None:
    """Create the earning of a delivered job (exactly once: the caller's SIM document is the
    guard, see ``availability.release``) and count it on the provider."""
    from shared.relay.availability import count_provider
    ref = earning_ref(uow.db, job_id)
    uow.create(ref, {"id": ref.id, "provider_id": sim_doc["provider_id"], "sim_id": sim_doc["sim_id"],
                     "job_id": job_id, "amount": int(units), "asset": ASSET, "status": "unpaid",
                     "livemode": bool(sim_doc.get("livemode")), "created_at": now})
    count_provider(uow, sim_doc["provider_id"], now, {"earned_units": int(units)})


def record_late(uow, job: dict[str, Any], now: dt.datetime, units: int) -> bool:
    """The earning of a job whose phone delivered the message after dispatch had taken the job
    away on a deadline (ADR 0044: truth wins). The SIM's document no longer tracks that job,
    so the earning's own record is the guard: one read, created only if absent. Reputation is
    not credited again (the job already counted as timed out)."""
    from shared.relay import staging
    ref = earning_ref(uow.db, job["id"])
    if staging.load(uow, ref) is not None:
        return False
    sim = {"provider_id": job["provider_id"], "sim_id": job["sim_id"], "livemode": job["livemode"]}
    record(uow, sim, job["id"], now, units)
    return True


def resource(doc: dict[str, Any]) -> Earning:
    return Earning(id=doc["id"], amount=doc["amount"], amount_decimal=format_decimal(doc["amount"], ASSET),
                   asset=doc["asset"], sim=doc["sim_id"], job=doc["job_id"], status=doc["status"],
                   livemode=doc["livemode"], created=unix(doc["created_at"]))


def list_earnings(db, provider_id: str, params: ListQuery) -> ListResponse[Earning]:
    q = db.collection(COLLECTION).where(filter=FieldFilter("provider_id", "==", provider_id))
    return paginate(q, db.collection(COLLECTION), params, url="/v1/relay/earnings",
                    to_resource=resource, belongs=lambda d: d.get("provider_id") == provider_id)


def summary(db, provider_id: str, now: dt.datetime, days: int = 7) -> EarningsSummary:
    """Today, the last ``days`` days and all time, from the provider's counters (one read)."""
    col = db.collection("relay_provider_stats")
    keys = reputation.window_keys(now, days)
    refs = [col.document(f"{provider_id}:{k}") for k in keys] + [col.document(f"{provider_id}:total")]
    docs = {s.id: (s.to_dict() or {}) for s in db.get_all(refs) if s.exists}
    today = docs.get(f"{provider_id}:{keys[0]}", {})
    week = [docs.get(f"{provider_id}:{k}", {}) for k in keys]
    total = docs.get(f"{provider_id}:total", {})

    def units(items):
        return sum(int(d.get("earned_units") or 0) for d in items)

    return EarningsSummary(
        asset=ASSET, today=units([today]), today_decimal=format_decimal(units([today]), ASSET),
        last_7_days=units(week), last_7_days_decimal=format_decimal(units(week), ASSET),
        total=units([total]), total_decimal=format_decimal(units([total]), ASSET),
        delivered_today=int(today.get("d") or 0), delivered_7_days=sum(int(d.get("d") or 0) for d in week),
        delivered_total=int(total.get("d") or 0))
