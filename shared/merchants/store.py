"""Documents of the capability and how they render (the shared contract).

* ``merchants/{mch_…}``: id, business_name, country, settlement_asset, status, created_by,
  created_at, updated_at, ``owners`` (user ids) and ``member_count``. Every membership change
  reads and rewrites this document in its unit, so concurrent changes of one merchant's team
  serialise on it: two owners demoting each other at once cannot both win (the last owner is
  never lost), and the member limit holds. Team changes are rare; the cost is one document.
* ``merchant_members/{mch}:{usr}``: merchant_id, user_id, role, email, created_at, updated_at.
  The id makes the membership lookup one get (merchant_context) and a second join a conflict.
* ``merchant_invitations/{inv_…}``, ``projects/{prj_…}``, ``merchant_settings/{mch}``: see
  invitations.py, projects.py, settings.py.
"""
from __future__ import annotations

from typing import Any

from shared.merchants.models import Member, Merchant
from shared.platform.clock import rfc3339
from shared.platform.errors import PermissionDenied

MERCHANTS = "merchants"
MEMBERS = "merchant_members"


def merchant_ref(db, merchant_id: str):
    return db.collection(MERCHANTS).document(merchant_id)


def member_id(merchant_id: str, user_id: str) -> str:
    return f"{merchant_id}:{user_id}"


def member_ref(db, merchant_id: str, user_id: str):
    return db.collection(MEMBERS).document(member_id(merchant_id, user_id))


def _ts(value) -> str | None:
    return rfc3339(value) if value else None


def merchant_resource(doc: dict[str, Any], role: str | None = None) -> Merchant:
    return Merchant(id=doc["id"], business_name=doc["business_name"], country=doc["country"],
                    settlement_asset=doc["settlement_asset"], status=doc.get("status", "active"),
                    created_by=doc["created_by"], created=rfc3339(doc["created_at"]),
                    updated=_ts(doc.get("updated_at")), role=role)


def member_resource(doc: dict[str, Any]) -> Member:
    return Member(id=doc["user_id"], merchant=doc["merchant_id"], user=doc["user_id"],
                  role=doc["role"], email=doc.get("email"), created=rfc3339(doc["created_at"]),
                  updated=_ts(doc.get("updated_at")))


def not_a_member() -> PermissionDenied:
    """The one answer for a merchant the caller may not act for, whether it exists or not."""
    return PermissionDenied("You are not a member of this merchant, or it does not exist.",
                            code="not_a_member")
