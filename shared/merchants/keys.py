"""A merchant's per-project API keys, through the identity capability's key service.

Keys are owned by the merchant (``owner_id = mch_…``: the key's principal has the merchant as
tenant) and belong to a project (``project_id``, carried by the principal). A key has its
project's mode: ``sk_test_`` keys exist only for test projects and see only test objects,
``sk_live_`` likewise. Listing, rolling and revoking act in the caller's mode: a key of the
other mode is a 404, as if it did not exist.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.identity.apikeys import service as apikeys
from shared.merchants import projects
from shared.merchants.models import (
    CreateProjectKey,
    KeyListQuery,
    MerchantApiKey,
    MerchantApiKeyWithSecret,
    RollKey,
)
from shared.platform.auth import Principal
from shared.platform.errors import InvalidRequest
from shared.platform.pagination import ListResponse


def _resource(doc: dict[str, Any], now: dt.datetime) -> MerchantApiKey:
    return MerchantApiKey(**dict(apikeys.to_resource(doc, now)), project=doc.get("project_id"))


def _with_secret(key, project_id: str | None) -> MerchantApiKeyWithSecret:
    return MerchantApiKeyWithSecret(**dict(key), project=project_id)


def create_key(uow, acting: Principal, merchant_id: str, project_id: str,
               body: CreateProjectKey) -> MerchantApiKeyWithSecret:
    pref = projects.ref(uow.db, project_id)
    project = projects.owned(uow.get(pref), acting, merchant_id, project_id)
    livemode = bool(project.get("livemode"))
    if body.livemode is not None and body.livemode != livemode:
        raise InvalidRequest(f"This project is a {'live' if livemode else 'test'}-mode project: "
                             f"its keys are {'live' if livemode else 'test'} keys.",
                             param="livemode", code="livemode_mismatch")
    uow.update(pref, {"last_key_created_at": uow.now})  # conflicts with a concurrent delete
    key = apikeys.create_api_key(uow, owner_id=merchant_id, name=body.name, scopes=body.scopes,
                                 livemode=livemode, expires_in_seconds=body.expires_in_seconds,
                                 project_id=project_id)
    return _with_secret(key, project_id)


def list_keys(deps, acting: Principal, merchant_id: str, params: KeyListQuery) -> ListResponse[MerchantApiKey]:
    page = apikeys.list_api_keys(
        deps, owner_id=merchant_id, params=params, project_id=params.project,
        livemode=bool(acting.livemode), url=f"/v1/merchants/{merchant_id}/api_keys",
        resource=_resource)
    return ListResponse[MerchantApiKey](data=page.data, has_more=page.has_more, url=page.url)


def get_key(deps, acting: Principal, merchant_id: str, key_id: str) -> MerchantApiKey:
    doc = apikeys.get_api_key_doc(deps, owner_id=merchant_id, key_id=key_id)
    if bool(doc.get("livemode")) != bool(acting.livemode):
        raise apikeys.NotFound(f"No such API key: '{key_id}'", param="id")
    return _resource(doc, deps.clock.now())


def roll_key(uow, acting: Principal, merchant_id: str, key_id: str, body: RollKey) -> MerchantApiKeyWithSecret:
    snap = uow.get(uow.db.collection(apikeys.COLLECTION).document(key_id))
    project_id = (snap.to_dict() or {}).get("project_id") if snap.exists else None
    key = apikeys.roll_api_key(uow, owner_id=merchant_id, key_id=key_id,
                               expires_in_seconds=body.expires_in_seconds,
                               livemode=bool(acting.livemode))
    return _with_secret(key, project_id)


def revoke_key(uow, acting: Principal, merchant_id: str, key_id: str) -> MerchantApiKey:
    key = apikeys.revoke_api_key(uow, owner_id=merchant_id, key_id=key_id,
                                 livemode=bool(acting.livemode))
    doc = uow.get(uow.db.collection(apikeys.COLLECTION).document(key_id)).to_dict() or {}
    return MerchantApiKey(**dict(key), project=doc.get("project_id"))
