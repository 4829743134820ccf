"""Relay test wiring (supply side; dispatch tests add their fixtures in their own files).

Real pieces only: the Firestore emulator behind ``deps``, the loopback SMS provider (the SIM's
texted codes) and FCM endpoint (pushes to phones). OTP per-IP limits are lifted (tests onboard
many SIMs from one address) and a code may be re-sent after 1 s; everything else runs with production settings.
"""
from __future__ import annotations

import pytest

from infra.local import fcm_sim, sms_sim
from shared.identity.factors.otp import OtpSettings
from shared.identity.ports_sms import TwilioSmsSender
from shared.relay.supply_settings import SupplySettings
from tests.relay.supply_kit import SupplyKit
from tests.support.identity import fast_identity_settings


@pytest.fixture(scope="session")
def sms_server():
    server, _ = sms_sim.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fcm_server():
    server, _ = fcm_sim.start()
    yield server
    server.stop()


@pytest.fixture
def supply_settings(deps) -> SupplySettings:
    """The supply settings injected for this test (replace with ``configure_supply``)."""
    settings = SupplySettings()
    deps.extras["relay.supply_settings"] = settings
    return settings


@pytest.fixture
def configure_supply(deps, supply_settings):
    def configure(**overrides) -> SupplySettings:
        settings = SupplySettings(**{**supply_settings.model_dump(), **overrides})
        deps.extras["relay.supply_settings"] = settings
        return settings
    return configure


@pytest.fixture
def relay_wiring(deps, sms_server, supply_settings):
    deps.extras["identity.settings"] = fast_identity_settings()
    deps.extras["identity.sms"] = TwilioSmsSender(
        base_url=sms_server.base_url, account_sid=sms_server.account_sid,
        auth_token=sms_server.auth_token, from_number="Payloom")
    deps.extras["identity.otp_settings"] = OtpSettings(ip_verifications_per_window=10_000,
                                                       ip_starts_per_hour=10_000,
                                                       resend_interval_seconds=1)
    return deps


@pytest.fixture
def relay_client(function_client, relay_wiring):
    return function_client("relay")


@pytest.fixture
def sweeper_client(function_client, relay_wiring):
    return function_client("relay_sweeper")


@pytest.fixture
def kit(deps, relay_client, sms_server) -> SupplyKit:
    return SupplyKit(deps, relay_client, sms_server)
