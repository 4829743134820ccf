"""SMS through Twilio's Programmable Messaging REST API.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form encoded, HTTP basic auth with the
account SID and auth token. Locally ``base_url`` points at ``infra/local/sms_sim.py``, which
speaks the same protocol. The adapter takes what it needs in its constructor; it reads no
settings. Message bodies carry codes: nothing here logs a body, and errors never include it.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import requests

from shared.platform.logs import get_logger

_log = get_logger(__name__)


class SmsError(Exception):
    """The provider refused or could not be reached; ``retryable`` says whether to try later."""

    def __init__(self, message: str, *, provider_code: str | int | None = None,
                 status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.provider_code = provider_code
        self.status = status
        self.retryable = retryable


@dataclasses.dataclass(frozen=True)
class SentMessage:
    provider_id: str
    status: str


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> SentMessage: ...


class TwilioSmsSender:
    """Twilio's Messages resource. ``to`` is E.164."""

    API_VERSION = "2010-04-01"

    def __init__(self, *, base_url: str, account_sid: str, auth_token: str, from_number: str = "",
                 messaging_service_sid: str = "", timeout: float = 10.0,
                 session: requests.Session | None = None):
        if not account_sid or not auth_token:
            raise ValueError("Twilio needs an account SID and an auth token")
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs a From number or a Messaging Service SID")
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.timeout = timeout
        self._session = session or requests.Session()

    @classmethod
    def from_settings(cls, s) -> "TwilioSmsSender":
        """From any object with the ``SmsSettings`` field names (the caller owns settings)."""
        return cls(base_url=s.base_url, account_sid=s.account_sid, auth_token=s.auth_token,
                   from_number=s.from_number, messaging_service_sid=s.messaging_service_sid,
                   timeout=s.timeout_seconds)

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/{self.API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def send(self, to: str, body: str) -> SentMessage:
        form = {"To": to, "Body": body}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number
        try:
            resp = self._session.post(self.messages_url, data=form, auth=self._auth,
                                      timeout=self.timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise SmsError(f"SMS provider unreachable: {type(exc).__name__}", retryable=True) from None
        try:
            payload = resp.json()
        except ValueError:
            payload = {}
        if resp.status_code >= 400:
            # Twilio's error body: {"code": 21211, "message": "...", "more_info": "...", "status": 400}
            code = payload.get("code") if isinstance(payload, dict) else None
            _log.warning("sms send refused: status=%s provider_code=%s", resp.status_code, code)
            raise SmsError(f"SMS provider refused the message (status {resp.status_code}, code {code})",
                           provider_code=code, status=resp.status_code,
                           retryable=resp.status_code == 429 or resp.status_code >= 500)
        if not isinstance(payload, dict) or not payload.get("sid"):
            raise SmsError("SMS provider answered without a message sid", retryable=True)
        return SentMessage(provider_id=payload["sid"], status=str(payload.get("status", "queued")))
