"""API key routes under /v1/me/api_keys. Creating, rolling and revoking keys needs a user
session; a key with ``api_keys:read`` may list and inspect its owner's keys."""
from __future__ import annotations

from shared.identity import limits
from shared.identity.apikeys import service as apikeys
from shared.identity.http.api import accounts_api
from shared.identity.models import CreateApiKeyRequest, RollApiKeyRequest
from shared.identity.resources import ApiKey, ApiKeyWithSecret
from shared.platform.pagination import ListQuery, ListResponse
from shared.platform.router import Context

READERS = ("user", "api_key")


@accounts_api.post("/api_keys", body=CreateApiKeyRequest, response=ApiKeyWithSecret, status=201,
                   auth=("user",), rate_limits=[(limits.API_KEY_CREATE, "principal")],
                   secret_fields=ApiKeyWithSecret.SHOWN_ONCE)
def create(ctx: Context):
    """Create a secret key (``sk_test_…``/``sk_live_…``); the secret is shown only here."""
    b = ctx.body
    return apikeys.create_api_key(ctx.uow, owner_id=ctx.principal.tenant_id, name=b.name,
                                  scopes=b.scopes, livemode=b.livemode,
                                  expires_in_seconds=b.expires_in_seconds)


@accounts_api.get("/api_keys", query=ListQuery, response=ListResponse[ApiKey], auth=READERS,
                  scopes=["api_keys:read"], rate_limits=[(limits.ME_READ, "principal")])
def list_keys(ctx: Context):
    """The account's API keys, newest first (never their secrets)."""
    return apikeys.list_api_keys(ctx.deps, owner_id=ctx.principal.tenant_id, params=ctx.query)


@accounts_api.get("/api_keys/{key_id}", response=ApiKey, auth=READERS, scopes=["api_keys:read"],
                  rate_limits=[(limits.ME_READ, "principal")])
def get(ctx: Context, key_id: str):
    """One API key of the account."""
    return apikeys.get_api_key(ctx.deps, owner_id=ctx.principal.tenant_id, key_id=key_id)


@accounts_api.post("/api_keys/{key_id}/roll", body=RollApiKeyRequest, response=ApiKeyWithSecret,
                   auth=("user",), rate_limits=[(limits.API_KEY_CREATE, "principal")],
                   secret_fields=ApiKeyWithSecret.SHOWN_ONCE)
def roll(ctx: Context, key_id: str):
    """Replace the key's secret; the old one keeps working for ``expires_in_seconds``."""
    return apikeys.roll_api_key(ctx.uow, owner_id=ctx.principal.tenant_id, key_id=key_id,
                                expires_in_seconds=ctx.body.expires_in_seconds)


@accounts_api.delete("/api_keys/{key_id}", response=ApiKey, auth=("user",),
                     rate_limits=[(limits.ME_WRITE, "principal")])
def revoke(ctx: Context, key_id: str):
    """Revoke a key now."""
    return apikeys.revoke_api_key(ctx.uow, owner_id=ctx.principal.tenant_id, key_id=key_id)
