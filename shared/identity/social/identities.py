"""Social identities linked to users: ``user_identities/{idn_…}`` = ``{id, user_id, provider,
subject, email, email_verified, name, login, created_at, last_used_at}``, id derived from
(provider, subject).

This module owns the collection; the OAuth flows (``social.oauth``) write it through these
functions and "ways in" (``users.ways_in``) counts it. Which user holds a provider account is
the directory's ``social:{provider}:{subject}`` handle, claimed in the same commit.
"""
from __future__ import annotations

from typing import Any

from google.cloud import firestore

from shared.identity.resources import Identity
from shared.platform.clock import rfc3339
from shared.platform.pagination import ListResponse
from shared.platform.ids import derived_id

IDENTITIES = "user_identities"
MAX_IDENTITIES_PER_USER = 20


def identity_ref(db, provider: str, subject: str):
    return db.collection(IDENTITIES).document(derived_id("idn", provider, subject))


def identity_resource(doc: dict[str, Any]) -> Identity:
    return Identity(id=doc["id"], provider=doc["provider"], subject=doc["subject"],
                    email=doc.get("email"), name=doc.get("name"), login=doc.get("login"),
                    created=rfc3339(doc["created_at"]),
                    last_used=rfc3339(doc["last_used_at"]) if doc.get("last_used_at") else None)


def identity_doc(ident, user_id: str, now) -> dict[str, Any]:
    """The stored document for a proven ``social.oauth.ProviderIdentity``."""
    return {"id": derived_id("idn", ident.provider, ident.subject), "user_id": user_id,
            "provider": ident.provider, "subject": ident.subject, "email": ident.email,
            "email_verified": ident.email_verified, "name": ident.name, "login": ident.login,
            "created_at": now, "last_used_at": now}


def identities_query(db, user_id: str):
    return (db.collection(IDENTITIES).where(filter=firestore.FieldFilter("user_id", "==", user_id))
            .limit(MAX_IDENTITIES_PER_USER + 1))


def user_identities(uow, user_id: str) -> list[dict[str, Any]]:
    """The user's identities, read in ``uow``."""
    return [s.to_dict() for s in uow.query(identities_query(uow.db, user_id))]


def list_identities(deps, user_id: str) -> ListResponse[Identity]:
    docs = sorted((s.to_dict() for s in identities_query(deps.db, user_id).stream()),
                  key=lambda d: d["created_at"])
    return ListResponse[Identity](data=[identity_resource(d) for d in docs], has_more=False,
                                  url="/v1/me/identities")
