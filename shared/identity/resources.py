"""The identity resources as the API returns them, and the identity events in the catalogue.

Every ``uow.emit`` type in ``shared/identity`` is declared here once with its payload schema
(``shared.platform.catalog``): emits are checked against it in tests, and public types are
published in OpenAPI's ``webhooks`` section. ``tests/identity/test_events.py`` checks that no
identity emit is left undeclared. Event data never holds secrets or hashes (ADR 0010).
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.json_schema import SkipJsonSchema

from shared.platform.catalog import ObjectPayload, declare
from shared.platform.models import ResourceModel


def _sparse_schema(schema: dict, cls) -> None:
    for name in cls.SPARSE:  # absent when unset: no "default": null in the schema either
        schema.get("properties", {}).get(name, {}).pop("default", None)


class SparseModel(ResourceModel):
    """A response whose ``SPARSE`` fields are left out when unset (absent, not ``null``), as
    the API has always answered them (``chain_ids``, a JWK's ``y``, a session's ``current``).
    Declare those fields ``X | SkipJsonSchema[None] = None`` so the schema says "optional"."""
    model_config = ConfigDict(extra="ignore", json_schema_extra=_sparse_schema)
    SPARSE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler):
        data = handler(self)
        if self.SPARSE and isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k not in self.SPARSE}
        return data


class LinkedWallet(ResourceModel):
    address: str | None = None
    chain_id: int | None = None
    did: str | None = None
    created: str | None = None


class LinkedDid(ResourceModel):
    did: str | None = None
    created: str | None = None


class User(ResourceModel):
    """A user. Sign-ups by phone or social login announce only ``id`` and ``object``."""
    id: str
    object: Literal["user"] = "user"
    username: str | None = None
    email: str | None = None
    email_verified: bool = False
    phone: str | None = None
    phone_verified: bool = False
    display_name: str | None = None
    locale: str = "en"
    kyc_status: str = "none"
    kyc_tier: int = 0
    mfa_enabled: bool = False
    status: str = "active"
    wallets: list[LinkedWallet] = Field(default_factory=list)
    dids: list[LinkedDid] = Field(default_factory=list)
    created: str | None = None


class Session(SparseModel):
    SPARSE = frozenset({"current"})
    id: str
    object: Literal["session"] = "session"
    user_id: str
    status: Literal["active", "revoked"]
    amr: list[str] = Field(default_factory=list)
    ip: str | None = None
    user_agent: str | None = None
    created: str | None = None
    last_refreshed: str | None = None
    expires: str | None = None
    revoked: str | None = None
    revoked_reason: str | None = None
    current: bool | SkipJsonSchema[None] = Field(
        None, description="On /v1/me/sessions: whether this is the caller's session.")


class ApiKey(ResourceModel):
    id: str
    object: Literal["api_key"] = "api_key"
    name: str | None = None
    prefix: str
    scopes: list[str]
    livemode: bool = False
    status: Literal["active", "expired", "revoked"]
    created: str | None = None
    last_used: str | None = None
    expires_at: str | None = None
    revoked: str | None = None
    rolled_from: str | None = None
    rolled_to: str | None = None


class ApiKeyWithSecret(ApiKey):
    """An API key as created or rolled: the only answer that shows its secret."""
    SHOWN_ONCE: ClassVar[tuple[str, ...]] = ("secret",)  # the route's secret_fields
    secret: str | None = Field(..., description="Shown once. Never stored: null when an "
                                                "Idempotency-Key replays this answer.")



class WalletLink(ResourceModel):
    id: str
    object: Literal["wallet_link"] = "wallet_link"
    address: str
    chain_id: int
    did: str
    kind: str
    created: str


class Did(ResourceModel):
    id: str
    object: Literal["did"] = "did"
    did: str
    method: str
    phone: str | None = None
    source: str = "registered"
    created: str | None = None


class Identity(ResourceModel):
    """A social sign-in identity linked to a user."""
    id: str
    object: Literal["identity"] = "identity"
    provider: str
    subject: str
    email: str | None = None
    name: str | None = None
    login: str | None = None
    created: str
    last_used: str | None = None


# --- event payloads --------------------------------------------------------------------------

class UserCreated(BaseModel):
    object: User
    method: str | None = Field(None, description="phone, or social:<provider>; absent for "
                                                 "email and password sign-ups.")
    carrier: str | None = None


class UserEmailVerified(BaseModel):
    object: User
    email: str


class UserPhoneVerified(BaseModel):
    object: User
    phone: str


class SessionRevoked(BaseModel):
    object: Session
    reason: str = Field(..., description="logout, user_revoked, refresh_token_reused, "
                                         "password_reset or password_changed.")


class PasswordResetRequestRef(BaseModel):
    object: Literal["password_reset_request"]


USER_CREATED = declare("user.created", UserCreated, description="A user signed up.")
USER_EMAIL_VERIFIED = declare("user.email_verified", UserEmailVerified,
                              description="A user confirmed their email address.")
USER_PHONE_VERIFIED = declare("user.phone_verified", UserPhoneVerified,
                              description="A user added and verified a phone number.")
SESSION_REVOKED = declare("session.revoked", SessionRevoked,
                          description="A session was signed out or revoked.")
PASSWORD_RESET_REQUESTED = declare(
    "password_reset.requested", ObjectPayload[PasswordResetRequestRef], public=False,
    description="Someone asked for a password reset (names no account; audit only).")
API_KEY_CREATED = declare("api_key.created", ObjectPayload[ApiKey],
                          description="An API key was created or rolled (never its secret).")
API_KEY_REVOKED = declare("api_key.revoked", ObjectPayload[ApiKey],
                          description="An API key was revoked.")
WALLET_LINKED = declare("user.wallet.linked", ObjectPayload[WalletLink],
                        description="A wallet was linked with Sign-In with Ethereum.")
WALLET_UNLINKED = declare("user.wallet.unlinked", ObjectPayload[WalletLink],
                          description="A wallet was unlinked.")
DID_LINKED = declare("user.did.linked", ObjectPayload[Did], description="A DID was linked.")
DID_UNLINKED = declare("user.did.unlinked", ObjectPayload[Did],
                       description="A DID was unlinked.")
IDENTITY_LINKED = declare("user.identity.linked", ObjectPayload[Identity],
                          description="A social sign-in identity was linked.")
IDENTITY_UNLINKED = declare("user.identity.unlinked", ObjectPayload[Identity],
                            description="A social sign-in identity was unlinked.")
