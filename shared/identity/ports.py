"""Ports the identity capability talks to the outside world through."""
from __future__ import annotations

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    category: str = "transactional"          # e.g. "verify_email", "password_reset"
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)  # never secrets


class EmailDeliveryError(RuntimeError):
    """The provider refused or could not be reached; the caller decides whether to retry."""


class EmailSender(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Hand the message to the provider; returns the provider's message id."""
        ...
