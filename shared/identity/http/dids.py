"""DIDs: the user's linked DIDs (/v1/me/dids) and public resolution (/v1/auth/dids/{did})."""
from __future__ import annotations

from pydantic import Field, field_validator

from shared.identity.web3 import did as did_service
from shared.identity import limits
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.resources import Did
from shared.identity.responses import DidChallenge, DidDocument
from shared.platform.ids import is_id
from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import PUBLIC, Context, Result

RESOLVE_IP = Limit("auth.dids.resolve.ip", 300, 60)


class DidChallengeRequest(RequestModel):
    did: str = Field(..., min_length=1, max_length=did_service.MAX_DID_LENGTH)


class RegisterDidRequest(RequestModel):
    did: str = Field(..., min_length=1, max_length=did_service.MAX_DID_LENGTH)
    challenge_id: str | None = Field(None, max_length=64)
    signature: str | None = Field(None, max_length=400, description="base64url, for did:key.")

    @field_validator("challenge_id")
    @classmethod
    def _challenge_id(cls, v):
        if v is not None and not is_id(v, "dch"):  # it names a Firestore document
            raise ValueError("not a DID challenge id")
        return v


@accounts_api.get("/dids", response=ListResponse[Did], auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def list_dids(ctx: Context):
    """The DIDs linked to this account (registered ones and those of linked wallets)."""
    return did_service.list_dids(ctx.deps, ctx.principal.id)


@accounts_api.post("/dids/challenge", body=DidChallengeRequest, response=DidChallenge,
                   auth=("user",), status=201, idempotent=False,
                   rate_limits=[(limits.ME_WRITE, "principal")])
def did_challenge(ctx: Context):
    """A single-use message to sign with a did:key's private key."""
    return did_service.create_challenge(ctx.uow, user_id=ctx.principal.id, did=ctx.body.did)


@accounts_api.post("/dids", body=RegisterDidRequest, response=Did, auth=("user",),
                   idempotent=False, rate_limits=[(limits.ME_WRITE, "principal")],
                   other_statuses=(201,))
def register_did(ctx: Context):
    """Link a DID you control (did:key with a signed challenge, or the did:pkh of a linked
    wallet) to your verified phone number."""
    b = ctx.body
    doc, created = did_service.register_did(ctx.uow, user_id=ctx.principal.id, did=b.did,
                                            challenge_id=b.challenge_id, signature=b.signature)
    return Result(doc, status=201 if created else 200)


@accounts_api.delete("/dids/{did}", status=204, auth=("user",),
                     rate_limits=[(limits.ME_WRITE, "principal")])
def unlink_did(ctx: Context, did: str):
    """Unlink a registered DID."""
    did_service.unlink_did(ctx.uow, user_id=ctx.principal.id, did=did)
    return None


@auth_api.get("/dids/{did}", response=DidDocument, auth=PUBLIC, rate_limits=[(RESOLVE_IP, "ip")])
def resolve_did(ctx: Context, did: str):
    """Resolve a did:key or did:pkh (eip155) to its DID document (derived from the DID)."""
    return Result(did_service.did_document(did),
                  headers={"Content-Type": "application/did+ld+json"})
