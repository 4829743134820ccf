"""Inviting people to a merchant's team by email.

``merchant_invitations/{inv_…}``: merchant_id, merchant_name, email (normalised), role, status
(pending → accepted | revoked; ``expired`` is derived from ``expires_at``), token_hash,
invited_by, created_at, expires_at (7 days), accepted_by, accepted_at, purge_at (TTL: 30 days
after expiry or the answer, so old answers stay explainable for a while, then vanish).

The email carries a one-time token (256 random bits, stored as its SHA-256, like every opaque
token: ADR 0010) and the invitation id. Accepting needs a signed-in user AND either the token
(whoever holds it received the email) or a verified account email equal to the invited one.
Identity is checked before anything about the invitation's state is said.

Accepting once, even concurrently: the unit updates the invitation it read (pending) and
creates the membership document; a second acceptance conflicts at commit, runs again, and finds
it accepted (409 ``invitation_used``) or finds the membership (409 ``already_member``).
"""
from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from google.cloud import firestore

from shared.identity.config import identity_settings
from shared.identity.opaque import new_token, token_hash
from shared.identity.users import directory
from shared.merchants import context, roles, store
from shared.merchants.config import merchants_config
from shared.merchants.events import emit_both_modes
from shared.merchants.models import MEMBER_ADDED, CreateInvitation, Invitation, Member
from shared.notify import queue_email
from shared.platform.auth import Principal
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, NotFound, PermissionDenied
from shared.platform.ids import new_id
from shared.platform.pagination import ListQuery, ListResponse, paginate

COLLECTION = "merchant_invitations"
TOKEN_PREFIX = "minv_"


def ref(db, invitation_id: str):
    return db.collection(COLLECTION).document(invitation_id)


def status_of(doc: dict[str, Any], now: dt.datetime) -> str:
    if doc["status"] == "pending" and doc["expires_at"] <= now:
        return "expired"
    return doc["status"]


def to_resource(doc: dict[str, Any], now: dt.datetime) -> Invitation:
    ts = lambda k: rfc3339(doc[k]) if doc.get(k) else None
    return Invitation(id=doc["id"], merchant=doc["merchant_id"], merchant_name=doc.get("merchant_name"),
                      email=doc["email"], role=doc["role"], status=status_of(doc, now),
                      invited_by=doc["invited_by"], created=rfc3339(doc["created_at"]),
                      expires_at=rfc3339(doc["expires_at"]), accepted_by=doc.get("accepted_by"),
                      accepted_at=ts("accepted_at"))


def _not_found(invitation_id: str) -> NotFound:
    return NotFound(f"No such invitation: '{invitation_id[:64]}'", param="invitation_id")


def _message(deps, *, to: str, merchant_name: str, role: str, invitation_id: str, token: str,
             days: int) -> dict[str, str]:
    base = identity_settings(deps).app_base_url.rstrip("/")
    link = f"{base}/merchants/invitations/{invitation_id}?token={token}"
    text = (f"You have been invited to join {merchant_name} on Payloom as {role}.\n\n"
            f"Accept within {days} days by opening this link while signed in:\n\n{link}\n\n"
            f"Invitation: {invitation_id}\nToken: {token}\n\n"
            "If you did not expect this, ignore this email.")
    return {"to": to, "subject": f"Join {merchant_name} on Payloom", "text": text}


def create_invitation(uow, acting: Principal, merchant_id: str, body: CreateInvitation) -> Invitation:
    """Invite ``body.email`` with ``body.role`` (up to the inviter's own role; only an owner
    invites owners). Refused when that email's account is already a member."""
    if not roles.may_assign(acting.role, body.role):
        raise PermissionDenied(f"You cannot grant the {body.role!r} role.",
                               code="role_not_grantable", param="role")
    cfg, now = merchants_config(uow.deps), uow.now
    mref = store.merchant_ref(uow.db, merchant_id)
    handle = directory.handle_ref(uow.db, "email", body.email)
    snaps = uow.get_all([mref, handle])
    if not snaps[mref.path].exists:
        raise store.not_a_member()
    merchant = snaps[mref.path].to_dict()
    if snaps[handle.path].exists:
        invitee = snaps[handle.path].get("user_id")
        if invitee and uow.get(store.member_ref(uow.db, merchant_id, invitee)).exists:
            raise Conflict("This person is already a member.", code="already_member",
                           param="email")
    pending = uow.query(uow.db.collection(COLLECTION)
                        .where(filter=firestore.FieldFilter("merchant_id", "==", merchant_id))
                        .where(filter=firestore.FieldFilter("status", "==", "pending"))
                        .limit(cfg.max_pending_invitations))
    if len(pending) >= cfg.max_pending_invitations:
        raise Conflict(f"At most {cfg.max_pending_invitations} invitations may be pending.",
                       code="invitation_limit")
    token = new_token(TOKEN_PREFIX)
    expires = now + dt.timedelta(seconds=cfg.invitation_ttl_seconds)
    doc = {"id": new_id("inv"), "merchant_id": merchant_id,
           "merchant_name": merchant["business_name"], "email": body.email, "role": body.role,
           "status": "pending", "token_hash": token_hash(token),
           "invited_by": acting.actor_id or acting.id, "created_at": now, "expires_at": expires,
           "accepted_by": None, "accepted_at": None,
           "purge_at": expires + dt.timedelta(seconds=cfg.invitation_purge_after_seconds)}
    uow.create(ref(uow.db, doc["id"]), doc)
    queue_email(uow, kind="merchant_invitation", **_message(
        uow.deps, to=body.email, merchant_name=merchant["business_name"], role=body.role,
        invitation_id=doc["id"], token=token, days=max(1, cfg.invitation_ttl_seconds // 86400)))
    return to_resource(doc, now)


def _check_identity(doc: dict[str, Any], user: dict[str, Any] | None, token: str | None) -> None:
    if token is not None:
        if not hmac.compare_digest(token_hash(token).encode(), doc["token_hash"].encode()):
            raise PermissionDenied("This invitation token is not valid.", code="invalid_token",
                                   param="token")
        return
    email = (user or {}).get("email") or ""
    if not (user or {}).get("email_verified") or email.lower() != doc["email"].lower():
        raise PermissionDenied("This invitation was sent to another email address. Sign in with "
                               "the invited (verified) email, or use the link from the email.",
                               code="email_mismatch")


def accept_invitation(uow, principal: Principal, invitation_id: str, token: str | None) -> Member:
    user_id = principal.actor_id or principal.id
    iref, uref = ref(uow.db, invitation_id), directory.user_ref(uow.db, user_id)
    snaps = uow.get_all([iref, uref])
    if not snaps[iref.path].exists:
        raise _not_found(invitation_id)
    doc = snaps[iref.path].to_dict()
    user = snaps[uref.path].to_dict() if snaps[uref.path].exists else None
    _check_identity(doc, user, token)
    now, merchant_id = uow.now, doc["merchant_id"]
    state = status_of(doc, now)
    if state == "accepted":
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if state == "revoked":
        raise Conflict("This invitation was revoked.", code="invitation_revoked")
    if state == "expired":
        raise Conflict("This invitation has expired; ask for a new one.", code="invitation_expired")
    mref, member_ref = store.merchant_ref(uow.db, merchant_id), store.member_ref(uow.db, merchant_id, user_id)
    snaps = uow.get_all([mref, member_ref])
    if not snaps[mref.path].exists:
        raise _not_found(invitation_id)
    if snaps[member_ref.path].exists:
        raise Conflict("You are already a member of this merchant.", code="already_member")
    merchant, cfg = snaps[mref.path].to_dict(), merchants_config(uow.deps)
    count = int(merchant.get("member_count") or 0)
    if count >= cfg.max_members:
        raise Conflict(f"A merchant has at most {cfg.max_members} members.", code="member_limit")
    member = {"merchant_id": merchant_id, "user_id": user_id, "role": doc["role"],
              "email": (user or {}).get("email") or doc["email"], "created_at": now,
              "updated_at": None, "invitation_id": invitation_id}
    uow.create(member_ref, member)
    owners = list(merchant.get("owners") or [])
    if doc["role"] == "owner" and user_id not in owners:
        owners.append(user_id)
    uow.update(mref, {"member_count": count + 1, "owners": owners, "team_updated_at": now})
    uow.update(iref, {"status": "accepted", "accepted_by": user_id, "accepted_at": now,
                      "purge_at": now + dt.timedelta(seconds=cfg.invitation_purge_after_seconds)})
    resource = store.member_resource(member)
    emit_both_modes(uow, MEMBER_ADDED.name, merchant_id, resource)
    context.forget(uow.deps, merchant_id, user_id)
    return resource


def revoke_invitation(uow, acting: Principal, merchant_id: str, invitation_id: str) -> Invitation:
    iref = ref(uow.db, invitation_id)
    snap = uow.get(iref)
    if not snap.exists or snap.get("merchant_id") != merchant_id:
        raise _not_found(invitation_id)
    doc, now = snap.to_dict(), uow.now
    if not roles.may_assign(acting.role, doc["role"]) and acting.kind == "user":
        raise PermissionDenied("Only an owner may revoke an invitation to become owner.",
                               code="insufficient_role")
    if doc["status"] != "pending":
        return to_resource(doc, now)
    change = {"status": "revoked", "purge_at": now + dt.timedelta(
        seconds=merchants_config(uow.deps).invitation_purge_after_seconds)}
    uow.update(iref, change)
    return to_resource({**doc, **change}, now)


def list_invitations(deps, acting: Principal, merchant_id: str, params: ListQuery) -> ListResponse[Invitation]:
    """The merchant's invitations, newest first (index: merchant_id, created_at desc)."""
    col, now = deps.db.collection(COLLECTION), deps.clock.now()
    query = col.where(filter=firestore.FieldFilter("merchant_id", "==", merchant_id))
    page = paginate(query, col, params, url=f"/v1/merchants/{merchant_id}/invitations",
                    to_resource=lambda d: to_resource(d, now),
                    belongs=lambda d: d.get("merchant_id") == merchant_id)
    return ListResponse[Invitation](data=page.data, has_more=page.has_more, url=page.url)


def my_invitations(deps, principal: Principal) -> ListResponse[Invitation]:
    """Pending, unexpired invitations to the caller's VERIFIED email (an unverified address
    proves nothing). Equality filters only (email, status): served by single-field indexes."""
    user_id = principal.actor_id or principal.id
    user = directory.user_ref(deps.db, user_id).get()
    now = deps.clock.now()
    if not user.exists or not user.get("email_verified") or not user.get("email"):
        return ListResponse[Invitation](data=[], has_more=False, url="/v1/merchants/invitations")
    email = user.get("email").lower()
    query = (deps.db.collection(COLLECTION)
             .where(filter=firestore.FieldFilter("email", "==", email))
             .where(filter=firestore.FieldFilter("status", "==", "pending")).limit(100))
    data = [to_resource(s.to_dict(), now) for s in query.stream()]
    data = [i for i in data if i.status == "pending"]
    return ListResponse[Invitation](data=data, has_more=False, url="/v1/merchants/invitations")
