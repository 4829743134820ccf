"""The team: listing members, changing a role, removing a member (or leaving).

Rules (pure, in ``check_change``): an actor grants or takes away only roles up to their own and
only an owner touches owners (``roles.may_assign``); anyone may leave; the last owner can never
be demoted or removed. Each change re-reads, inside its unit, the merchant document (holding
``owners``), the target's membership and the actor's own (uncached), and rewrites the merchant
document: concurrent changes serialise on it, so two owners demoting each other at the same
moment cannot leave the merchant without an owner.
"""
from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.merchants import context, roles, store
from shared.merchants.events import emit_both_modes
from shared.merchants.models import (
    MEMBER_REMOVED,
    MEMBER_UPDATED,
    DeletedMember,
    Member,
    UpdateMember,
)
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, NotFound, PermissionDenied
from shared.platform.pagination import ListQuery, ListResponse, paginate


def _no_member(user_id: str) -> NotFound:
    return NotFound(f"No such member: '{user_id[:64]}'", param="user_id", code="resource_missing")


def check_change(*, actor_role: str | None, actor_is_target: bool, target_role: str,
                 new_role: str | None, owners: list[str]) -> None:
    """Raise unless the actor may move the target from ``target_role`` to ``new_role``
    (None: remove). Pure: the whole rule set, unit-tested."""
    if new_role is None and actor_is_target:
        pass  # leaving is always allowed (but for the last owner, below)
    else:
        if not roles.at_least(actor_role, "admin"):
            raise PermissionDenied("Managing members needs the 'admin' role or higher.",
                                   code="insufficient_role")
        if not roles.may_assign(actor_role, target_role):
            raise PermissionDenied(f"Only an owner may change or remove an {target_role!r}."
                                   if target_role == "owner" else
                                   "You cannot change a member whose role ranks above yours.",
                                   code="insufficient_role")
        if new_role is not None and not roles.may_assign(actor_role, new_role):
            raise PermissionDenied(f"You cannot grant the {new_role!r} role.",
                                   code="role_not_grantable", param="role")
    if target_role == "owner" and new_role != "owner" and len(owners) <= 1:
        raise Conflict("A merchant always keeps at least one owner: make another member owner "
                       "first.", code="last_owner")


def list_members(deps, acting: Principal, merchant_id: str, params: ListQuery) -> ListResponse[Member]:
    """Newest first (index: merchant_id, created_at desc); ``starting_after`` is a user id."""
    col = deps.db.collection(store.MEMBERS)
    query = col.where(filter=firestore.FieldFilter("merchant_id", "==", merchant_id))
    cursor = params.starting_after and store.member_id(merchant_id, params.starting_after)
    page = paginate(query, col, params.model_copy(update={"starting_after": cursor}),
                    url=f"/v1/merchants/{merchant_id}/members", to_resource=store.member_resource,
                    belongs=lambda d: d.get("merchant_id") == merchant_id)
    return ListResponse[Member](data=page.data, has_more=page.has_more, url=page.url)


def get_member(deps, acting: Principal, merchant_id: str, user_id: str) -> Member:
    snap = store.member_ref(deps.db, merchant_id, user_id).get()
    if not snap.exists:
        raise _no_member(user_id)
    return store.member_resource(snap.to_dict())


def _read(uow, merchant_id: str, actor_id: str, user_id: str):
    mref = store.merchant_ref(uow.db, merchant_id)
    aref, tref = store.member_ref(uow.db, merchant_id, actor_id), store.member_ref(uow.db, merchant_id, user_id)
    snaps = uow.get_all([mref, aref, tref])
    if not snaps[mref.path].exists or not snaps[aref.path].exists:
        raise store.not_a_member()  # the actor left or was removed since the cache said yes
    if not snaps[tref.path].exists:
        raise _no_member(user_id)
    return (mref, snaps[mref.path].to_dict(), snaps[aref.path].get("role"), tref,
            snaps[tref.path].to_dict())


def _owners_after(owners: list[str], user_id: str, new_role: str | None) -> list[str]:
    rest = [u for u in owners if u != user_id]
    return rest + [user_id] if new_role == "owner" else rest


def change_role(uow, acting: Principal, merchant_id: str, user_id: str, body: UpdateMember) -> Member:
    actor_id = acting.actor_id or acting.id
    mref, merchant, actor_role, tref, target = _read(uow, merchant_id, actor_id, user_id)
    owners = list(merchant.get("owners") or [])
    check_change(actor_role=actor_role, actor_is_target=actor_id == user_id,
                 target_role=target["role"], new_role=body.role, owners=owners)
    if body.role == target["role"]:
        return store.member_resource(target)
    now = uow.now
    target = {**target, "role": body.role, "updated_at": now}
    uow.update(tref, {"role": body.role, "updated_at": now})
    uow.update(mref, {"owners": _owners_after(owners, user_id, body.role), "team_updated_at": now})
    resource = store.member_resource(target)
    emit_both_modes(uow, MEMBER_UPDATED.name, merchant_id, resource)
    context.forget(uow.deps, merchant_id, user_id)
    return resource


def remove_member(uow, acting: Principal, merchant_id: str, user_id: str) -> DeletedMember:
    actor_id = acting.actor_id or acting.id
    mref, merchant, actor_role, tref, target = _read(uow, merchant_id, actor_id, user_id)
    owners = list(merchant.get("owners") or [])
    check_change(actor_role=actor_role, actor_is_target=actor_id == user_id,
                 target_role=target["role"], new_role=None, owners=owners)
    uow.delete(tref)
    change: dict[str, Any] = {"owners": _owners_after(owners, user_id, None),
                              "member_count": max(0, int(merchant.get("member_count") or 1) - 1),
                              "team_updated_at": uow.now}
    uow.update(mref, change)
    emit_both_modes(uow, MEMBER_REMOVED.name, merchant_id, store.member_resource(target))
    context.forget(uow.deps, merchant_id, user_id)
    return DeletedMember(id=user_id, merchant=merchant_id)
