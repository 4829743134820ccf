"""/v1/webhook_endpoints: merchants manage where their events go (users and API keys)."""
from __future__ import annotations

from shared.merchants.roles import require_if_member
from shared.platform.pagination import ListResponse
from shared.platform.router import Context
from shared.webhooks import endpoints
from shared.webhooks.api import api
from shared.webhooks.models import (
    CreateEndpoint,
    DeletedWebhookEndpoint,
    EndpointListQuery,
    RotateSecret,
    UpdateEndpoint,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
)

CALLERS = ("user", "api_key")
READ, WRITE = ["webhooks:read"], ["webhooks:write"]


@api.post("/", body=CreateEndpoint, response=WebhookEndpointWithSecret, status=201, auth=CALLERS,
          scopes=WRITE, secret_fields=WebhookEndpointWithSecret.SHOWN_ONCE)
def create_endpoint(ctx: Context):
    """Create a webhook endpoint; its signing secret is shown in this answer only."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.create(ctx.uow, ctx.principal, ctx.body)


@api.get("/", query=EndpointListQuery, response=ListResponse[WebhookEndpoint], auth=CALLERS,
         scopes=READ)
def list_endpoints(ctx: Context):
    """List webhook endpoints, newest first."""
    require_if_member(ctx.principal, "read")
    return endpoints.list_endpoints(ctx.deps, ctx.principal, ctx.query)


@api.get("/{endpoint_id}", response=WebhookEndpoint, auth=CALLERS, scopes=READ)
def get_endpoint(ctx: Context, endpoint_id: str):
    """Retrieve a webhook endpoint (never its secret)."""
    require_if_member(ctx.principal, "read")
    return endpoints.get(ctx.deps, ctx.principal, endpoint_id)


@api.post("/{endpoint_id}", body=UpdateEndpoint, response=WebhookEndpoint, auth=CALLERS,
          scopes=WRITE)
def update_endpoint(ctx: Context, endpoint_id: str):
    """Update a webhook endpoint's URL, events, description or metadata."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.update(ctx.uow, ctx.principal, endpoint_id, ctx.body)


@api.delete("/{endpoint_id}", response=DeletedWebhookEndpoint, auth=CALLERS, scopes=WRITE)
def delete_endpoint(ctx: Context, endpoint_id: str):
    """Delete a webhook endpoint."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.delete(ctx.uow, ctx.principal, endpoint_id)


@api.post("/{endpoint_id}/enable", response=WebhookEndpoint, auth=CALLERS, scopes=WRITE)
def enable_endpoint(ctx: Context, endpoint_id: str):
    """Enable a disabled webhook endpoint (its failure clock restarts)."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.enable(ctx.uow, ctx.principal, endpoint_id)


@api.post("/{endpoint_id}/disable", response=WebhookEndpoint, auth=CALLERS, scopes=WRITE)
def disable_endpoint(ctx: Context, endpoint_id: str):
    """Disable a webhook endpoint: nothing is delivered to it until it is enabled."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.disable(ctx.uow, ctx.principal, endpoint_id)


@api.post("/{endpoint_id}/rotate_secret", body=RotateSecret, response=WebhookEndpointWithSecret,
          auth=CALLERS, scopes=WRITE, secret_fields=WebhookEndpointWithSecret.SHOWN_ONCE)
def rotate_secret(ctx: Context, endpoint_id: str):
    """Issue a new signing secret; the old one keeps signing during the grace period."""
    require_if_member(ctx.principal, "manage_webhooks")
    return endpoints.rotate_secret(ctx.uow, ctx.principal, endpoint_id, ctx.body.expires_in_seconds)
