"""Email delivery: the production HTTP adapter, the local fallback and the message templates.

``HttpEmailSender`` speaks the SendGrid v3 shape (``POST {base}/v3/mail/send`` with
``Authorization: Bearer <key>``, 202 + ``X-Message-Id``); most transactional providers accept
it or something one mapping away. Locally ``infra/local/email_sim.py`` speaks the same protocol
and keeps an inbox, so this adapter is the code under test.

``email_sender(deps)``: injected (``deps.extras["identity.email"]``), else the HTTP adapter when
``PAYLOOM_IDENTITY_EMAIL_API_URL`` is set, else (local/test only) ``MemoryEmailSender``, which
logs that a message was suppressed. Production without a URL fails on send (never silently).
"""
from __future__ import annotations

import urllib.parse

from shared.identity.config import IdentitySettings, identity_settings
from shared.identity.ports import EmailDeliveryError, EmailMessage, EmailSender  # noqa: F401


# The SendGrid-protocol client and the local fallbacks live in shared/adapters now (issue 7);
# re-exported here so identity keeps working.
from shared.adapters.email_sendgrid import (HttpEmailSender, MemoryEmailSender,  # noqa: E402,F401
                                            UnconfiguredEmailSender)


def build_email_sender(settings: IdentitySettings, *, production: bool) -> EmailSender:
    if settings.email_api_url:
        return HttpEmailSender(settings.email_api_url, settings.email_api_key,
                               from_email=settings.email_from, from_name=settings.email_from_name)
    return UnconfiguredEmailSender() if production else MemoryEmailSender()


def email_sender(deps) -> EmailSender:
    settings = identity_settings(deps)  # outside Deps' (non-reentrant) factory lock
    return deps.get("identity.email", lambda: build_email_sender(
        settings, production=deps.settings.is_production))


# --- templates ----------------------------------------------------------------------------

def _link(settings: IdentitySettings, path: str, token: str) -> str:
    return f"{settings.app_base_url.rstrip('/')}/{path}?" + urllib.parse.urlencode({"token": token})


def verification_message(settings: IdentitySettings, to: str, token: str, ttl_seconds: int) -> EmailMessage:
    link = _link(settings, "verify-email", token)
    hours = max(1, ttl_seconds // 3600)
    return EmailMessage(
        to=to, subject="Confirm your email for Payloom", category="verify_email",
        text=(f"Confirm your email address by opening this link within {hours} h:\n\n{link}\n\n"
              f"Or enter this code in the app: {token}\n\n"
              "If you did not create a Payloom account, ignore this email."),
        html=(f"<p>Confirm your email address by opening this link within {hours} h:</p>"
              f"<p><a href=\"{link}\">Confirm my email</a></p>"
              "<p>If you did not create a Payloom account, ignore this email.</p>"))


def reset_message(settings: IdentitySettings, to: str, token: str, ttl_seconds: int) -> EmailMessage:
    link = _link(settings, "reset-password", token)
    minutes = max(1, ttl_seconds // 60)
    return EmailMessage(
        to=to, subject="Reset your Payloom password", category="password_reset",
        text=(f"Someone asked to reset the password of your Payloom account. The link works once "
              f"and for {minutes} minutes:\n\n{link}\n\nOr enter this code in the app: {token}\n\n"
              "Resetting signs you out everywhere. If this was not you, ignore this email."),
        html=(f"<p>Someone asked to reset the password of your Payloom account. The link works "
              f"once and for {minutes} minutes:</p><p><a href=\"{link}\">Reset my password</a></p>"
              "<p>Resetting signs you out everywhere. If this was not you, ignore this email.</p>"))


def lockout_message(settings: IdentitySettings, to: str, *, hard: bool) -> EmailMessage:
    reset = f"{settings.app_base_url.rstrip('/')}/forgot-password"
    what = ("Password sign-in to your Payloom account is now locked until the password is reset"
            if hard else "Password sign-in to your Payloom account is paused for a while")
    return EmailMessage(
        to=to, subject="Too many failed sign-in attempts on your Payloom account",
        category="login_locked",
        text=(f"{what}, after many wrong passwords in a row.\n\nIf this was you, wait or reset "
              f"your password: {reset}\nIf it was not, someone may be guessing your password: "
              "reset it and turn on two-factor authentication. Other sign-in methods still work."))


def queue_email(uow, message: EmailMessage, *, user_id: str | None = None) -> None:
    """Send ``message`` after ``uow`` commits, with retries (``shared.notify``'s queue).

    Never inside the request: the message (sealed) is written in the same commit as the state
    change, and notify's consumer delivers it (ADR 0005).
    """
    from shared.notify import queue_email as notify_queue_email
    notify_queue_email(uow, to=message.to, subject=message.subject, text=message.text,
                       html=message.html, kind=message.category, user_id=user_id)
