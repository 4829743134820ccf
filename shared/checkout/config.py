"""Settings of the hosted payment page (env ``PAYLOOM_CHECKOUT_*``)."""
from __future__ import annotations

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SETTINGS_KEY = "checkout.settings"


class CheckoutSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_CHECKOUT_", extra="ignore")

    # Origins the card processor's hosted steps live on (card entry, 3-D Secure). The page's
    # CSP lets its card form lead there and redirects go nowhere else. Empty: the origin of the
    # processor's API base URL (the local simulator serves both); Stripe: its checkout origin.
    card_origins: tuple[str, ...] = ()
    # Live updates: the page polls ``/status`` from 1 s, x1.5 while nothing changes, up to this.
    poll_max_ms: int = Field(4000, ge=1000, le=60_000)
    # The wallet payer's access token lives in an HttpOnly cookie at most this long.
    wallet_cookie_seconds: int = Field(600, ge=60, le=3600)
    # After success the page sends the payer to the merchant's success_url after this delay.
    redirect_delay_s: int = Field(3, ge=0, le=60)


@functools.lru_cache(maxsize=1)
def _env() -> CheckoutSettings:
    return CheckoutSettings()


def checkout_settings(deps) -> CheckoutSettings:
    """The settings (tests put their own in ``deps.extras[SETTINGS_KEY]``)."""
    return deps.get(SETTINGS_KEY, _env)
