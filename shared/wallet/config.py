"""Wallet settings (pydantic-settings, ``PAYLOOM_`` prefix) and the provider port factory.

Secrets (``PAYLOOM_STRIPE_SECRET_KEY``, ``PAYLOOM_STRIPE_WEBHOOK_SECRET``) come from Secret
Manager in production and from the local stack's generated values in development.
"""
from __future__ import annotations

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.deps import Deps

PROVIDER_KEY = "wallet.topup_provider"
POLICY_KEY = "wallet.policy"


class WalletSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_", extra="ignore")

    stripe_secret_key: str = Field(default="", repr=False)
    stripe_webhook_secret: str = Field(default="", repr=False)
    stripe_api_base: str = "https://api.stripe.com"


@functools.lru_cache(maxsize=1)
def wallet_settings() -> WalletSettings:
    return WalletSettings()


def topup_provider(deps: Deps):
    """The configured TopUpProvider (tests put their own in ``deps.extras``)."""
    def build():
        from shared.adapters.stripe_cards import StripeTopUpProvider
        s = wallet_settings()
        return StripeTopUpProvider(s.stripe_secret_key, s.stripe_webhook_secret,
                                   base_url=s.stripe_api_base)
    return deps.get(PROVIDER_KEY, build)


def policy(deps: Deps):
    from shared.wallet.limits import DEFAULT_POLICY
    return deps.get(POLICY_KEY, lambda: DEFAULT_POLICY)
