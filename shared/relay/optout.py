"""Recipients of one client: the opt-out (STOP) list and the per-recipient frequency caps.

One document per (client, mode, number): ``relay_recipients/{rcp_…}`` (id derived from the
three, so creating a message reads it in the same batch as everything else, no query). It holds
the opt-out (``opted_out``, ``opted_out_at``, ``opt_out_source``) and the fixed-window counts
of messages accepted for that number this hour and this (Phnom Penh) day. Creating a message
reads it, refuses an opted-out number (422 ``recipient_opted_out``) or one over a cap (429
``recipient_frequency_capped``), and writes the counts in the same commit: exact, and two
messages to one number at once simply re-run one unit.

Opt-outs come from the client (``POST /v1/messages/opt_outs``) or from a STOP reply a provider's
phone received for one of the client's messages (``record_stop``).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.identity.factors.phone import parse_phone
from shared.platform.auth import Principal
from shared.platform.errors import NotFound, RateLimited, Unprocessable
from shared.platform.ids import derived_id
from shared.platform.models import is_doc_id
from shared.platform.pagination import ListQuery, ListResponse, paginate, tenant_mode_query
from shared.platform.uow import UnitOfWork
from shared.relay.availability import window_starts
from shared.relay.dispatch_settings import DispatchSettings
from shared.relay.message_models import DeletedOptOut, OptOut

COLLECTION = "relay_recipients"
# STOP keywords (CTIA's list, and Khmer "stop"/"cancel"), matched on the whole trimmed reply.
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout",
                        "opt out", "ឈប់", "បញ្ឈប់", "ឈប់ផ្ញើ"})


def recipient_id(tenant: str, livemode: bool, e164: str) -> str:
    return derived_id("rcp", tenant, "live" if livemode else "test", e164)


def recipient_ref(db, tenant: str, livemode: bool, e164: str):
    return db.collection(COLLECTION).document(recipient_id(tenant, livemode, e164))


def _ts(value) -> int | None:
    return int(value.timestamp()) if isinstance(value, dt.datetime) else None


def _resource(doc: dict[str, Any]) -> OptOut:
    return OptOut(id=doc["id"], to=doc["to"], livemode=doc["livemode"],
                  source=doc.get("opt_out_source") or "client", created=_ts(doc["opted_out_at"]))


def _new(tenant: str, livemode: bool, e164: str, now: dt.datetime) -> dict[str, Any]:
    return {"id": recipient_id(tenant, livemode, e164), "tenant": tenant, "livemode": livemode,
            "to": e164, "opted_out": False, "opted_out_at": None, "opt_out_source": None,
            "windows": {}, "created_at": now, "updated_at": now}


def admit(uow: UnitOfWork, snap, *, tenant: str, livemode: bool, e164: str,
          settings: DispatchSettings) -> None:
    """Refuse an opted-out or capped recipient; else count the message (buffered write).
    ``snap`` is the recipient document as read through ``uow``."""
    now = uow.now
    doc = snap.to_dict() if snap.exists else _new(tenant, livemode, e164, now)
    if doc.get("opted_out"):
        raise Unprocessable("The recipient opted out of your messages (STOP); it was not sent.",
                            code="recipient_opted_out", param="to")
    starts = window_starts(now)
    windows = dict(doc.get("windows") or {})
    caps = {"h": settings.per_recipient_hour, "d": settings.per_recipient_day}
    for key, cap in caps.items():
        start, count = (windows.get(key) or [0, 0])
        count = count if start == starts[key] else 0
        if count >= cap:
            reset = starts[key] + (3600 if key == "h" else 86400)
            raise RateLimited(f"At most {cap} messages per {'hour' if key == 'h' else 'day'} go to "
                              f"one recipient.", code="recipient_frequency_capped",
                              headers={"Retry-After": str(max(1, reset - int(now.timestamp())))})
        windows[key] = [starts[key], count + 1]
    doc.update(windows=windows, updated_at=now)
    if snap.exists:
        uow.update(snap.reference, {"windows": windows, "updated_at": now})
    else:
        uow.create(snap.reference, doc)


def opt_out(uow: UnitOfWork, principal: Principal, to: str, source: str) -> OptOut:
    """Record that ``to`` wants no more messages from this client (idempotent)."""
    e164 = parse_phone(to, param="to").e164
    return _resource(_set_opt_out(uow, principal.tenant_id, principal.livemode, e164, source))


def _set_opt_out(uow: UnitOfWork, tenant: str, livemode: bool, e164: str, source: str) -> dict:
    ref = recipient_ref(uow.db, tenant, livemode, e164)
    snap = uow.get(ref)
    now = uow.now
    doc = snap.to_dict() if snap.exists else _new(tenant, livemode, e164, now)
    if doc.get("opted_out"):
        return doc
    doc.update(opted_out=True, opted_out_at=now, opt_out_source=source, updated_at=now)
    uow.set(ref, doc)
    return doc


def opt_in(uow: UnitOfWork, principal: Principal, opt_out_id: str) -> DeletedOptOut:
    """Remove an opt-out (the recipient asked to receive messages again)."""
    if not is_doc_id(opt_out_id) or not opt_out_id.startswith("rcp_"):
        raise NotFound("No such opt-out.", param="id")
    ref = uow.db.collection(COLLECTION).document(opt_out_id)
    snap = uow.get(ref)
    doc = snap.to_dict() if snap.exists else None
    if (doc is None or doc.get("tenant") != principal.tenant_id
            or doc.get("livemode") != principal.livemode or not doc.get("opted_out")):
        raise NotFound("No such opt-out.", param="id")
    uow.update(ref, {"opted_out": False, "opted_out_at": None, "opt_out_source": None,
                     "updated_at": uow.now})
    return DeletedOptOut(id=opt_out_id)


def list_opt_outs(deps, principal: Principal, query: ListQuery) -> ListResponse[OptOut]:
    """Newest first. Index: (tenant, livemode, opted_out, opted_out_at desc)."""
    col = deps.db.collection(COLLECTION)
    own, belongs = tenant_mode_query(col, principal)
    q = own.where(filter=FieldFilter("opted_out", "==", True))
    page = paginate(q, col, query, url="/v1/messages/opt_outs", to_resource=_resource,
                    order_field="opted_out_at",
                    belongs=lambda d: belongs(d) and bool(d.get("opted_out")))
    return ListResponse[OptOut](data=page.data, has_more=page.has_more, url=page.url)


def is_stop(text: str) -> bool:
    words = re.sub(r"[\s\u200b]+", " ", (text or "").strip().casefold()).strip(" .!")
    return words in STOP_WORDS


def record_stop(uow: UnitOfWork, message: dict[str, Any]) -> dict[str, Any]:
    """A STOP reply to ``message`` (received by the phone that sent it): opt its recipient out
    of that message's client."""
    return _set_opt_out(uow, message["tenant"], message["livemode"], message["to"], "stop_reply")
