"""/v1/merchants: merchants, team, invitations, projects, per-project keys, settings, branding.

Who may call what (ADR 0030): every route under ``/{merchant_id}`` resolves the caller for
that merchant (``context.acting_for``) and checks the role matrix. API keys may only READ the
merchant, its projects and settings (scope ``account:read``) and their merchant's key metadata
(``api_keys:read``): a key can never mint keys, change the team or the settings (a leaked key
must not widen its own power or redirect deposits by changing the xpub).
"""
from __future__ import annotations

from shared.merchants import (
    branding_routes,
    invitations,
    keys,
    members,
    merchants,
    projects,
    settings,
    store,
)
from shared.merchants.context import acting_for
from shared.merchants.models import (
    AcceptInvitation,
    CreateInvitation,
    CreateMerchant,
    CreateProject,
    CreateProjectKey,
    DeletedMember,
    DeletedProject,
    Invitation,
    KeyListQuery,
    Member,
    Merchant,
    MerchantApiKey,
    MerchantApiKeyWithSecret,
    MerchantListQuery,
    Project,
    RollKey,
    UpdateMember,
    UpdateMerchant,
    UpdateProject,
)
from shared.merchants.settings import MerchantSettings, UpdateSettings, get_settings
from shared.platform.pagination import ListQuery, ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import Context, Router

api = Router("merchants", public_prefix="merchants", tags=["merchants"])

USERS = ("user",)
USERS_AND_KEYS = ("user", "api_key")
READ_ACCOUNT = ["account:read"]
READ_KEYS = ["api_keys:read"]
CREATE_LIMIT = (Limit("merchants.create", 10, 3600), "principal")
INVITE_LIMIT = (Limit("merchants.invite", 60, 3600), "principal")
ACCEPT_LIMIT = (Limit("merchants.accept", 20, 600), "principal")


# --- the caller's merchants ------------------------------------------------------------------

@api.post("/", body=CreateMerchant, response=Merchant, status=201, auth=USERS,
          rate_limits=[CREATE_LIMIT])
def create_merchant(ctx: Context):
    """Register a merchant; the caller becomes its owner."""
    return merchants.create_merchant(ctx.uow, ctx.principal, ctx.body)


@api.get("/", query=MerchantListQuery, response=ListResponse[Merchant], auth=USERS)
def list_merchants(ctx: Context):
    """The merchants the caller is a member of, with their role."""
    return merchants.list_my_merchants(ctx.deps, ctx.principal, ctx.query)


@api.get("/invitations", response=ListResponse[Invitation], auth=USERS)
def my_invitations(ctx: Context):
    """Pending invitations sent to the caller's verified email."""
    return invitations.my_invitations(ctx.deps, ctx.principal)


@api.post("/invitations/{invitation_id}/accept", body=AcceptInvitation, response=Member,
          auth=USERS, rate_limits=[ACCEPT_LIMIT])
def accept_invitation(ctx: Context, invitation_id: str):
    """Join the merchant: with the emailed token, or as the invited verified email."""
    return invitations.accept_invitation(ctx.uow, ctx.principal, invitation_id, ctx.body.token)


# --- one merchant ----------------------------------------------------------------------------

@api.get("/{merchant_id}", response=Merchant, auth=USERS_AND_KEYS, scopes=READ_ACCOUNT)
def get_merchant(ctx: Context, merchant_id: str):
    """Retrieve a merchant (viewer+)."""
    acting = acting_for(ctx, merchant_id, "read")
    return merchants.get_merchant(ctx.deps, acting, merchant_id)


@api.post("/{merchant_id}", body=UpdateMerchant, response=Merchant, auth=USERS)
def update_merchant(ctx: Context, merchant_id: str):
    """Change the business name or country (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_settings")
    return merchants.update_merchant(ctx.uow, acting, merchant_id, ctx.body)


@api.get("/{merchant_id}/settings", response=MerchantSettings, auth=USERS_AND_KEYS,
         scopes=READ_ACCOUNT)
def read_settings(ctx: Context, merchant_id: str):
    """Payment settings with defaults (admin+; a merchant key with account:read)."""
    acting_for(ctx, merchant_id, "manage_settings")
    try:
        return get_settings(ctx.deps.db, merchant_id)
    except LookupError:
        raise store.not_a_member() from None


@api.post("/{merchant_id}/settings", body=UpdateSettings, response=MerchantSettings, auth=USERS)
def update_settings(ctx: Context, merchant_id: str):
    """Change payment settings (admin+); omitted fields keep their value."""
    acting_for(ctx, merchant_id, "manage_settings")
    return settings.update_settings(ctx.uow, merchant_id, ctx.body)


branding_routes.register(api)   # /{merchant_id}/branding: the hosted page's look, return URLs


# --- team ------------------------------------------------------------------------------------

@api.get("/{merchant_id}/members", query=ListQuery, response=ListResponse[Member], auth=USERS)
def list_members(ctx: Context, merchant_id: str):
    """The team, newest first (viewer+)."""
    acting = acting_for(ctx, merchant_id, "read")
    return members.list_members(ctx.deps, acting, merchant_id, ctx.query)


@api.get("/{merchant_id}/members/{user_id}", response=Member, auth=USERS)
def get_member(ctx: Context, merchant_id: str, user_id: str):
    """One member (viewer+)."""
    acting = acting_for(ctx, merchant_id, "read")
    return members.get_member(ctx.deps, acting, merchant_id, user_id)


@api.post("/{merchant_id}/members/{user_id}", body=UpdateMember, response=Member, auth=USERS)
def change_role(ctx: Context, merchant_id: str, user_id: str):
    """Change a member's role (admin+, up to the caller's own; owners by owners)."""
    acting = acting_for(ctx, merchant_id, "manage_members")
    return members.change_role(ctx.uow, acting, merchant_id, user_id, ctx.body)


@api.delete("/{merchant_id}/members/{user_id}", response=DeletedMember, auth=USERS)
def remove_member(ctx: Context, merchant_id: str, user_id: str):
    """Remove a member (admin+), or leave (anyone); never the last owner."""
    acting = acting_for(ctx, merchant_id, "read")
    return members.remove_member(ctx.uow, acting, merchant_id, user_id)


@api.post("/{merchant_id}/invitations", body=CreateInvitation, response=Invitation, status=201,
          auth=USERS, rate_limits=[INVITE_LIMIT])
def create_invitation(ctx: Context, merchant_id: str):
    """Invite someone by email with a role (admin+; owners invite owners)."""
    acting = acting_for(ctx, merchant_id, "manage_members")
    return invitations.create_invitation(ctx.uow, acting, merchant_id, ctx.body)


@api.get("/{merchant_id}/invitations", query=ListQuery, response=ListResponse[Invitation],
         auth=USERS)
def list_invitations(ctx: Context, merchant_id: str):
    """The merchant's invitations, newest first (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_members")
    return invitations.list_invitations(ctx.deps, acting, merchant_id, ctx.query)


@api.delete("/{merchant_id}/invitations/{invitation_id}", response=Invitation, auth=USERS)
def revoke_invitation(ctx: Context, merchant_id: str, invitation_id: str):
    """Revoke a pending invitation (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_members")
    return invitations.revoke_invitation(ctx.uow, acting, merchant_id, invitation_id)


# --- projects and their keys -----------------------------------------------------------------

@api.post("/{merchant_id}/projects", body=CreateProject, response=Project, status=201,
          auth=USERS)
def create_project(ctx: Context, merchant_id: str):
    """Create a project in the caller's mode (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_projects")
    return projects.create_project(ctx.uow, acting, merchant_id, ctx.body)


@api.get("/{merchant_id}/projects", query=ListQuery, response=ListResponse[Project],
         auth=USERS_AND_KEYS, scopes=READ_ACCOUNT)
def list_projects(ctx: Context, merchant_id: str):
    """This mode's projects, newest first (viewer+)."""
    acting = acting_for(ctx, merchant_id, "read")
    return projects.list_projects(ctx.deps, acting, merchant_id, ctx.query)


@api.get("/{merchant_id}/projects/{project_id}", response=Project, auth=USERS_AND_KEYS,
         scopes=READ_ACCOUNT)
def get_project(ctx: Context, merchant_id: str, project_id: str):
    """One project of this mode (viewer+)."""
    acting = acting_for(ctx, merchant_id, "read")
    return projects.get_project(ctx.deps, acting, merchant_id, project_id)


@api.post("/{merchant_id}/projects/{project_id}", body=UpdateProject, response=Project,
          auth=USERS)
def update_project(ctx: Context, merchant_id: str, project_id: str):
    """Rename or describe a project (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_projects")
    return projects.update_project(ctx.uow, acting, merchant_id, project_id, ctx.body)


@api.delete("/{merchant_id}/projects/{project_id}", response=DeletedProject, auth=USERS)
def delete_project(ctx: Context, merchant_id: str, project_id: str):
    """Delete a project and revoke its keys (admin+)."""
    acting = acting_for(ctx, merchant_id, "manage_projects")
    return projects.delete_project(ctx.uow, acting, merchant_id, project_id)


@api.post("/{merchant_id}/projects/{project_id}/api_keys", body=CreateProjectKey,
          response=MerchantApiKeyWithSecret, status=201, auth=USERS,
          secret_fields=MerchantApiKeyWithSecret.SHOWN_ONCE)
def create_key(ctx: Context, merchant_id: str, project_id: str):
    """Create an API key for a project, in its mode; the secret is shown once (developer+)."""
    acting = acting_for(ctx, merchant_id, "manage_keys")
    return keys.create_key(ctx.uow, acting, merchant_id, project_id, ctx.body)


@api.get("/{merchant_id}/api_keys", query=KeyListQuery, response=ListResponse[MerchantApiKey],
         auth=USERS_AND_KEYS, scopes=READ_KEYS)
def list_keys(ctx: Context, merchant_id: str):
    """This mode's keys, newest first, optionally of one project (developer+)."""
    acting = acting_for(ctx, merchant_id, "manage_keys")
    return keys.list_keys(ctx.deps, acting, merchant_id, ctx.query)


@api.get("/{merchant_id}/api_keys/{key_id}", response=MerchantApiKey, auth=USERS_AND_KEYS,
         scopes=READ_KEYS)
def get_key(ctx: Context, merchant_id: str, key_id: str):
    """One key's metadata, never its secret (developer+)."""
    acting = acting_for(ctx, merchant_id, "manage_keys")
    return keys.get_key(ctx.deps, acting, merchant_id, key_id)


@api.post("/{merchant_id}/api_keys/{key_id}/roll", body=RollKey,
          response=MerchantApiKeyWithSecret, auth=USERS,
          secret_fields=MerchantApiKeyWithSecret.SHOWN_ONCE)
def roll_key(ctx: Context, merchant_id: str, key_id: str):
    """Replace a key's secret; the old one works for the grace given (developer+)."""
    acting = acting_for(ctx, merchant_id, "manage_keys")
    return keys.roll_key(ctx.uow, acting, merchant_id, key_id, ctx.body)


@api.delete("/{merchant_id}/api_keys/{key_id}", response=MerchantApiKey, auth=USERS)
def revoke_key(ctx: Context, merchant_id: str, key_id: str):
    """Revoke a key now (developer+)."""
    acting = acting_for(ctx, merchant_id, "manage_keys")
    return keys.revoke_key(ctx.uow, acting, merchant_id, key_id)
