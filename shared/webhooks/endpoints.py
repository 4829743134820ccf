"""Webhook endpoints: the rules of creating, changing, rotating and looking them up.

Document ``webhook_endpoints/{we_…}`` (the shared contract): id, object, owner, livemode, url,
description, metadata, enabled_events, status, disabled_reason, secrets (newest first: id,
sealed, created_at, expires_at), failing_since, last_success_at, created_at, updated_at.

Owner and mode come from the caller (``principal.tenant_id``, ``principal.livemode``); another
owner's or the other mode's endpoint does not exist for the caller (404, nothing leaks).

Race safety without transactions: each owner+mode has one registry document
``webhook_endpoint_owners/{weo_…}`` mapping its endpoint ids to a hash of their canonical URL.
Every create, URL change and delete reads and rewrites it in the same unit, so two concurrent
creates of the same URL (or the 17th endpoint) conflict at commit and the loser, run again, gets
its 409 or 400. Cost: one extra document in the unit's single batch get; endpoint writes are rare.

Signing secrets are sealed (``secrets_at_rest``) with the context
``webhook_endpoints/<id>#secret:<secret id>``; a rotation prepends a new one and gives the others
``expires_at = now + grace``: during the grace every live secret signs each delivery.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from google.cloud import firestore

from shared.platform.auth import Principal
from shared.platform import catalog
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from shared.platform.ids import derived_id, new_id
from shared.platform.pagination import ListQuery, ListResponse, paginate
from shared.platform.uow import UnitOfWork
from shared.webhooks import signing, ssrf
from shared.webhooks.models import (ENDPOINT_CREATED, ENDPOINT_DELETED, ENDPOINT_DISABLED,
                                    ENDPOINT_ENABLED, ENDPOINT_UPDATED, CreateEndpoint,
                                    DeletedWebhookEndpoint, UpdateEndpoint, WebhookEndpoint,
                                    WebhookEndpointWithSecret, check_metadata)
from shared.webhooks.settings import WebhookSettings, webhook_settings

COLLECTION = "webhook_endpoints"
REGISTRY = "webhook_endpoint_owners"
MAX_LIVE_SECRETS = 5  # repeated rotations within a grace keep at most this many signing
LIST_URL = "/v1/webhook_endpoints"


# --- lookups (also used by delivery) -------------------------------------------------------

def ref(db, endpoint_id: str):
    """The endpoint's document reference."""
    return db.collection(COLLECTION).document(endpoint_id)


def _not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"No such webhook endpoint: '{endpoint_id[:64]}'", param="endpoint_id")


def owned(snap, principal: Principal, endpoint_id: str) -> dict[str, Any]:
    """The endpoint's document if it belongs to the caller's tenant and mode; 404 otherwise
    (the same answer as a missing id, so ids of other tenants cannot be probed)."""
    if not snap.exists:
        raise _not_found(endpoint_id)
    doc = snap.to_dict() or {}
    if doc.get("owner") != principal.tenant_id or bool(doc.get("livemode")) != bool(principal.livemode):
        raise _not_found(endpoint_id)
    return doc


def to_resource(doc: dict[str, Any]) -> WebhookEndpoint:
    """The API view of an endpoint document: never a secret."""
    return WebhookEndpoint(**_resource_fields(doc))


def _resource_fields(doc: dict[str, Any]) -> dict[str, Any]:
    ts = lambda v: rfc3339(v) if v else None  # noqa: E731
    entries = doc.get("secrets") or []
    issued = entries[0].get("created_at") if entries else None
    rotated = issued if issued and issued > doc["created_at"] else None  # not the creation's
    previous = entries[1].get("expires_at") if len(entries) > 1 else None
    return dict(id=doc["id"], url=doc["url"], enabled_events=list(doc.get("enabled_events") or []),
                description=doc.get("description"), metadata=dict(doc.get("metadata") or {}),
                status=doc.get("status", "enabled"), disabled_reason=doc.get("disabled_reason"),
                livemode=bool(doc.get("livemode")), created=rfc3339(doc["created_at"]),
                updated=ts(doc.get("updated_at")), failing_since=ts(doc.get("failing_since")),
                last_success_at=ts(doc.get("last_success_at")), secret_rotated_at=ts(rotated),
                previous_secret_expires_at=ts(previous))


def _with_secret(doc: dict[str, Any], secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**_resource_fields(doc), secret=secret)


def subscribes(patterns: Iterable[str], event_type: str) -> bool:
    """Whether subscriptions ``patterns`` cover ``event_type``: ``*``, an exact name, or
    ``family.*`` (every type whose name starts with ``family.``)."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def is_public(event_type: str) -> bool:
    return catalog.is_public(event_type)


def matching(db, owner: str, livemode: bool, event_type: str) -> list[dict[str, Any]]:
    """The owner's enabled endpoints in this mode that subscribe to ``event_type`` (a public
    type; internal types match nothing). One query on ``owner`` (single-field index; an owner has
    at most ``max_endpoints_per_owner`` per mode), the rest filtered in memory."""
    if not is_public(event_type):
        return []
    query = db.collection(COLLECTION).where(filter=firestore.FieldFilter("owner", "==", owner))
    found = []
    for snap in query.stream():
        doc = snap.to_dict() or {}
        if (bool(doc.get("livemode")) == bool(livemode) and doc.get("status") == "enabled"
                and subscribes(doc.get("enabled_events") or [], event_type)):
            found.append(doc)
    return found


def live_secrets(doc: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """The secret entries that still sign at ``now``, newest first."""
    return [s for s in doc.get("secrets") or [] if s.get("expires_at") is None or s["expires_at"] > now]


def signing_secrets(deps, doc: dict[str, Any], now: dt.datetime) -> list[str]:
    """The plaintext ``whsec_…`` secrets that sign a delivery at ``now``, newest first, opened
    by ``shared.webhooks.secrets`` (imported on use, so code that only reads endpoints loads no
    KMS client; the attempt function names it in its main.py)."""
    from shared.webhooks import secrets
    return secrets.open_all(deps, doc["id"], live_secrets(doc, now))


def set_disabled(uow: UnitOfWork, ref, doc: dict[str, Any], reason: str) -> WebhookEndpoint:
    """Disable an endpoint (``manual``, ``gone`` after a 410, ``failing`` after 5 days of
    failures) and announce it with ``webhook_endpoint.disabled``. ``doc`` must have been read
    through ``uow`` (so the write is guarded). Already disabled: nothing changes."""
    if reason not in ("manual", "gone", "failing"):
        raise ValueError(f"unknown disabled reason {reason!r}")
    if doc.get("status") == "disabled":
        return to_resource(doc)
    change = {"status": "disabled", "disabled_reason": reason, "updated_at": uow.now}
    uow.update(ref, change)
    return _announce(uow, ENDPOINT_DISABLED.name, {**doc, **change})


def _announce(uow: UnitOfWork, event_type: str, doc: dict[str, Any]) -> WebhookEndpoint:
    resource = to_resource(doc)
    uow.emit(event_type, tenant=doc["owner"], livemode=bool(doc.get("livemode")),
             data={"object": resource.model_dump(mode="json")})
    return resource


# --- validation ----------------------------------------------------------------------------

def validate_events(patterns: list[str]) -> list[str]:
    """Exact names must be public declared types; ``family.*`` must cover at least one."""
    public = [name for name, et in catalog.load_all().items() if et.public]
    for pattern in patterns:
        if pattern == "*":
            continue
        if pattern.endswith(".*") and "*" not in pattern[:-2] and len(pattern) > 2:
            if any(name.startswith(pattern[:-1]) for name in public):
                continue
        elif "*" not in pattern and is_public(pattern):
            continue
        raise InvalidRequest(f"Unknown event type {pattern[:100]!r}: use a public event type, "
                             f"'family.*' or '*'.", code="unknown_event_type", param="enabled_events")
    return patterns


def resolver(deps) -> ssrf.Resolver:
    """The DNS port (tests inject ``deps.extras["webhooks.resolver"]``)."""
    return deps.get("webhooks.resolver", lambda: ssrf.system_resolver)


def check_destination(deps, settings: WebhookSettings, url: str) -> ssrf.ParsedUrl:
    """The URL's syntax and every address it resolves to now, as clear 4xx errors."""
    parsed = ssrf.check_url(url, allow_loopback=bool(settings.allow_loopback))
    try:
        ssrf.resolve(parsed, allow_loopback=bool(settings.allow_loopback), resolver=resolver(deps))
    except ssrf.UnsafeDestination as exc:
        raise InvalidRequest(f"The URL's host resolves to a refused address ({exc.reason}): "
                             f"webhooks go to public internet addresses only.",
                             code="url_unsafe", param="url") from None
    except ssrf.Unresolvable as exc:
        if exc.temporary:
            raise ServiceUnavailable("The URL's host could not be resolved right now; retry.",
                                     code="dns_unavailable", headers={"Retry-After": "5"}) from None
        raise InvalidRequest("The URL's host name does not resolve.", code="url_unresolvable",
                             param="url") from None
    return parsed


def url_key(parsed: ssrf.ParsedUrl) -> str:
    return hashlib.sha256(parsed.normalized.encode()).hexdigest()[:32]


def _registry_ref(db, owner: str, livemode: bool):
    return db.collection(REGISTRY).document(derived_id("weo", owner, "live" if livemode else "test"))


def _registry(uow: UnitOfWork, owner: str, livemode: bool):
    reg_ref = _registry_ref(uow.db, owner, livemode)
    snap = uow.get(reg_ref)
    entries = dict((snap.to_dict() or {}).get("endpoints") or {}) if snap.exists else {}
    return reg_ref, entries


def _save_registry(uow: UnitOfWork, reg_ref, owner: str, livemode: bool, entries: dict[str, str]) -> None:
    uow.set(reg_ref, {"owner": owner, "livemode": livemode, "endpoints": entries,
                      "updated_at": uow.now})


def _refuse_duplicate(entries: dict[str, str], key: str, except_id: str | None = None) -> None:
    if any(v == key and k != except_id for k, v in entries.items()):
        raise Conflict("An endpoint with this URL already exists.", code="duplicate_endpoint",
                       param="url")


def _new_secret_entry(uow: UnitOfWork, endpoint_id: str) -> tuple[dict[str, Any], str]:
    from shared.webhooks import secrets  # the API function names it in its main.py (KMS role)
    return secrets.new_secret_entry(uow, endpoint_id)


# --- the API's operations ------------------------------------------------------------------

def create(uow: UnitOfWork, principal: Principal, body: CreateEndpoint) -> WebhookEndpointWithSecret:
    """A new endpoint; the answer is the only place its signing secret appears."""
    settings = webhook_settings(uow.deps)
    owner, livemode = principal.tenant_id, bool(principal.livemode)
    events = validate_events(body.enabled_events)
    parsed = check_destination(uow.deps, settings, body.url)
    key = url_key(parsed)
    reg_ref, entries = _registry(uow, owner, livemode)
    _refuse_duplicate(entries, key)
    if len(entries) >= settings.max_endpoints_per_owner:
        raise InvalidRequest(f"At most {settings.max_endpoints_per_owner} webhook endpoints per "
                             f"account and mode; delete one first.", code="too_many_endpoints")
    endpoint_id = new_id("we")
    secret_entry, secret = _new_secret_entry(uow, endpoint_id)
    doc = {"id": endpoint_id, "object": "webhook_endpoint", "owner": owner, "livemode": livemode,
           "url": body.url, "description": body.description, "metadata": dict(body.metadata),
           "enabled_events": events, "status": "enabled", "disabled_reason": None,
           "secrets": [secret_entry], "failing_since": None, "last_success_at": None,
           "created_at": uow.now, "updated_at": uow.now}
    uow.create(ref(uow.db, endpoint_id), doc)
    _save_registry(uow, reg_ref, owner, livemode, {**entries, endpoint_id: key})
    _announce(uow, ENDPOINT_CREATED.name, doc)
    return _with_secret(doc, secret)


def get(deps, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    return to_resource(owned(ref(deps.db, endpoint_id).get(), principal, endpoint_id))


def list_endpoints(deps, principal: Principal, query: ListQuery) -> ListResponse[WebhookEndpoint]:
    """The caller's endpoints in its mode, newest first (index: owner, livemode, created_at desc)."""
    owner, livemode = principal.tenant_id, bool(principal.livemode)
    col = deps.db.collection(COLLECTION)
    q = (col.where(filter=firestore.FieldFilter("owner", "==", owner))
            .where(filter=firestore.FieldFilter("livemode", "==", livemode)))
    page = paginate(q, col, query, url=LIST_URL, to_resource=to_resource,
                    belongs=lambda d: d.get("owner") == owner and bool(d.get("livemode")) == livemode)
    return ListResponse[WebhookEndpoint](data=page.data, has_more=page.has_more, url=page.url)


def update(uow: UnitOfWork, principal: Principal, endpoint_id: str, body: UpdateEndpoint) -> WebhookEndpoint:
    """Change the URL, events, description or metadata (merged; an empty value removes a key)."""
    endpoint_ref = ref(uow.db, endpoint_id)
    if body.url is not None:  # the registry rides along with the endpoint's read
        uow.prefetch(_registry_ref(uow.db, principal.tenant_id, bool(principal.livemode)))
    doc = owned(uow.get(endpoint_ref), principal, endpoint_id)
    given = body.model_fields_set
    change: dict[str, Any] = {}
    if body.enabled_events is not None and body.enabled_events != doc.get("enabled_events"):
        change["enabled_events"] = validate_events(body.enabled_events)
    if "description" in given and body.description != doc.get("description"):
        change["description"] = body.description
    if "metadata" in given:
        metadata = _merged_metadata(doc.get("metadata") or {}, body.metadata)
        if metadata != (doc.get("metadata") or {}):
            change["metadata"] = metadata
    if body.url is not None and body.url != doc["url"]:
        settings = webhook_settings(uow.deps)
        parsed = check_destination(uow.deps, settings, body.url)
        reg_ref, entries = _registry(uow, doc["owner"], bool(doc.get("livemode")))
        _refuse_duplicate(entries, url_key(parsed), except_id=endpoint_id)
        _save_registry(uow, reg_ref, doc["owner"], bool(doc.get("livemode")),
                       {**entries, endpoint_id: url_key(parsed)})
        change["url"] = body.url
    if not change:
        return to_resource(doc)
    change["updated_at"] = uow.now
    uow.update(endpoint_ref, change)
    return _announce(uow, ENDPOINT_UPDATED.name, {**doc, **change})


def _merged_metadata(current: dict[str, str], given: dict[str, str] | None) -> dict[str, str]:
    if not given:  # null or {} clears every key (Stripe)
        return {}
    merged = {**current, **given}
    merged = {k: v for k, v in merged.items() if v != ""}
    try:
        check_metadata(merged, allow_empty_values=False)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid metadata: {exc}.", code="parameter_invalid",
                             param="metadata") from None
    return merged


def delete(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> DeletedWebhookEndpoint:
    """Delete an endpoint; deliveries still queued for it find it gone and stop."""
    endpoint_ref = ref(uow.db, endpoint_id)
    uow.prefetch(_registry_ref(uow.db, principal.tenant_id, bool(principal.livemode)))
    doc = owned(uow.get(endpoint_ref), principal, endpoint_id)
    owner, livemode = doc["owner"], bool(doc.get("livemode"))
    reg_ref, entries = _registry(uow, owner, livemode)
    entries.pop(endpoint_id, None)
    uow.delete(endpoint_ref)
    _save_registry(uow, reg_ref, owner, livemode, entries)
    resource = _announce(uow, ENDPOINT_DELETED.name, doc)
    return DeletedWebhookEndpoint(**resource.model_dump())


def enable(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    """Enable again; the failure clock restarts (``failing_since`` cleared)."""
    endpoint_ref = ref(uow.db, endpoint_id)
    doc = owned(uow.get(endpoint_ref), principal, endpoint_id)
    if doc.get("status") == "enabled":
        return to_resource(doc)
    change = {"status": "enabled", "disabled_reason": None, "failing_since": None,
              "updated_at": uow.now}
    uow.update(endpoint_ref, change)
    return _announce(uow, ENDPOINT_ENABLED.name, {**doc, **change})


def disable(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    endpoint_ref = ref(uow.db, endpoint_id)
    doc = owned(uow.get(endpoint_ref), principal, endpoint_id)
    return set_disabled(uow, endpoint_ref, doc, "manual")


def rotate_secret(uow: UnitOfWork, principal: Principal, endpoint_id: str,
                  expires_in: int | None = None) -> WebhookEndpointWithSecret:
    """Issue a new secret; the current ones keep signing for ``expires_in`` seconds (default
    ``rotation_grace_seconds``; 0 ends them now), so receivers switch without a failed delivery."""
    settings = webhook_settings(uow.deps)
    grace = settings.rotation_grace_seconds if expires_in is None else expires_in
    if not 0 <= grace <= settings.max_rotation_grace_seconds:
        raise InvalidRequest(f"expires_in_seconds must be between 0 and "
                             f"{settings.max_rotation_grace_seconds}.",
                             code="parameter_invalid", param="expires_in_seconds")
    endpoint_ref = ref(uow.db, endpoint_id)
    doc = owned(uow.get(endpoint_ref), principal, endpoint_id)
    now = uow.now
    ends = now + dt.timedelta(seconds=grace)
    kept = []
    if grace > 0:
        for entry in live_secrets(doc, now):
            expires = entry.get("expires_at")
            kept.append({**entry, "expires_at": min(expires, ends) if expires else ends})
    new_entry, secret = _new_secret_entry(uow, endpoint_id)
    secrets = [new_entry] + kept[:MAX_LIVE_SECRETS - 1]
    change = {"secrets": secrets, "updated_at": now}
    uow.update(endpoint_ref, change)
    doc = {**doc, **change}
    _announce(uow, ENDPOINT_UPDATED.name, doc)
    return _with_secret(doc, secret)
