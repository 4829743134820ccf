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

import logging
import threading
import urllib.parse

import requests

from shared.identity.config import IdentitySettings, identity_settings
from shared.identity.ports import EmailDeliveryError, EmailMessage, EmailSender
from shared.platform.ids import new_id
from shared.platform.logs import get_logger, log

_log = get_logger(__name__)


class HttpEmailSender:
    def __init__(self, base_url: str, api_key: str, *, from_email: str, from_name: str = "",
                 timeout: float = 10.0, session: requests.Session | None = None):
        self.url = base_url.rstrip("/") + "/v3/mail/send"
        self.api_key = api_key
        self.sender = {"email": from_email, **({"name": from_name} if from_name else {})}
        self.timeout = timeout
        self.session = session or requests.Session()

    def payload(self, message: EmailMessage) -> dict:
        content = [{"type": "text/plain", "value": message.text}]
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        return {"personalizations": [{"to": [{"email": message.to}]}], "from": self.sender,
                "subject": message.subject, "content": content,
                "categories": [message.category],
                "custom_args": {k: str(v) for k, v in message.metadata.items()}}

    def send(self, message: EmailMessage) -> str:
        try:
            resp = self.session.post(self.url, json=self.payload(message), timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {self.api_key}"})
        except requests.RequestException as exc:
            raise EmailDeliveryError(f"email provider unreachable: {type(exc).__name__}") from exc
        if resp.status_code not in (200, 202):
            raise EmailDeliveryError(f"email provider answered {resp.status_code}")
        return resp.headers.get("X-Message-Id") or new_id("msg")


class MemoryEmailSender:
    """Local/test fallback when no email API is configured: keeps messages in memory."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> str:
        with self._lock:
            self.messages.append(message)
        log(_log, logging.INFO, "email kept in memory (no PAYLOOM_IDENTITY_EMAIL_API_URL)",
            to=message.to, subject=message.subject, category=message.category)
        return new_id("msg")


class UnconfiguredEmailSender:
    def send(self, message: EmailMessage) -> str:
        raise EmailDeliveryError("PAYLOOM_IDENTITY_EMAIL_API_URL is not configured")


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
