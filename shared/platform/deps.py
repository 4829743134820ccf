"""The ports a request needs, built once per process and replaceable in tests.

Services take what they need from here as arguments; only entry points call ``get_deps``.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable

from shared.platform.clock import Clock, SystemClock
from shared.platform.config import Settings, get_settings


@dataclasses.dataclass
class Deps:
    settings: Settings
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    db_factory: Callable[[], Any] | None = None
    publisher_factory: Callable[[], Any] | None = None
    tasks_factory: Callable[[], Any] | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self._cache: dict[str, Any] = {}
        self._lock = threading.RLock()  # factories may resolve other ports

    def _lazy(self, key: str, factory: Callable[[], Any] | None, default: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = (factory or default)()
            return self._cache[key]

    @property
    def db(self):
        from shared.adapters.firestore import firestore_client
        return self._lazy("db", self.db_factory, lambda: firestore_client(self.settings.project_id))

    @property
    def publisher(self):
        from shared.adapters.pubsub import PubSubPublisher
        return self._lazy("publisher", self.publisher_factory,
                          lambda: PubSubPublisher(self.settings.project_id))

    @property
    def tasks(self):
        from shared.adapters.cloud_tasks import CloudTasksQueue, TasksConfig
        s = self.settings
        config = TasksConfig(
            project_id=s.project_id, region=s.region, function_url=s.function_url,
            invoker_email=s.tasks_invoker_email if s.is_production else "",
            local_bearer="" if s.is_production else s.task_auth_secret,
            emulator_host=s.tasks_emulator_host)
        return self._lazy("tasks", self.tasks_factory, lambda: CloudTasksQueue(config))

    def get(self, key: str, factory: Callable[[], Any]) -> Any:
        """A capability-specific port (chain client, KYC provider), created once."""
        if key in self.extras:
            return self.extras[key]
        return self._lazy("x:" + key, None, factory)


_deps: Deps | None = None
_deps_lock = threading.Lock()


def get_deps() -> Deps:
    global _deps
    with _deps_lock:
        if _deps is None:
            _deps = Deps(settings=get_settings())
        return _deps


def set_deps(deps: Deps | None) -> None:
    global _deps
    with _deps_lock:
        _deps = deps
