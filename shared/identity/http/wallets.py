"""Wallet links by Sign-In with Ethereum (/v1/me/wallets) and SIWE sign-in (/v1/auth/siwe)."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from shared.identity import limits
from shared.identity.web3 import wallets
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.resources import WalletLink
from shared.identity.responses import SiweNonce, WalletSignInAnswer
from shared.identity.web3.siwe import MAX_MESSAGE_CHARS
from shared.identity.sessions.tokens import no_store
from shared.platform.models import RequestModel
from shared.platform.pagination import ListResponse
from shared.platform.ratelimit import Limit
from shared.platform.router import PUBLIC, Context, Result

NONCE_PRINCIPAL = Limit("me.wallets.nonce.principal", 30, 3600)
SIWE_NONCE_IP = Limit("auth.siwe.nonce.ip", 60, 300)
SIWE_VERIFY_IP = Limit("auth.siwe.verify.ip", 30, 300)


class SignedMessage(RequestModel):
    # The message is signed byte for byte: no whitespace stripping.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    message: str = Field(..., min_length=1, max_length=MAX_MESSAGE_CHARS)
    signature: str = Field(..., min_length=4, max_length=8194)


@accounts_api.post("/wallets/nonce", response=SiweNonce, auth=("user",), status=201,
                   idempotent=False, rate_limits=[(NONCE_PRINCIPAL, "principal")])
def wallet_nonce(ctx: Context):
    """A single-use nonce (10 min) for the SIWE message that links a wallet to this user."""
    return wallets.create_nonce(ctx.uow, user_id=ctx.principal.id, purpose="link")


@accounts_api.post("/wallets", body=SignedMessage, response=WalletLink, auth=("user",),
                   idempotent=False, atomic=False, rate_limits=[(limits.ME_WRITE, "principal")],
                   other_statuses=(201,))
def link_wallet(ctx: Context):
    """Link the wallet that signed the EIP-4361 message (EOA: EIP-191; contract: ERC-1271)."""
    link, created = wallets.link_wallet(ctx.uow, user_id=ctx.principal.id,
                                        message=ctx.body.message, signature=ctx.body.signature)
    return Result(link, status=201 if created else 200)


@accounts_api.get("/wallets", response=ListResponse[WalletLink], auth=("user",),
                  rate_limits=[(limits.ME_READ, "principal")])
def list_wallets(ctx: Context):
    """The wallets linked to this account."""
    return wallets.list_wallets(ctx.deps, ctx.principal.id)


@accounts_api.delete("/wallets/{address}", status=204, auth=("user",),
                     rate_limits=[(limits.ME_WRITE, "principal")])
def unlink_wallet(ctx: Context, address: str):
    """Unlink a wallet (and its did:pkh); refused (409) if it is the last way in."""
    wallets.unlink_wallet(ctx.uow, user_id=ctx.principal.id, address=address)
    return None


@auth_api.post("/siwe/nonce", response=SiweNonce, auth=PUBLIC, status=201, idempotent=False,
               rate_limits=[(SIWE_NONCE_IP, "ip")])
def siwe_nonce(ctx: Context):
    """A single-use nonce for signing in with a linked wallet."""
    return wallets.create_nonce(ctx.uow, user_id=None, purpose="signin")


@auth_api.post("/siwe/verify", body=SignedMessage, response=WalletSignInAnswer, auth=PUBLIC,
               idempotent=False, atomic=False, rate_limits=[(SIWE_VERIFY_IP, "ip")])
def siwe_verify(ctx: Context):
    """Sign in with a wallet already linked to an account; returns tokens."""
    return no_store(WalletSignInAnswer(wallets.sign_in_with_wallet(
        ctx.uow, message=ctx.body.message, signature=ctx.body.signature, ip=ctx.ip,
        user_agent=ctx.request.headers.get("User-Agent"))))
