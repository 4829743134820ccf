"""What the identity flows answer, when it is not a stored resource (``resources``): token
pairs, the MFA challenge, factor status and enrolment, phone and SIWE challenges, the OAuth
authorization URL, the JWKS and DID documents.

Services build these; routes declare them as ``response=`` so the router checks every answer
against them in tests and the OpenAPI document describes each exactly. A sign-in answers a
token pair *or* an MFA challenge: the unions at the end (``RootModel``) say so in the schema.
Models with fields shown only once name them in ``SHOWN_ONCE``; their routes declare them as
``secret_fields`` (checked by ``tests/identity/test_responses.py``).
"""
from __future__ import annotations

from typing import ClassVar, Literal, Union

from pydantic import ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from shared.identity.resources import Identity, Session, SparseModel
from shared.platform.models import ResourceModel

Method = Literal["totp", "backup_code", "sms"]


# --- tokens and the second-factor challenge ----------------------------------------------------

class TokenPair(ResourceModel):
    """A new access token and its rotating refresh token (RFC 6749 5.1; ``Cache-Control:
    no-store``)."""
    access_token: str = Field(..., description="JWT (typ at+jwt), valid for expires_in seconds.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str = Field(..., description="Opaque rt_…, single use (rotated on refresh).")
    session: Session


class PhoneSignIn(TokenPair):
    user_id: str
    new_user: bool = Field(..., description="True when this code created the account (201).")


class WalletSignIn(TokenPair):
    user_id: str
    address: str = Field(..., description="The EIP-55 address that signed the message.")


class SocialSignIn(TokenPair):
    user_id: str
    new_user: bool = Field(..., description="True when this sign-in created the account (201).")
    provider: str


class MfaChallenge(ResourceModel):
    """A first factor was proven but the account has a second one on: no tokens yet.
    Complete it with ``POST /v1/auth/mfa/verify``."""
    object: Literal["mfa_challenge"] = "mfa_challenge"
    challenge_id: str
    methods: list[Method]
    expires_in: int


class MfaSmsSent(ResourceModel):
    object: Literal["mfa_sms_sent"] = "mfa_sms_sent"
    challenge_id: str
    phone: str = Field(..., description="Masked: the country code and the last 3 digits.")
    expires_in: int


# --- second factors --------------------------------------------------------------------------

class MfaStatus(SparseModel):
    """The account's second factors after the request."""
    SPARSE = frozenset({"phone"})
    object: Literal["mfa_status"] = "mfa_status"
    totp_enabled: bool
    sms_enabled: bool
    backup_codes_remaining: int
    methods: list[Method]
    phone: str | SkipJsonSchema[None] = Field(
        None, description="Masked phone the SMS factor texts (when turning SMS on).")


class MfaBackupCodes(MfaStatus):
    """MFA status plus fresh backup codes: the only answer that shows them."""
    SHOWN_ONCE: ClassVar[tuple[str, ...]] = ("backup_codes",)
    backup_codes: list[str] | None = Field(..., description="10 single-use codes "
                                           "(xxxx-xxxx-xxxx-xxxx), shown once; never stored.")


class TotpEnrollment(ResourceModel):
    """A TOTP seed to scan: the only answer that shows it (confirm with a code to turn on)."""
    SHOWN_ONCE: ClassVar[tuple[str, ...]] = ("secret", "otpauth_uri", "qr_code")
    object: Literal["totp_enrollment"] = "totp_enrollment"
    secret: str | None = Field(..., description="Base32 seed, shown once.")
    otpauth_uri: str | None = Field(..., description="otpauth://totp/… (holds the seed).")
    qr_code: str | None = Field(..., description="The URI as a PNG data URI.")
    digits: int = 6
    period: int = 30
    algorithm: Literal["SHA1"] = "SHA1"


class MfaSmsEnrollment(ResourceModel):
    object: Literal["mfa_sms_enrollment"] = "mfa_sms_enrollment"
    phone: str = Field(..., description="Masked verified phone the code went to.")
    expires_in: int


# --- phone, email and password ---------------------------------------------------------------

class PhoneVerification(ResourceModel):
    """A code was texted (the answer never says whether the number has an account)."""
    object: Literal["phone_verification"] = "phone_verification"
    purpose: str
    phone: str = Field(..., description="E.164.")
    country_code: int
    region: str | None
    carrier: str | None
    expires_in: int
    expires_at: str
    resend_after: int = Field(..., description="Seconds before another code may be sent.")


class EmailVerificationSent(ResourceModel):
    object: Literal["email_verification"] = "email_verification"
    email: str
    sent: bool


class PasswordResetRequested(ResourceModel):
    """The same answer whether or not the account exists."""
    object: Literal["password_reset_request"] = "password_reset_request"
    email: str
    message: str


class PasswordReset(ResourceModel):
    object: Literal["password_reset"] = "password_reset"
    user_id: str
    sessions_revoked: int


class PasswordChange(ResourceModel):
    object: Literal["password_change"] = "password_change"
    user_id: str
    sessions_revoked: int


# --- web3 and social -------------------------------------------------------------------------

class SiweNonce(SparseModel):
    """A single-use nonce for an EIP-4361 message."""
    SPARSE = frozenset({"chain_ids"})
    object: Literal["siwe_nonce"] = "siwe_nonce"
    nonce: str
    domain: str
    expires_at: str
    expires_in: int
    issued_at: str
    chain_ids: list[int] | SkipJsonSchema[None] = Field(
        None, description="The chains accepted, when the deployment restricts them.")


class DidChallenge(ResourceModel):
    object: Literal["did_challenge"] = "did_challenge"
    id: str
    did: str
    message: str = Field(..., description="Sign these UTF-8 bytes with the did:key's key.")
    expires_at: str
    expires_in: int
    signature_format: str


class DidVerificationMethod(SparseModel):
    SPARSE = frozenset({"publicKeyMultibase", "blockchainAccountId"})
    id: str
    type: str
    controller: str
    publicKeyMultibase: str | SkipJsonSchema[None] = None
    blockchainAccountId: str | SkipJsonSchema[None] = None


class DidDocument(SparseModel):
    """A W3C DID document (``application/did+ld+json``), derived from the DID itself."""
    SPARSE = frozenset({"capabilityInvocation", "capabilityDelegation"})
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    context: list[str | dict[str, str]] = Field(..., alias="@context")
    id: str
    verificationMethod: list[DidVerificationMethod]
    authentication: list[str]
    assertionMethod: list[str]
    capabilityInvocation: list[str] | SkipJsonSchema[None] = None
    capabilityDelegation: list[str] | SkipJsonSchema[None] = None


class OAuthAuthorization(ResourceModel):
    """Where to send the user to sign in with (or link) a provider (PKCE, state)."""
    object: Literal["oauth_authorization"] = "oauth_authorization"
    provider: str
    url: str
    state: str
    redirect_uri: str
    link: bool
    expires_at: str
    expires_in: int


class Jwk(SparseModel):
    """A public signing key (RFC 7517): OKP/Ed25519 (EdDSA) or EC/P-256 (ES256)."""
    SPARSE = frozenset({"y"})
    kty: Literal["OKP", "EC"]
    crv: Literal["Ed25519", "P-256"]
    x: str
    y: str | SkipJsonSchema[None] = Field(None, description="EC keys only.")
    kid: str
    alg: Literal["EdDSA", "ES256"]
    use: Literal["sig"] = "sig"


class JwkSet(ResourceModel):
    keys: list[Jwk]


# --- what a sign-in answers --------------------------------------------------------------------

class SignInAnswer(RootModel[Union[TokenPair, MfaChallenge]]):
    """Tokens, or an MFA challenge when the account has a second factor on."""


class PhoneSignInAnswer(RootModel[Union[PhoneSignIn, MfaChallenge]]):
    """Tokens (201 when the number was new), or an MFA challenge."""


class WalletSignInAnswer(RootModel[Union[WalletSignIn, MfaChallenge]]):
    """Tokens, or an MFA challenge."""


class SocialCallbackAnswer(RootModel[Union[SocialSignIn, MfaChallenge, Identity]]):
    """Tokens (201 for a new account) or an MFA challenge; the linked identity for a link."""
