"""Helpers for end-to-end tests that drive a running stack over HTTP, as an outside client does."""
from __future__ import annotations

import uuid

import pytest
import requests

from infra.local.stack import Ports, Stack

PASSWORD = "correct horse battery"


def running_stack(project_id: str, components: tuple[str, ...]):
    """A module-scoped fixture starting ``components`` of the local stack on free ports."""
    @pytest.fixture(scope="module")
    def stack():
        for attempt in range(3):
            s = Stack(Ports.free(), project_id=project_id, components=components)
            try:
                s.start()
                break
            except RuntimeError as exc:
                # a free port picked here can be taken by another process before our child
                # binds it (other test runs share the machine): pick new ports and start again
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise
        yield s
        s.stop()
    return stack


def signed_in_user(base: str, prefix: str = "u") -> tuple[str, dict[str, str]]:
    """Register a fresh user through the public API and sign in: (username, auth headers)."""
    name = prefix + uuid.uuid4().hex[:10]
    r = requests.post(f"{base}/v1/auth/register", json={"email": f"{name}@example.com",
                                                        "username": name, "password": PASSWORD},
                      timeout=30)
    assert r.status_code == 201, r.text
    r = requests.post(f"{base}/v1/auth/login", json={"username": name, "password": PASSWORD},
                      timeout=30)
    assert r.status_code == 200, r.text
    return name, {"Authorization": f"Bearer {r.json()['access_token']}"}
