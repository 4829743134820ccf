"""Settings of the web pages (env ``PAYLOOM_WEB_*``)."""
from __future__ import annotations

import functools
import hashlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.config import get_settings


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_WEB_", extra="ignore")

    # Keys the CSRF tokens (HMAC of the browser's CSRF cookie). Secret Manager in production
    # (``payloom-web-csrf-secret``); locally derived from the project id (see ``csrf_key``).
    csrf_secret: str = Field("", repr=False)
    # Cookies carry Secure and the __Host- prefix in production; the local stack is plain http.
    secure_cookies: bool | None = None
    languages: tuple[str, ...] = ("en", "km")

    def csrf_key(self, settings=None) -> bytes:
        settings = settings or get_settings()
        if self.csrf_secret:
            return self.csrf_secret.encode()
        if settings.is_production:
            raise RuntimeError("PAYLOOM_WEB_CSRF_SECRET is required in production")
        return hashlib.sha256(f"payloom-local-csrf:{settings.project_id}".encode()).digest()

    def cookie_secure(self, settings=None) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return (settings or get_settings()).is_production


@functools.lru_cache(maxsize=1)
def get_web_settings() -> WebSettings:
    return WebSettings()
