"""The SMS port: how one-time codes leave the platform.

``SmsSender`` is the protocol services use. ``TwilioSmsSender`` speaks Twilio's Programmable
Messaging REST API (``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form encoded, HTTP
basic auth with the account SID and auth token). In local runs and tests ``base_url`` points at
the loopback simulator ``infra/local/sms_sim.py``, which speaks the same protocol.

Message bodies carry codes: nothing here logs a body, and errors never include it.
"""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "identity.sms_settings"
SENDER_KEY = "identity.sms"


class SmsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_SMS_", extra="ignore")

    provider: str = "twilio"
    base_url: str = "https://api.twilio.com"
    account_sid: str = ""
    auth_token: str = Field("", repr=False)
    # Either a sender number/alphanumeric sender id, or a Messaging Service SID (MG...).
    from_number: str = ""
    messaging_service_sid: str = ""
    timeout_seconds: float = 10.0
    # Shown in the text: "<brand> code: 123456".
    brand: str = "Payloom"


# The Twilio-protocol client lives in shared/adapters now (issue 7); re-exported here so identity
# keeps working.
from shared.adapters.sms_twilio import (SentMessage, SmsError, SmsSender,  # noqa: E402,F401
                                        TwilioSmsSender)


def sms_settings(deps) -> SmsSettings:
    return deps.get(SETTINGS_KEY, SmsSettings)


def sms_sender(deps) -> SmsSender:
    """The process's sender; tests and local wiring replace it through ``deps.extras``."""
    return deps.get(SENDER_KEY, lambda: TwilioSmsSender.from_settings(sms_settings(deps)))
