"""Test wiring: emulators start once per run; each test gets its own ``demo-`` project.

A unique project id per test isolates Firestore and Pub/Sub state without resets.
"""
from __future__ import annotations

import contextlib
import threading
import uuid

import pytest

from infra.local.stack import Ports, Stack
from shared.platform.clock import SystemClock
from shared.platform.config import Settings
from shared.platform import manifest
from shared.platform.deps import Deps, set_deps

from tests.support import firestore_usage

pytest_plugins = ["tests.support.browser"]   # chromium, browser_page (Playwright + Debian Chromium)

EMULATORS = ("firestore", "pubsub", "tasks")
firestore_usage.install()  # what the code asks of Firestore, checked by tests/zz_usage


def pytest_collection_modifyitems(config, items):
    """The fast unit lane (``make test-unit``): every test that needs no emulator."""
    for item in items:
        if "emulators" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def emulators():
    stack = Stack(Ports.free(), project_id="demo-payloom-test", components=EMULATORS)
    stack.start()
    yield stack
    stack.stop()


def make_settings(emulators: Stack, project_id: str, **overrides) -> Settings:
    values = dict(env="test", project_id=project_id, task_auth_secret=emulators.task_secret,
                  tasks_emulator_host=f"127.0.0.1:{emulators.ports.tasks}",
                  functions_base_url=f"http://127.0.0.1:{emulators.ports.gateway}/_fn",
                  idempotency_lock_seconds=60)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def project_id() -> str:
    return f"demo-t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def deps(emulators, project_id):
    """Ports bound to this test's own project on the shared emulators."""
    d = Deps(settings=make_settings(emulators, project_id), clock=SystemClock())
    d.publisher.ensure_topic(d.settings.events_topic)
    queues = list(manifest.load_manifest()["queues"])  # every queue the manifest declares
    for queue in queues:
        d.tasks.ensure_queue(queue)
    set_deps(d)
    yield d
    set_deps(None)
    for queue in queues:  # the emulator keeps every queue's tasks until it is deleted
        with contextlib.suppress(Exception):
            d.tasks.delete_queue(queue)


@pytest.fixture
def service_headers(emulators) -> dict[str, str]:
    return {"Authorization": f"Bearer {emulators.task_secret}"}


@pytest.fixture
def function_client():
    """functions-framework's own test client for a manifest function."""
    import functions_framework

    from shared.platform import manifest

    def make(name: str):
        fn = manifest.function(name)
        app = functions_framework.create_app(target=fn["entry_point"],
                                             source=str(manifest.REPO_ROOT / "functions" / name / "main.py"))
        return app.test_client()
    return make


@pytest.fixture
def inprocess_gateway(emulators, deps):
    """The local gateway served from this process (so it shares ``deps``) on the port that
    ``functions_base_url`` points at: Cloud Tasks dispatches reach it."""
    from werkzeug.serving import make_server

    from infra.local.gateway import Gateway

    server = make_server("127.0.0.1", emulators.ports.gateway, Gateway(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{emulators.ports.gateway}"
    server.shutdown()
    with contextlib.suppress(Exception):
        server.server_close()


