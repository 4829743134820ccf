"""Creating, reading and listing merchants (the organisation and tenant of its payments).

The creator becomes the first ``owner``. A merchant's id is the tenant id of everything under
it; the user who created it is only its first member (``created_by``).
"""
from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.identity.users import directory
from shared.ledger.assets import ASSETS
from shared.merchants import context, store
from shared.merchants.config import merchants_config
from shared.merchants.countries import is_country
from shared.merchants.events import emit_both_modes
from shared.merchants.models import (
    MEMBER_ADDED,
    MERCHANT_CREATED,
    MERCHANT_UPDATED,
    CreateMerchant,
    Merchant,
    UpdateMerchant,
)
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest
from shared.platform.ids import new_id
from shared.platform.pagination import ListQuery, ListResponse, paginate


def check_country(code: str) -> str:
    code = code.upper()
    if not is_country(code):
        raise InvalidRequest(f"country must be an ISO 3166-1 alpha-2 code (got {code[:8]!r}).",
                             param="country", code="invalid_country")
    return code


def check_asset(code: str, param: str = "settlement_asset") -> str:
    if code not in ASSETS:
        raise InvalidRequest(f"Unknown asset {code[:20]!r}; use one of {sorted(ASSETS)}.",
                             param=param, code="unsupported_asset")
    return code


def user_id_of(principal: Principal) -> str:
    return principal.actor_id or principal.id


def create_merchant(uow, principal: Principal, body: CreateMerchant) -> Merchant:
    """One commit: the merchant, the owner's membership, ``merchant.created`` and
    ``merchant.member_added`` (both modes). Reads: the user (for the member's email), and one
    bounded query counting the user's memberships (a soft limit)."""
    user_id = user_id_of(principal)
    country, asset = check_country(body.country), check_asset(body.settlement_asset)
    cfg = merchants_config(uow.deps)
    held = uow.query(uow.db.collection(store.MEMBERS)
                     .where(filter=firestore.FieldFilter("user_id", "==", user_id))
                     .limit(cfg.max_merchants_per_user))
    if len(held) >= cfg.max_merchants_per_user:
        raise Conflict(f"A user may belong to at most {cfg.max_merchants_per_user} merchants.",
                       code="merchant_limit")
    user = uow.get(directory.user_ref(uow.db, user_id))
    email = user.get("email") if user.exists else None
    merchant_id = new_id("mch")  # an Idempotency-Key replays the stored answer (router)
    now = uow.now
    doc = {"id": merchant_id, "business_name": body.business_name, "country": country,
           "settlement_asset": asset, "status": "active", "created_by": user_id,
           "created_at": now, "updated_at": None, "owners": [user_id], "member_count": 1}
    member = {"merchant_id": merchant_id, "user_id": user_id, "role": "owner", "email": email,
              "created_at": now, "updated_at": None}
    uow.create(store.merchant_ref(uow.db, merchant_id), doc)
    uow.create(store.member_ref(uow.db, merchant_id, user_id), member)
    resource = store.merchant_resource(doc, role="owner")
    emit_both_modes(uow, MERCHANT_CREATED.name, merchant_id, store.merchant_resource(doc))
    emit_both_modes(uow, MEMBER_ADDED.name, merchant_id, store.member_resource(member))
    context.forget(uow.deps, merchant_id, user_id)
    return resource


def get_merchant(deps, acting: Principal, merchant_id: str) -> Merchant:
    snap = store.merchant_ref(deps.db, merchant_id).get()
    if not snap.exists:
        raise store.not_a_member()
    return store.merchant_resource(snap.to_dict(), role=acting.role)


def update_merchant(uow, acting: Principal, merchant_id: str, body: UpdateMerchant) -> Merchant:
    ref = store.merchant_ref(uow.db, merchant_id)
    snap = uow.get(ref)
    if not snap.exists:
        raise store.not_a_member()
    doc = snap.to_dict()
    change: dict[str, Any] = {}
    if body.business_name is not None and body.business_name != doc["business_name"]:
        change["business_name"] = body.business_name
    if body.country is not None:
        country = check_country(body.country)
        if country != doc["country"]:
            change["country"] = country
    if not change:
        return store.merchant_resource(doc, role=acting.role)
    change["updated_at"] = uow.now
    doc = {**doc, **change}
    uow.update(ref, change)
    emit_both_modes(uow, MERCHANT_UPDATED.name, merchant_id, store.merchant_resource(doc))
    return store.merchant_resource(doc, role=acting.role)


def list_my_merchants(deps, principal: Principal, params: ListQuery) -> ListResponse[Merchant]:
    """The caller's merchants with their role, newest membership first: one query on
    ``merchant_members`` (index: user_id, created_at desc) and one batch get of the merchants.
    ``starting_after`` is a merchant id."""
    user_id = user_id_of(principal)
    col = deps.db.collection(store.MEMBERS)
    query = col.where(filter=firestore.FieldFilter("user_id", "==", user_id))
    cursor = params.starting_after and store.member_id(params.starting_after, user_id)
    page = paginate(query, col, params.model_copy(update={"starting_after": cursor}),
                    url="/v1/merchants", to_resource=lambda d: d,
                    belongs=lambda d: d.get("user_id") == user_id)
    refs = [store.merchant_ref(deps.db, m["merchant_id"]) for m in page.data]
    found = {s.id: s.to_dict() for s in deps.db.get_all(refs) if s.exists} if refs else {}
    data = [store.merchant_resource(found[m["merchant_id"]], role=m["role"])
            for m in page.data if m["merchant_id"] in found]
    return ListResponse[Merchant](data=data, has_more=page.has_more, url=page.url)
