"""Anti-fraud: detectors that turn a phone's reports into reputation penalties and events.

Dispatch (R2) calls ``observe_report`` on EVERY report a phone makes, refused ones too, inside
the unit of work that handles the report. Detectors (thresholds in ``SupplySettings``):

- ``invalid_report``: a report the platform refused (a job not assigned to this provider, a
  wrong or forged per-message token, an unknown job, a job never pushed): penalises the
  REPORTING provider, never the SIM the job was really assigned to;
- ``delivery_too_fast``: delivered less than ``min_delivery_seconds`` after sent; a carrier's
  delivery report takes seconds;
- ``send_too_fast``: sent less than ``min_send_seconds`` after assignment: the phone cannot
  have received the push, fetched the job and sent an SMS;
- ``delivered_unsent``: a delivery report for a job never reported sent;
- ``uniform_delivery``: the last ``uniform_min_samples`` delivery latencies vary less than
  ``uniform_max_cv`` (std/mean): carriers are never that regular, scripts are;
- ``many_accounts_per_device``: ``accounts_per_device_alert`` distinct accounts tried one phone
  (from ``devices.register``).

Each hit adds a decaying penalty (``reputation.py``) to the SIM or, for provider-level signals,
to the provider and all its SIMs, stores a ``relay_suspicious/{sus_…}`` record for operators
and emits ``relay.suspicious_activity`` (tenant ``platform``; at most one per SIM/provider and
kind per ``suspicious_event_interval_seconds``, while the penalty counts every hit).
"""
from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.platform.clock import unix
from shared.platform.ids import new_id
from shared.relay import availability, providers, reputation, staging
from shared.relay import supply_models as M
from shared.relay.supply_settings import SupplySettings, supply_settings

COLLECTION = "relay_suspicious"
LATENCY_SAMPLES = 20
WEIGHTS = {
    "invalid_report": 0.2,
    "forged_token": 0.3,
    "delivery_too_fast": 0.12,
    "send_too_fast": 0.08,
    "delivered_unsent": 0.2,
    "uniform_delivery": 0.25,
    "many_accounts_per_device": 0.3,
}
REPORT_KINDS = ("fetch", "ack", "sent", "delivered", "failed")


def observe_report(uow, *, sim_id: str | None, provider_id: str, job_id: str, kind: str,
                   assigned_at: dt.datetime | None, sent_at: dt.datetime | None,
                   delivered_at: dt.datetime | None, valid: bool, reason: str | None = None) -> list[str]:
    """Run the detectors on one report; returns the kinds flagged (for the caller's logs).

    ``valid=False``: the report was refused (``reason``: e.g. ``wrong_provider``,
    ``wrong_token``, ``unknown_job``, ``not_pushed``; ``wrong_token`` counts as forged)."""
    s = supply_settings(uow.deps)
    now = uow.now
    if not valid:
        kind_flag = "forged_token" if reason in ("wrong_token", "forged_token") else "invalid_report"
        penalise_provider(uow, provider_id, kind_flag, now, s, job_id=job_id, sim_id=sim_id,
                          detail=f"{kind} report refused: {reason or 'invalid'}")
        return [kind_flag]
    doc = availability.load(uow, sim_id) if sim_id else None
    if doc is None or doc.get("provider_id") != provider_id:
        return []
    flagged = []
    if kind == "sent" and assigned_at and sent_at:
        if (sent_at - assigned_at).total_seconds() < s.min_send_seconds:
            flagged.append(("send_too_fast", f"sent {(sent_at - assigned_at).total_seconds():.2f}s after assignment"))
    if kind == "delivered":
        if sent_at is None:
            flagged.append(("delivered_unsent", "delivery report for a job never reported sent"))
        elif delivered_at is not None:
            latency = (delivered_at - sent_at).total_seconds()
            if latency < s.min_delivery_seconds:
                flagged.append(("delivery_too_fast", f"delivered {latency:.2f}s after sent"))
            samples = (list(doc.get("latencies_ms") or []) + [int(latency * 1000)])[-LATENCY_SAMPLES:]
            doc["latencies_ms"] = samples
            if _uniform(samples, s):
                flagged.append(("uniform_delivery", f"last {len(samples)} delivery times vary "
                                                    f"{_cv(samples):.3f} (std/mean)"))
                doc["latencies_ms"] = []   # judge the next run of samples afresh
    if not flagged and kind != "delivered":
        return []   # nothing learnt: no write
    for flag, detail in flagged:
        reputation.add_penalty(doc, WEIGHTS[flag], now, s)
        _record(uow, doc, flag, detail, now, s, provider_id=provider_id, sim_id=doc["sim_id"],
                device_id=doc.get("device_id"), job_id=job_id)
    availability.evaluate(doc, now, s)
    availability.stage(uow, doc)
    return [f for f, _ in flagged]


def _cv(samples: list[int]) -> float:
    mean = statistics.fmean(samples)
    return statistics.pstdev(samples) / mean if mean > 0 else 0.0


def _uniform(samples: list[int], s: SupplySettings) -> bool:
    return len(samples) >= s.uniform_min_samples and _cv(samples[-s.uniform_min_samples:]) < s.uniform_max_cv


def penalise_provider(uow, provider_id: str, flag: str, now: dt.datetime, s: SupplySettings, *,
                      detail: str, job_id: str | None = None, sim_id: str | None = None,
                      device_id: str | None = None) -> None:
    """A provider-level penalty: on the provider record and carried by each of its SIMs."""
    ref = providers.provider_ref(uow.db, provider_id)
    doc = staging.load(uow, ref)
    if doc is None:
        return
    reputation.add_penalty(doc, WEIGHTS[flag], now, s)
    _record(uow, doc, flag, detail, now, s, provider_id=provider_id, sim_id=sim_id,
            device_id=device_id, job_id=job_id)
    doc["updated_at"] = now
    staging.stage(uow, ref, doc)
    for sim_doc in availability.load_many(uow, doc.get("sim_ids") or []).values():
        if sim_doc is None:
            continue
        sim_doc["provider_penalty"], sim_doc["provider_penalty_at"] = doc["penalty"], doc["penalty_at"]
        availability.evaluate(sim_doc, now, s)
        availability.stage(uow, sim_doc)


def many_accounts(uow, device_doc: dict[str, Any], provider_ids: list[str], now: dt.datetime) -> None:
    """Several accounts tried one phone: penalise each of them once for this device."""
    s = supply_settings(uow.deps)
    for provider_id in provider_ids:
        penalise_provider(uow, provider_id, "many_accounts_per_device", now, s,
                          detail=f"{len(provider_ids)} accounts used one device",
                          device_id=device_doc["id"])


def _record(uow, holder: dict[str, Any], flag: str, detail: str, now: dt.datetime, s: SupplySettings,
            *, provider_id: str | None, sim_id: str | None, device_id: str | None,
            job_id: str | None) -> bool:
    """Store the record; emit the event unless one of this kind went out recently for the
    same holder (SIM or provider). Returns whether the event was emitted."""
    sus_id = new_id("sus")
    rec = {"id": sus_id, "kind": flag, "provider_id": provider_id, "sim_id": sim_id,
           "device_id": device_id, "job_id": job_id, "detail": detail[:300],
           "penalty": WEIGHTS[flag], "created_at": now}
    uow.create(uow.db.collection(COLLECTION).document(sus_id), rec)
    last = (holder.get("flags_last") or {}).get(flag)
    if last is not None and (now - last).total_seconds() < s.suspicious_event_interval_seconds:
        return False
    holder.setdefault("flags_last", {})[flag] = now
    uow.emit(M.SUSPICIOUS_ACTIVITY.name, tenant="platform",
             data={"object": resource(rec).model_dump(mode="json")})
    return True


def resource(rec: dict[str, Any]) -> M.SuspiciousActivity:
    return M.SuspiciousActivity(id=rec["id"], kind=rec["kind"], provider=rec.get("provider_id"),
                                sim=rec.get("sim_id"), device=rec.get("device_id"), job=rec.get("job_id"),
                                detail=rec["detail"], penalty=rec["penalty"], created=unix(rec["created_at"]))


def list_suspicious(db, *, provider: str | None, limit: int) -> M.SuspiciousList:
    from google.cloud import firestore
    q = db.collection(COLLECTION)
    if provider:
        q = q.where(filter=FieldFilter("provider_id", "==", provider))
    q = q.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
    return M.SuspiciousList(data=[resource(s.to_dict()) for s in q.stream()])
