"""Merchant resources, request bodies and event types (declared once, public)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shared.identity.models import normalise_email
from shared.identity.resources import ApiKey, ApiKeyWithSecret
from shared.platform import catalog
from shared.platform.catalog import ObjectPayload
from shared.platform.models import DisplayText, DocId, RequestModel, ResourceModel
from shared.platform.pagination import ListQuery

Role = Literal["owner", "admin", "developer", "support", "viewer"]
MerchantStatus = Literal["active", "disabled"]


class Merchant(ResourceModel):
    id: str
    object: Literal["merchant"] = "merchant"
    business_name: str
    country: str
    settlement_asset: str
    status: MerchantStatus
    created_by: str
    created: str
    updated: str | None = None
    role: Role | None = Field(None, description="The caller's role in this merchant (users).")


class Member(ResourceModel):
    id: str = Field(..., description="The member's user id.")
    object: Literal["merchant_member"] = "merchant_member"
    merchant: str
    user: str
    role: Role
    email: str | None = None
    created: str
    updated: str | None = None


class DeletedMember(ResourceModel):
    id: str
    object: Literal["merchant_member"] = "merchant_member"
    merchant: str
    deleted: Literal[True] = True


class Invitation(ResourceModel):
    id: str
    object: Literal["merchant_invitation"] = "merchant_invitation"
    merchant: str
    merchant_name: str | None = None
    email: str
    role: Role
    status: Literal["pending", "accepted", "revoked", "expired"]
    invited_by: str
    created: str
    expires_at: str
    accepted_by: str | None = None
    accepted_at: str | None = None


class Project(ResourceModel):
    id: str
    object: Literal["project"] = "project"
    merchant: str
    name: str
    description: str | None = None
    livemode: bool
    created: str
    updated: str | None = None


class DeletedProject(ResourceModel):
    id: str
    object: Literal["project"] = "project"
    deleted: Literal[True] = True
    revoked_api_keys: int = 0


class MerchantApiKey(ApiKey):
    """A merchant's API key, with the project it belongs to."""
    project: str | None = None


class MerchantApiKeyWithSecret(ApiKeyWithSecret):
    project: str | None = None


# --- requests ---------------------------------------------------------------------------------

class CreateMerchant(RequestModel):
    business_name: DisplayText = Field(..., min_length=1, max_length=200)
    country: str = Field(..., min_length=2, max_length=2, description="ISO 3166-1 alpha-2.")
    settlement_asset: str = Field(..., min_length=1, max_length=12,
                                  description="A ledger asset code (USD, KHR, USDC, …).")


class UpdateMerchant(RequestModel):
    business_name: DisplayText | None = Field(None, min_length=1, max_length=200)
    country: str | None = Field(None, min_length=2, max_length=2)


class MerchantListQuery(ListQuery):
    pass


class CreateInvitation(RequestModel):
    email: str = Field(..., max_length=254)
    role: Role

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalise_email(v).lower()  # invitations match emails case-insensitively


class AcceptInvitation(RequestModel):
    token: str | None = Field(None, min_length=10, max_length=200,
                              description="The token from the invitation email; without it the "
                                          "caller's verified email must be the invited one.")


class UpdateMember(RequestModel):
    role: Role


class CreateProject(RequestModel):
    name: str = Field(..., min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)


class UpdateProject(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)


class CreateProjectKey(RequestModel):
    name: str | None = Field(None, max_length=100)
    scopes: list[str] = Field(..., min_length=1, max_length=50)
    livemode: bool | None = Field(None, description="Must be the project's mode when given.")
    expires_in_seconds: int | None = Field(None, ge=60, le=5 * 365 * 86400)


class RollKey(RequestModel):
    expires_in_seconds: int = Field(0, ge=0, le=7 * 86400,
                                    description="How long the old key keeps working (0 = now).")


class KeyListQuery(ListQuery):
    project: DocId | None = Field(None, max_length=100, description="Only this project's keys.")


# --- events -----------------------------------------------------------------------------------

MERCHANT_CREATED = catalog.declare("merchant.created", ObjectPayload[Merchant],
                                   description="A merchant (organisation) was created.")
MERCHANT_UPDATED = catalog.declare("merchant.updated", ObjectPayload[Merchant],
                                   description="A merchant's profile or settlement asset changed.")
MEMBER_ADDED = catalog.declare("merchant.member_added", ObjectPayload[Member],
                               description="A user joined a merchant's team.")
MEMBER_UPDATED = catalog.declare("merchant.member_updated", ObjectPayload[Member],
                                 description="A team member's role changed.")
MEMBER_REMOVED = catalog.declare("merchant.member_removed", ObjectPayload[Member],
                                 description="A team member left or was removed.")
PROJECT_CREATED = catalog.declare("project.created", ObjectPayload[Project],
                                  description="A merchant created a project.")
PROJECT_UPDATED = catalog.declare("project.updated", ObjectPayload[Project],
                                  description="A project's name or description changed.")
PROJECT_DELETED = catalog.declare("project.deleted", ObjectPayload[Project],
                                  description="A project was deleted (its API keys revoked).")
