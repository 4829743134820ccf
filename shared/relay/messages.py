"""The client's messages: create (202), read, list, cancel (ADR 0044).

Create is ONE batch read and ONE commit: the idempotency record (the router's), the message's
own derived id (a retry whose stored response expired re-finds it), the recipient's document
(opt-out, frequency caps), the network's block-list entry for the number, the client's limits
and the day's usage shards (and the callback secret), all read together;
then the message, the recipient's counts, one usage shard, the ``message.queued`` event and two
timers (dispatch, at once or at ``send_at``; expiry at ``expires_at``) commit together.
Everything that can be refused is refused before any write, with its own code:
``recipient_unsupported``/``phone_*`` (400), ``text_*`` (400), ``content_*`` (422),
``recipient_blocked``/``recipient_opted_out`` (422), ``recipient_frequency_capped`` and
``daily_quota_exceeded`` (429), ``callback_secret_required`` (400).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud.firestore_v1 import FieldFilter

from shared.identity.factors.phone import parse_phone
from shared.platform.auth import Principal
from shared.platform.errors import InvalidRequest, Unprocessable
from shared.platform.ids import derived_id, new_id
from shared.platform.pagination import ListResponse, paginate, tenant_mode_query
from shared.platform.uow import UnitOfWork
from shared.relay import (
    blacklist,
    carriers,
    content,
    encoding,
    lifecycle,
    optout,
    quotas,
)
from shared.relay.dispatch_settings import DispatchSettings, dispatch_settings
from shared.relay.lifecycle import CANCELABLE, CANCELED, COLLECTION, QUEUED
from shared.relay.message_models import CreateMessage, Message, MessageListQuery


def dispatch_rank(priority: str) -> int:
    from shared.relay.dispatch import PRIORITY_RANK
    return PRIORITY_RANK[priority]


def _recipient(raw: str, settings: DispatchSettings):
    number = parse_phone(raw, param="to")
    if str(number.country_code) not in settings.allowed_country_codes:
        raise InvalidRequest("The relay network sends to Cambodian mobile numbers (+855) only.",
                             code="recipient_unsupported", param="to")
    return number


def _times(body: CreateMessage, now: dt.datetime, s: DispatchSettings):
    send_at = None
    if body.send_at is not None:
        when = dt.datetime.fromtimestamp(body.send_at, dt.UTC)
        if when > now + dt.timedelta(seconds=s.max_schedule_seconds):
            raise InvalidRequest(f"send_at may be at most {s.max_schedule_seconds // 86400} days "
                                 f"ahead.", code="send_at_too_far", param="send_at")
        send_at = when if when > now else None
    start = send_at or now
    if body.expires_at is None:
        expiry = start + dt.timedelta(seconds=s.default_expiry_seconds)
    else:
        expiry = dt.datetime.fromtimestamp(body.expires_at, dt.UTC)
        if expiry < start + dt.timedelta(seconds=s.min_expiry_seconds):
            raise InvalidRequest(f"expires_at must be at least {s.min_expiry_seconds} seconds after "
                                 f"the message may be sent.", code="expires_at_invalid",
                                 param="expires_at")
        if expiry > start + dt.timedelta(seconds=s.max_expiry_seconds):
            raise InvalidRequest(f"expires_at may be at most {s.max_expiry_seconds // 3600} hours "
                                 f"after the message may be sent.", code="expires_at_invalid",
                                 param="expires_at")
    return send_at, expiry


def _check_callback(uow: UnitOfWork, url: str) -> None:
    from shared.webhooks.endpoints import check_destination
    from shared.webhooks.settings import webhook_settings
    try:
        check_destination(uow.deps, webhook_settings(uow.deps), url)
    except InvalidRequest as exc:
        exc.param = "callback_url"
        raise


def create(uow: UnitOfWork, principal: Principal, body: CreateMessage,
           idempotency_key: str | None) -> Message:
    from shared.relay import callbacks
    s = dispatch_settings(uow.deps)
    number = _recipient(body.to, s)
    encoded = encoding.encode(body.text, max_parts=s.max_parts)
    verdict = content.check(body.text)
    now = uow.now
    send_at, expiry = _times(body, now, s)
    tenant, live = principal.tenant_id, principal.livemode
    message_id = (derived_id("msg", tenant, "live" if live else "test", idempotency_key)
                  if idempotency_key else new_id("msg"))
    ref = lifecycle.message_ref(uow.db, message_id)
    r_ref = optout.recipient_ref(uow.db, tenant, live, number.e164)
    c_ref = quotas.client_ref(uow.db, tenant)
    u_refs = quotas.shard_refs(uow.db, tenant, live, now)
    b_ref = blacklist.entry_ref(uow.db, "recipient", blacklist.recipient_key(number.e164))
    s_ref = callbacks.secret_ref(uow.db, tenant, live) if body.callback_url else None
    snaps = uow.get_all([ref, r_ref, c_ref, b_ref, *u_refs] + ([s_ref] if s_ref else []))
    if snaps[ref.path].exists:
        doc = snaps[ref.path].to_dict()
        if doc.get("tenant") != tenant or doc.get("livemode") != live:
            raise InvalidRequest("This Idempotency-Key was used for another request.",
                                 code="idempotency_key_reused")
        return lifecycle.resource(doc)
    if body.callback_url:
        if not callbacks.has_secret(snaps[s_ref.path], now):
            raise InvalidRequest("Create your callback signing secret first "
                                 "(POST /v1/messages/callback_secret).",
                                 code="callback_secret_required", param="callback_url")
        _check_callback(uow, body.callback_url)
    if snaps[b_ref.path].exists:
        raise Unprocessable("The recipient is on the network's block list; it was not sent.",
                            code="recipient_blocked", param="to")
    optout.admit(uow, snaps[r_ref.path], tenant=tenant, livemode=live, e164=number.e164,
                 settings=s)
    quotas.take(uow, snaps, u_refs, quota=quotas.limits_of(snaps[c_ref.path], s.daily_quota),
                tenant=tenant)
    priority = body.priority
    doc: dict[str, Any] = {
        "id": message_id, "object": "message", "tenant": tenant, "livemode": live,
        "project_id": principal.project_id, "created_by": principal.id,
        "to": number.e164, "carrier": carriers.relay_carrier(number), "text": body.text,
        "encoding": encoded.encoding, "characters": encoded.characters, "parts": encoded.parts,
        "priority": priority, "client_reference": body.client_reference,
        "callback_url": body.callback_url, "metadata": body.metadata,
        "status": QUEUED, "history": [lifecycle.history_entry(QUEUED, now, "created")],
        "attempts": 0, "failures": 0, "max_attempts": int(s.max_attempts.get(priority, 3)),
        "job": None, "priority_rank": dispatch_rank(priority), "waiting": False,
        "waiting_since": None, "woken_at": None, "jobs": [], "excluded_sims": [], "excluded_providers": [], "dispatch_tries": 0,
        "send_at": send_at, "expiry_at": expiry, "sent_at": None, "delivered_at": None,
        "sent_by_job": None, "failure_code": None, "failure_message": None,
        "carrier_error": None, "content_score": verdict.score, "duplicate_sends": 0,
        "created_at": now, "updated_at": now,
        "purge_at": now + dt.timedelta(days=s.retention_days),
        **lifecycle.due("dispatch", send_at or now),
    }
    uow.create(ref, doc)
    lifecycle.announce(uow, doc, QUEUED)
    lifecycle.schedule(uow, s, "dispatch", {"message_id": message_id, "attempt": 0},
                       when=send_at, name=("relay-dispatch", message_id, "0", "0"))
    lifecycle.schedule(uow, s, "deadline", {"message_id": message_id, "step": "expiry"},
                       when=expiry, name=("relay-expiry", message_id))
    return lifecycle.resource(doc)


def retrieve(uow: UnitOfWork, principal: Principal, message_id: str) -> Message:
    return lifecycle.resource(lifecycle.owned(uow, principal, message_id)[1])


def list_messages(deps, principal: Principal, query: MessageListQuery) -> ListResponse[Message]:
    """Newest first; at most one of status, to, client_reference (each has its composite index
    with the created range: (tenant, livemode, <filter>, created_at desc))."""
    chosen = [f for f in ("status", "to", "client_reference") if getattr(query, f)]
    if len(chosen) > 1:
        raise InvalidRequest("Filter by at most one of status, to and client_reference.",
                             code="parameter_invalid", param=chosen[1])
    col = deps.db.collection(COLLECTION)
    q, belongs = tenant_mode_query(col, principal)
    if query.status:
        q = q.where(filter=FieldFilter("status", "==", query.status))
    if query.to:
        q = q.where(filter=FieldFilter("to", "==", parse_phone(query.to, param="to").e164))
    if query.client_reference:
        q = q.where(filter=FieldFilter("client_reference", "==", query.client_reference))
    q = query.filter_created(q)
    page = paginate(q, col, query, url="/v1/messages", to_resource=lifecycle.resource,
                    belongs=belongs)
    return ListResponse[Message](data=page.data, has_more=page.has_more, url=page.url)


def cancel(uow: UnitOfWork, principal: Principal, message_id: str) -> Message:
    """Cancel while no phone has the text (queued, or assigned and not yet fetched): the job's
    SIM is released. Canceling twice answers the message; later statuses are a 409."""
    from shared.relay import dispatch, jobs
    ref, doc = lifecycle.owned(uow, principal, message_id)
    if doc["status"] == CANCELED:
        return lifecycle.resource(doc)
    if doc["status"] not in CANCELABLE:
        raise lifecycle.MessageStateError(
            f"A message that is {doc['status']} cannot be canceled: a phone already has it.",
            code="message_not_cancelable")
    if doc.get("job"):
        jobs.end(uow, doc["job"], "canceled", outcome="canceled")
        dispatch.wake(uow, doc["livemode"])
    doc = lifecycle.transition(uow, ref, doc, CANCELED, reason="canceled_by_client", job=None,
                               waiting=False)
    return lifecycle.resource(doc)
