"""Request bodies of the identity endpoints, and the normalisation of emails and usernames.

Models holding secrets (passwords, codes, tokens) do not strip whitespace: a password is
exactly what the user typed. Unknown fields are a 400 (``RequestModel``).
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from shared.platform.ids import is_id
from shared.platform.models import RequestModel

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,30}$")
RESERVED_USERNAMES = frozenset({
    "admin", "administrator", "root", "system", "support", "help", "payloom", "api", "auth",
    "me", "www", "security", "billing", "null", "undefined", "official", "staff", "moderator",
})
_LOCAL_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def normalise_email(raw: str) -> str:
    """Strip, lower-case the domain (IDNA to ASCII), check the syntax. Raises ValueError."""
    value = raw.strip()
    if len(value) > 254 or value.count("@") != 1:
        raise ValueError("not a valid email address")
    local, domain = value.split("@")
    if not local or len(local) > 64 or not _LOCAL_RE.match(local):
        raise ValueError("not a valid email address")
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("not a valid email domain") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels) \
            or labels[-1].isdigit() or len(labels[-1]) < 2:
        raise ValueError("not a valid email domain")
    return f"{local}@{domain}"


def validate_username(raw: str) -> str:
    value = raw.strip()
    if not USERNAME_RE.match(value):
        raise ValueError("usernames are 3 to 30 characters: letters, digits and underscore")
    if value.lower() in RESERVED_USERNAMES:
        raise ValueError("this username is reserved")
    return value


def validate_display_name(raw: str) -> str:
    value = raw.strip()
    if not value or _CONTROL_RE.search(value):
        raise ValueError("display names are 1 to 64 printable characters")
    return value


class SecretModel(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# --- /v1/auth -----------------------------------------------------------------------------

class RegisterRequest(SecretModel):
    email: str = Field(..., max_length=254)
    password: str = Field(..., min_length=1, max_length=1024)
    username: str = Field(..., max_length=64)
    display_name: str | None = Field(None, max_length=64)
    locale: Literal["en", "km"] = "en"

    _email = field_validator("email")(lambda cls, v: normalise_email(v))
    _username = field_validator("username")(lambda cls, v: validate_username(v))

    @field_validator("display_name")
    @classmethod
    def _display(cls, v):
        return None if v is None else validate_display_name(v)


class LoginRequest(SecretModel):
    email: str | None = Field(None, max_length=254)
    username: str | None = Field(None, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_identifier(self):
        if bool(self.email) == bool(self.username):
            raise ValueError("give exactly one of email or username")
        if self.email:
            self.email = normalise_email(self.email)
        if self.username:
            self.username = self.username.strip()
        return self


class RefreshRequest(SecretModel):
    refresh_token: str = Field(..., min_length=1, max_length=200)


class TokenRequest(SecretModel):
    token: str = Field(..., min_length=1, max_length=200)


class ForgotPasswordRequest(RequestModel):
    email: str = Field(..., max_length=254)
    _email = field_validator("email")(lambda cls, v: normalise_email(v))


class ResetPasswordRequest(SecretModel):
    token: str = Field(..., min_length=1, max_length=200)
    password: str = Field(..., min_length=1, max_length=1024)


class MfaVerifyRequest(SecretModel):
    challenge_id: str = Field(..., min_length=1, max_length=64)
    code: str = Field(..., min_length=1, max_length=64)
    method: Literal["totp", "backup_code", "sms"] | None = None

    @field_validator("challenge_id")
    @classmethod
    def _challenge_id(cls, v):
        # It names a Firestore document: only our own id shape may reach the database.
        if not is_id(v, "mfc"):
            raise ValueError("not an MFA challenge id")
        return v


# --- /v1/me -------------------------------------------------------------------------------

class ChangePasswordRequest(SecretModel):
    current_password: str = Field(..., min_length=1, max_length=1024)
    new_password: str = Field(..., min_length=1, max_length=1024)


class CodeRequest(SecretModel):
    code: str = Field(..., min_length=1, max_length=64)


class UpdateProfileRequest(RequestModel):
    display_name: str | None = Field(None, max_length=64)
    username: str | None = Field(None, max_length=64)
    locale: Literal["en", "km"] | None = None

    @field_validator("display_name")
    @classmethod
    def _display(cls, v):
        return None if v is None else validate_display_name(v)

    @field_validator("username")
    @classmethod
    def _username(cls, v):
        return None if v is None else validate_username(v)


class CreateApiKeyRequest(RequestModel):
    name: str | None = Field(None, max_length=100)
    scopes: list[str] = Field(..., min_length=1, max_length=50)
    livemode: bool = False
    expires_in_seconds: int | None = Field(None, ge=60, le=5 * 365 * 86400)


class RollApiKeyRequest(RequestModel):
    expires_in_seconds: int = Field(0, ge=0, le=7 * 86400,
                                    description="How long the old key keeps working (0 = now).")
