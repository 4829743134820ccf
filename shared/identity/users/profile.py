"""The user's profile (``/v1/me``): read with linked wallets and DIDs, and edit.

Wallet links (``user_wallets`` docs ``{user_id, address, chain_id, did, created_at}``) and DIDs
(``user_dids`` docs ``{user_id, did, created_at}``) are written by the wallet-linking flows;
this module only reads them, by ``user_id``, through their owners (``web3.wallet_links``,
``web3.did``).
Cost of ``GET /v1/me``: 3 reads (user doc, wallets query, DIDs query).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from shared.identity.resources import LinkedDid, LinkedWallet, User
from shared.identity.users import directory
from shared.identity.web3 import did, wallet_links
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, NotFound

def _ts(value) -> str | None:
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return value if isinstance(value, str) else None


def to_resource(user: dict[str, Any], *, wallets: list[dict] | None = None,
                dids: list[dict] | None = None) -> User:
    return User(
        id=user["id"], username=user.get("username"), email=user.get("email"),
        email_verified=bool(user.get("email_verified")), phone=user.get("phone"),
        phone_verified=bool(user.get("phone_verified")), display_name=user.get("display_name"),
        locale=user.get("locale") or "en", kyc_status=user.get("kyc_status") or "none",
        kyc_tier=int(user.get("kyc_tier") or 0), mfa_enabled=bool(user.get("mfa_enabled")),
        status=user.get("status") or "active",
        wallets=[LinkedWallet(address=w.get("address"), chain_id=w.get("chain_id"),
                              did=w.get("did"), created=_ts(w.get("created_at")))
                 for w in (wallets or [])],
        dids=[LinkedDid(did=d.get("did"), created=_ts(d.get("created_at"))) for d in (dids or [])],
        created=_ts(user.get("created_at")))


def _by_user(query) -> list[dict]:
    docs = [s.to_dict() for s in query.limit(100).stream()]
    return sorted(docs, key=lambda d: str(d.get("created_at") or ""))


def _links(db, user_id: str) -> dict[str, list[dict]]:
    return {"wallets": _by_user(wallet_links.wallets_query(db, user_id)),
            "dids": _by_user(did.dids_query(db, user_id))}


def get_profile(deps, user_id: str) -> User:
    db = deps.db
    user = directory.get_user(db, user_id)
    if user is None:
        raise NotFound("No such user.", code="resource_missing")
    return to_resource(user, **_links(db, user_id))


def update_profile(uow, user_id: str, *, display_name: str | None = None,
                   username: str | None = None, locale: str | None = None) -> User:
    """Edit display name, locale and username; a username change swaps handles atomically."""
    db, now = uow.db, uow.now
    uref = directory.user_ref(db, user_id)
    refs = [uref] + ([directory.handle_ref(db, "username", username)] if username else [])
    snaps = uow.get_all(refs)
    snap = snaps[uref.path]
    if not snap.exists:
        raise NotFound("No such user.")
    user = snap.to_dict()
    update: dict[str, Any] = {}
    if username is not None and username != user.get("username"):
        old_lower = (user.get("username") or "").lower()
        if username.lower() != old_lower:
            handle = snaps[refs[1].path]
            if handle.exists and handle.get("user_id") != user_id:
                raise Conflict("This username is taken.", param="username",
                               code="username_taken")
            if old_lower:
                directory.release_handle(db, uow, "username", old_lower)
            if not handle.exists:
                directory.claim_handle(db, uow, "username", username, user_id, now)
        update.update(username=username, username_lower=username.lower())
    if display_name is not None:
        update["display_name"] = display_name
    if locale is not None:
        update["locale"] = locale
    if update:
        update["updated_at"] = now
        uow.update(uref, update)
    user = {**user, **update}
    return to_resource(user, **_links(db, user_id))
