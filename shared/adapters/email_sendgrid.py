"""Transactional email over the SendGrid v3 ``mail/send`` shape, and the local fallbacks.

``HttpEmailSender`` posts ``{base}/v3/mail/send`` with ``Authorization: Bearer <key>`` and reads
202 + ``X-Message-Id``; most transactional providers accept that shape or one mapping away.
Locally ``infra/local/email_sim.py`` speaks the same protocol, so this is the code under test.
The adapter takes what it needs in its constructor; it reads no settings.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Protocol

import requests

from shared.platform.ids import new_id
from shared.platform.logs import get_logger, log

_log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    category: str = "transactional"          # e.g. "verify_email", "password_reset"
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)  # never secrets


class EmailDeliveryError(RuntimeError):
    """The provider refused or could not be reached. ``retryable`` is False only when the
    provider said the message itself is bad (a 4xx other than 408/429): trying again won't help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class EmailSender(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Hand the message to the provider; returns the provider's message id."""
        ...


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
            permanent = 400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 408, 429)
            raise EmailDeliveryError(f"email provider answered {resp.status_code}",
                                     status=resp.status_code, retryable=not permanent)
        return resp.headers.get("X-Message-Id") or new_id("msg")


class MemoryEmailSender:
    """Local/test fallback when no email API is configured: keeps messages in memory."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> str:
        with self._lock:
            self.messages.append(message)
        log(_log, logging.INFO, "email kept in memory (no email API configured)",
            to=message.to, subject=message.subject, category=message.category)
        return new_id("msg")


class UnconfiguredEmailSender:
    def send(self, message: EmailMessage) -> str:
        raise EmailDeliveryError("PAYLOOM_IDENTITY_EMAIL_API_URL is not configured")
