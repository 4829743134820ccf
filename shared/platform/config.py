"""Settings for every function, read once from the environment.

Logic never reads ``os.environ``; it receives a ``Settings`` (or calls ``get_settings``), so tests
can build one explicitly and production values come from the function's env and secrets.
"""
from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["local", "test", "staging", "prod"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_", extra="ignore")

    env: Environment = "local"
    project_id: str = "demo-payloom"
    region: str = "europe-west1"
    function_name: str = "local"
    # Where functions reach each other: Cloud Tasks targets and Scheduler targets.
    # Locally the gateway serves every function under /_fn/<name>.
    functions_base_url: str = "http://127.0.0.1:8000/_fn"
    public_base_url: str = "http://127.0.0.1:8000"
    # Production: the invoker service account whose OIDC token Cloud Tasks attaches.
    tasks_invoker_email: str = ""
    # Local/test only: the shared secret standing in for OIDC between our own services.
    task_auth_secret: str = Field(default="", repr=False)
    events_topic: str = "events"
    tasks_emulator_host: str = ""
    max_body_bytes: int = 1_048_576
    # X-Forwarded-For entries appended by our own proxies, counted from the right; the client is
    # the first of them (1 = the Google front end's entry). See router.client_ip.
    forwarded_trusted_hops: int = 1
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_lock_seconds: int = 60
    outbox_sweep_min_age_seconds: int = 10

    @property
    def is_production(self) -> bool:
        return self.env in ("staging", "prod")

    @property
    def strict_checks(self) -> bool:
        """In tests: every response is checked against its declared model and every timer
        against the manifest's task functions and queues."""
        return self.env == "test"

    def function_url(self, name: str) -> str:
        """Deployed names use hyphens (Cloud Run allows no underscores); the gateway takes both."""
        return f"{self.functions_base_url.rstrip('/')}/{name.replace('_', '-')}"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
