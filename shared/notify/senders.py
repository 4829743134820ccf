"""The providers a message leaves through, as ports on ``deps`` (tests inject their own).

``send(deps, channel, content)`` returns the provider's message id or raises ``SendFailed``
saying whether another try can help. Errors carry status codes, never content.
"""
from __future__ import annotations

from typing import Any

from shared.notify.settings import notify_settings

EMAIL_KEY, SMS_KEY, PUSH_KEY = "notify.email", "notify.sms", "notify.push"
# Ports that local wiring and tests already inject for identity; used when notify's own are not.
_SHARED_KEYS = {EMAIL_KEY: "identity.email", SMS_KEY: "identity.sms"}


class SendFailed(Exception):
    def __init__(self, reason: str, *, retryable: bool):
        super().__init__(reason)
        self.reason = reason[:300]
        self.retryable = retryable


def _port(deps, key: str, factory):
    if key in deps.extras:
        return deps.extras[key]
    shared_key = _SHARED_KEYS.get(key)
    if shared_key and shared_key in deps.extras:
        return deps.extras[shared_key]
    return deps.get(key, factory)


def email_sender(deps):
    from shared.adapters.email_sendgrid import (HttpEmailSender, MemoryEmailSender,
                                                UnconfiguredEmailSender)
    s = notify_settings(deps)

    def build():
        if s.email_api_url:
            return HttpEmailSender(s.email_api_url, s.email_api_key, from_email=s.email_from,
                                   from_name=s.email_from_name, timeout=s.provider_timeout_seconds)
        return UnconfiguredEmailSender() if deps.settings.is_production else MemoryEmailSender()
    return _port(deps, EMAIL_KEY, build)


def sms_sender(deps):
    from shared.adapters.sms_twilio import TwilioSmsSender
    s = notify_settings(deps)
    return _port(deps, SMS_KEY, lambda: TwilioSmsSender(
        base_url=s.sms_base_url, account_sid=s.sms_account_sid, auth_token=s.sms_auth_token,
        from_number=s.sms_from_number, messaging_service_sid=s.sms_messaging_service_sid,
        timeout=s.provider_timeout_seconds))


def push_sender(deps):
    from shared.adapters.fcm import FcmPushSender
    return _port(deps, PUSH_KEY, FcmPushSender)


def send(deps, channel: str, content: dict[str, Any], *, kind: str = "transactional") -> str:
    if channel == "email":
        from shared.adapters.email_sendgrid import EmailDeliveryError, EmailMessage
        try:
            return email_sender(deps).send(EmailMessage(
                to=content["to"], subject=content["subject"], text=content["text"],
                html=content.get("html"), category=kind))
        except EmailDeliveryError as exc:
            raise SendFailed(f"email: {exc}", retryable=getattr(exc, "retryable", True)) from None
    if channel == "sms":
        from shared.adapters.sms_twilio import SmsError
        try:
            return sms_sender(deps).send(content["to"], content["text"]).provider_id
        except SmsError as exc:
            raise SendFailed(f"sms: {exc}", retryable=exc.retryable) from None
        except ValueError as exc:  # unconfigured sender
            raise SendFailed(f"sms: {exc}", retryable=True) from None
    if channel == "push":
        from shared.adapters.fcm import PushUnavailable, PushError
        try:
            return push_sender(deps).send(content["token"], content["data"])
        except PushUnavailable as exc:
            raise SendFailed(f"push: {type(exc).__name__}", retryable=True) from None
        except PushError as exc:  # token gone or message refused: no retry helps
            raise SendFailed(f"push: {type(exc).__name__}", retryable=False) from None
    raise SendFailed(f"unknown channel {channel!r}", retryable=False)
