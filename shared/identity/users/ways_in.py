"""How many ways a user has to sign in, so unlinking never locks an account out.

Counts a password (``users.credentials``), a verified phone (the user document), linked social
identities (``social.identities``) and linked wallets (``web3.wallet_links``), all read in the
caller's unit of work. Unlinking a social identity or a wallet refuses (409) to remove the last.
"""
from __future__ import annotations

from shared.identity.social import identities
from shared.identity.users import directory
from shared.identity.users.credentials import credentials_ref
from shared.identity.web3 import wallet_links


def ways_in(uow, user_id: str) -> dict[str, int]:
    """Count the user's sign-in methods (reads in ``uow``): password, verified phone, social
    identities, wallets."""
    uref = directory.user_ref(uow.db, user_id)
    cref = credentials_ref(uow.db, user_id)
    snaps = uow.get_all([uref, cref])
    user = snaps[uref.path].to_dict() if snaps[uref.path].exists else {}
    cred = snaps[cref.path].to_dict() if snaps[cref.path].exists else {}
    wallets = uow.query(wallet_links.wallets_query(uow.db, user_id).limit(5))
    return {"password": int(bool(cred.get("password_hash"))),
            "phone": int(bool(user.get("phone") and user.get("phone_verified"))),
            "identities": len(identities.user_identities(uow, user_id)),
            "wallets": len(wallets)}
