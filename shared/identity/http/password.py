"""Email/password routes: register, login, logout, email verification, password reset/change."""
from __future__ import annotations

from shared.identity import limits
from shared.identity.users import accounts
from shared.identity.http.api import accounts_api, auth_api
from shared.identity.models import (ChangePasswordRequest, ForgotPasswordRequest, LoginRequest,
                                    RegisterRequest, ResetPasswordRequest, TokenRequest)
from shared.identity.resources import User
from shared.identity.responses import (EmailVerificationSent, PasswordChange, PasswordReset,
                                       PasswordResetRequested, SignInAnswer)
from shared.identity.sessions.tokens import no_store
from shared.platform.router import PUBLIC, Context


def _ua(ctx: Context) -> str | None:
    return ctx.request.headers.get("User-Agent")


@auth_api.post("/register", body=RegisterRequest, response=User, status=201, auth=PUBLIC,
               rate_limits=[(limits.REGISTER_IP, "ip")])
def register(ctx: Context):
    """Create an account with email, username and password (sends a verification email)."""
    b = ctx.body
    return accounts.register_user(ctx.uow, email=b.email, password=b.password, username=b.username,
                                  display_name=b.display_name, locale=b.locale,
                                  idempotency_key=ctx.idempotency_key)


@auth_api.post("/login", body=LoginRequest, response=SignInAnswer, auth=PUBLIC, idempotent=False,
               rate_limits=[(limits.LOGIN_IP, "ip")])
def login(ctx: Context):
    """Sign in with email or username and password: tokens, or an MFA challenge."""
    b = ctx.body
    return no_store(SignInAnswer(accounts.login(ctx.uow, email=b.email, username=b.username,
                                                password=b.password, ip=ctx.ip,
                                                user_agent=_ua(ctx))))


@auth_api.post("/email/verify", body=TokenRequest, response=User, auth=PUBLIC, idempotent=False,
               rate_limits=[(limits.VERIFY_IP, "ip")])
def verify_email(ctx: Context):
    """Confirm the email address with the token from the verification email (single use)."""
    return accounts.verify_email(ctx.uow, ctx.body.token)


@auth_api.post("/email/resend", response=EmailVerificationSent, auth=("user",), status=202,
               idempotent=False, rate_limits=[(limits.RESEND_PRINCIPAL, "principal")])
def resend_verification(ctx: Context):
    """Send a new verification email to the signed-in user."""
    return accounts.resend_verification(ctx.uow, ctx.principal.id)


@auth_api.post("/password/forgot", body=ForgotPasswordRequest, response=PasswordResetRequested,
               auth=PUBLIC, status=202, idempotent=False, rate_limits=[(limits.FORGOT_IP, "ip")])
def forgot_password(ctx: Context):
    """Email a password-reset link if the account exists (the answer never says)."""
    return accounts.forgot_password(ctx.uow, ctx.body.email)


@auth_api.post("/password/reset", body=ResetPasswordRequest, response=PasswordReset, auth=PUBLIC,
               idempotent=False, rate_limits=[(limits.VERIFY_IP, "ip")])
def reset_password(ctx: Context):
    """Set a new password with a reset token; signs the user out everywhere."""
    return accounts.reset_password(ctx.uow, ctx.body.token, ctx.body.password)


@accounts_api.post("/password", body=ChangePasswordRequest, response=PasswordChange,
                   auth=("user",), idempotent=False,
                   rate_limits=[(limits.PASSWORD_CHANGE, "principal")])
def change_password(ctx: Context):
    """Change the password (needs the current one); other sessions are signed out."""
    return accounts.change_password(ctx.uow, user_id=ctx.principal.id,
                                    session_id=ctx.principal.session_id,
                                    current_password=ctx.body.current_password,
                                    new_password=ctx.body.new_password)

