"""End to end against the running local stack: gunicorn gateway, Pub/Sub push, Cloud Tasks."""
import time

import pytest
import requests

from infra.local.stack import Stack
from tests.support.e2e import running_stack

pytestmark = pytest.mark.e2e


stack = running_stack("demo-payloom-e2e", Stack.ALL)


@pytest.fixture(scope="module")
def base(stack):
    return f"http://127.0.0.1:{stack.ports.gateway}"


def test_healthz_reports_every_function_and_service(stack, base):
    r = requests.get(f"{base}/healthz", timeout=10)
    body = r.json()
    assert r.status_code == 200, body
    from shared.platform.manifest import functions
    assert set(body["functions"]) == {f["name"] for f in functions()}
    assert all(f["ok"] for f in body["functions"].values()), body["functions"]
    from infra.local.stack import SIMULATORS
    for name in ("firestore", "pubsub", "cloud_tasks", "anvil", *SIMULATORS):
        assert body["services"][name]["ok"], name


def test_probe_travels_outbox_pubsub_push_and_cloud_task(stack, base):
    headers = {"Authorization": f"Bearer {stack.task_secret}", "Idempotency-Key": "smoke-1"}
    created = requests.post(f"{base}/v1/platform/probes", json={"delay_seconds": 1, "note": "smoke"},
                            headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    probe = created.json()
    replay = requests.post(f"{base}/v1/platform/probes", json={"delay_seconds": 1, "note": "smoke"},
                           headers=headers, timeout=10)
    assert replay.content == created.content
    deadline = time.time() + 30
    while time.time() < deadline:
        got = requests.get(f"{base}/v1/platform/probes/{probe['id']}", headers=headers, timeout=10).json()
        if got["status"] == "completed":
            break
        time.sleep(0.3)
    assert got["status"] == "completed", got
    events = requests.get(f"{base}/v1/events?limit=50", headers=headers, timeout=10).json()
    # the platform tenant also holds other capabilities' internal events (ids only, no object)
    types = [e["type"] for e in events["data"]
             if (e["data"].get("object") or {}).get("id") == probe["id"]]
    assert types == ["probe.completed", "probe.created"]


def test_gateway_errors_use_the_envelope(base):
    r = requests.get(f"{base}/v1/nowhere", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_route"
    r = requests.post(f"{base}/v1/platform/probes", data="{", headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code in (400, 401) and "error" in r.json()


def test_openapi_and_docs_are_served(base):
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert spec["openapi"] == "3.1.0"
    assert "/v1/platform/probes" in spec["paths"] and "post" in spec["paths"]["/v1/platform/probes"]
    assert "/v1/events" in spec["paths"]
    docs = requests.get(f"{base}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    served = requests.get(f"{base}/docs/openapi.json", timeout=30)
    assert served.status_code == 200 and "post" in served.json()["paths"]["/v1/platform/probes"]
