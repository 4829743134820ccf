"""Notify settings (``PAYLOOM_NOTIFY_``), plus the provider settings it shares with identity.

The provider variables keep their deployed names (``PAYLOOM_IDENTITY_EMAIL_*``, ``PAYLOOM_SMS_*``,
mounted from Secret Manager), so moving the sends out of identity changes no configuration.
"""
from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_NOTIFY_", extra="ignore",
                                      populate_by_name=True)

    queue: str = "notify"
    max_attempts: int = 8
    # Retry n (n >= 1) waits base * factor**(n-1), capped, times a jitter in [0.75, 1.25]; never
    # less than the lease, so a retry never races an attempt that is still sending.
    backoff_base_seconds: float = 10.0
    backoff_factor: float = 3.0
    backoff_cap_seconds: float = 3600.0
    # How long one attempt owns the message (longer than a provider call's timeout).
    lease_seconds: float = 30.0
    # Messages (and the sealed codes and links in them) are deleted by a Firestore TTL policy.
    message_ttl_seconds: int = 3 * 86400

    # --- email provider (SendGrid v3 protocol) -----------------------------------------
    email_api_url: str = Field("", validation_alias=_env(
        "PAYLOOM_NOTIFY_EMAIL_API_URL", "PAYLOOM_IDENTITY_EMAIL_API_URL"))
    email_api_key: str = Field("", repr=False, validation_alias=_env(
        "PAYLOOM_NOTIFY_EMAIL_API_KEY", "PAYLOOM_IDENTITY_EMAIL_API_KEY"))
    email_from: str = Field("no-reply@payloom.dev", validation_alias=_env(
        "PAYLOOM_NOTIFY_EMAIL_FROM", "PAYLOOM_IDENTITY_EMAIL_FROM"))
    email_from_name: str = Field("Payloom", validation_alias=_env(
        "PAYLOOM_NOTIFY_EMAIL_FROM_NAME", "PAYLOOM_IDENTITY_EMAIL_FROM_NAME"))

    # --- SMS provider (Twilio protocol) --------------------------------------------------
    sms_base_url: str = Field("https://api.twilio.com", validation_alias=_env(
        "PAYLOOM_NOTIFY_SMS_BASE_URL", "PAYLOOM_SMS_BASE_URL"))
    sms_account_sid: str = Field("", validation_alias=_env(
        "PAYLOOM_NOTIFY_SMS_ACCOUNT_SID", "PAYLOOM_SMS_ACCOUNT_SID"))
    sms_auth_token: str = Field("", repr=False, validation_alias=_env(
        "PAYLOOM_NOTIFY_SMS_AUTH_TOKEN", "PAYLOOM_SMS_AUTH_TOKEN"))
    sms_from_number: str = Field("", validation_alias=_env(
        "PAYLOOM_NOTIFY_SMS_FROM_NUMBER", "PAYLOOM_SMS_FROM_NUMBER"))
    sms_messaging_service_sid: str = Field("", validation_alias=_env(
        "PAYLOOM_NOTIFY_SMS_MESSAGING_SERVICE_SID", "PAYLOOM_SMS_MESSAGING_SERVICE_SID"))
    provider_timeout_seconds: float = 10.0


def notify_settings(deps) -> NotifySettings:
    return deps.get("notify.settings", NotifySettings)
