"""infra/local/webhook_sim.py: the loopback webhook receiver, over real HTTP."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from infra.local import webhook_sim
from infra.local.simserver import HOST
from infra.local.stack import SIMULATORS, Ports, Stack
from infra.local.webhook_sim import ConfigError

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"z" * 32).decode()


@pytest.fixture
def sim():
    server, url = webhook_sim.start()
    yield server, url
    server.stop()


def _post(url: str, body: bytes = b'{"x":1}', headers: dict[str, str] | None = None,
          timeout: float = 5) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json", **(headers or {})},
                         timeout=timeout, allow_redirects=False)


def _signed(secret: str, msg_id: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by hand (the sim verifies with the PyPI library)."""
    ts = int(time.time()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig.decode()}"}


def test_default_ok_and_request_recorded(sim):
    server, url = sim
    before = time.time()
    r = _post(f"{url}/hooks/a?src=test", b'{"id":"evt_1"}', {"Webhook-Id": "evt_1", "X-Two": "b"})
    assert r.status_code == 200 and r.json() == {"received": True}
    [got] = server.inbox("/hooks/a")
    assert got["path"] == "/hooks/a" and got["query"] == "src=test" and got["method"] == "POST"
    assert got["body"] == '{"id":"evt_1"}'
    assert got["headers"]["webhook-id"] == "evt_1" and got["headers"]["x-two"] == "b"
    assert all(k == k.lower() for k in got["headers"])
    assert before <= got["received_at"] <= got["answered_at"] <= time.time()
    assert got["status"] == 200 and got["mode"] == "ok" and got["verified"] is None
    assert server.inbox("/hooks/b") == [] and server.inbox("hooks/a") == [got]  # no leading / ok


def test_fail_n_times_then_ok_with_retry_after(sim):
    server, url = sim
    server.configure("/hooks/a", mode="fail", status=503, fail_times=2, retry_after="7")
    answers = [_post(f"{url}/hooks/a") for _ in range(4)]
    assert [r.status_code for r in answers] == [503, 503, 200, 200]
    assert answers[0].headers["Retry-After"] == "7" and "Retry-After" not in answers[2].headers
    assert [e["status"] for e in server.inbox("/hooks/a")] == [503, 503, 200, 200]
    assert [e["mode"] for e in server.inbox("/hooks/a")] == ["fail", "fail", "ok", "ok"]
    # other paths are unaffected
    assert _post(f"{url}/hooks/b").status_code == 200


def test_fail_forever_default_status_and_reconfigure_restarts_count(sim):
    server, url = sim
    server.configure("/h", mode="fail")
    assert [_post(f"{url}/h").status_code for _ in range(3)] == [500, 500, 500]
    server.configure("/h", mode="fail", status=404, fail_times=1)
    assert [_post(f"{url}/h").status_code for _ in range(2)] == [404, 200]


def test_gone_throttle_redirect(sim):
    server, url = sim
    server.configure("/gone", mode="gone")
    server.configure("/slow-down", mode="throttle", retry_after="Wed, 21 Oct 2035 07:28:00 GMT")
    server.configure("/moved", mode="redirect")
    server.configure("/moved-307", mode="redirect", status=307, location="https://example.test/x")
    assert _post(f"{url}/gone").status_code == 410
    r = _post(f"{url}/slow-down")
    assert r.status_code == 429 and r.headers["Retry-After"] == "Wed, 21 Oct 2035 07:28:00 GMT"
    server.configure("/slow-default", mode="throttle")
    assert _post(f"{url}/slow-default").headers["Retry-After"] == "1"
    r = _post(f"{url}/moved")
    assert r.status_code == 302 and r.headers["Location"] == f"{url}/redirect-target"
    r = _post(f"{url}/moved-307")
    assert r.status_code == 307 and r.headers["Location"] == "https://example.test/x"
    # a client that follows the redirect shows up at the target (307 keeps the POST)
    server.configure("/moved", mode="redirect", status=307)
    assert requests.post(f"{url}/moved", data=b"{}", timeout=5).status_code == 200
    assert len(server.inbox("/redirect-target")) == 1


def test_hang_then_answer_and_client_timeout(sim):
    server, url = sim
    server.configure("/hang", mode="hang", hang_seconds=0.6)
    t0 = time.monotonic()
    assert _post(f"{url}/hang").status_code == 200
    assert time.monotonic() - t0 >= 0.55
    server.configure("/hang", mode="hang", hang_seconds=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _post(f"{url}/hang", timeout=0.3)
    got = server.inbox("/hang")
    assert len(got) == 2 and got[1]["mode"] == "hang"  # recorded on arrival
    # meanwhile other receivers answer at once (the server is threaded)
    t0 = time.monotonic()
    assert _post(f"{url}/fast").status_code == 200
    assert time.monotonic() - t0 < 0.5
    # a reset wakes the hanging handler at once (not after 30 s): the sender is gone by then
    server.reset_config()
    deadline = time.monotonic() + 3
    while not (got[1]["sender_gone"] or got[1]["answered_at"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got[1]["sender_gone"] or got[1]["answered_at"]
    assert got[0]["sender_gone"] is False and got[0]["answered_at"] is not None
    assert _post(f"{url}/hang").status_code == 200


def test_hang_only_fail_times(sim):
    server, url = sim
    server.configure("/h", mode="hang", hang_seconds=0.3, fail_times=1)
    t0 = time.monotonic()
    _post(f"{url}/h")
    first = time.monotonic() - t0
    t0 = time.monotonic()
    _post(f"{url}/h")
    assert first >= 0.25 and time.monotonic() - t0 < 0.25


def test_custom_answer_body(sim):
    server, url = sim
    server.configure("/b", mode="fail", status=400, body="x" * 5000)
    r = _post(f"{url}/b")
    assert r.status_code == 400 and r.text == "x" * 5000


def test_signature_verified_with_standardwebhooks(sim):
    server, url = sim
    server.configure("/signed", secret=SECRET)
    body = b'{"id":"evt_9","object":"event"}'
    assert _post(f"{url}/signed", body, _signed(SECRET, "evt_9", body)).status_code == 200
    assert _post(f"{url}/signed", body + b" ", _signed(SECRET, "evt_9", body)).status_code == 200
    assert _post(f"{url}/signed", body, _signed(OTHER_SECRET, "evt_9", body)).status_code == 200
    old = _signed(SECRET, "evt_9", body, ts=int(time.time()) - 3600)
    assert _post(f"{url}/signed", body, old).status_code == 200
    assert _post(f"{url}/signed", body).status_code == 200  # no headers at all
    bad = {**_signed(SECRET, "evt_9", body), "webhook-signature": "garbage"}
    assert _post(f"{url}/signed", body, bad).status_code == 200
    got = server.inbox("/signed")
    assert [e["verified"] for e in got] == [True, False, False, False, False, False]
    assert got[0]["verify_error"] is None
    assert "signature" in got[1]["verify_error"].lower()
    assert "old" in got[3]["verify_error"].lower()
    assert "headers" in got[4]["verify_error"].lower()
    # both signatures of a rotation: either secret verifies
    server.configure("/signed", secret=[OTHER_SECRET])
    two = _signed(SECRET, "evt_9", body)
    two["webhook-signature"] += " " + _signed(OTHER_SECRET, "evt_9", body)["webhook-signature"]
    _post(f"{url}/signed", body, two)
    assert server.inbox("/signed")[-1]["verified"] is True


def test_enforce_signature_answers_401(sim):
    server, url = sim
    server.configure("/strict", secret=SECRET, enforce_signature=True)
    body = b'{"a":1}'
    assert _post(f"{url}/strict", body, _signed(SECRET, "m1", body)).status_code == 200
    assert _post(f"{url}/strict", body, _signed(OTHER_SECRET, "m1", body)).status_code == 401
    assert [e["status"] for e in server.inbox("/strict")] == [200, 401]


def test_http_config_inbox_and_reset_routes(sim):
    _, url = sim
    r = requests.put(f"{url}/_config/hooks/a", json={"mode": "fail", "status": 502, "fail_times": 1,
                                                      "secret": SECRET}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/hooks/a" and r.json()["has_secret"] is True
    assert SECRET not in r.text
    shown = requests.get(f"{url}/_config", timeout=5).json()
    assert shown["/hooks/a"]["mode"] == "fail" and SECRET not in json.dumps(shown)
    assert requests.get(f"{url}/_config/hooks/a", timeout=5).json()["status"] == 502
    assert requests.get(f"{url}/_config/other", timeout=5).json()["mode"] == "ok"
    assert [_post(f"{url}/hooks/a").status_code for _ in range(2)] == [502, 200]
    _post(f"{url}/hooks/b")
    listed = requests.get(f"{url}/_inbox", params={"path": "/hooks/a"}, timeout=5).json()
    assert [e["status"] for e in listed] == [502, 200]
    assert len(requests.get(f"{url}/_inbox", timeout=5).json()) == 3
    assert requests.delete(f"{url}/_inbox", timeout=5).status_code == 200
    assert requests.get(f"{url}/_inbox", timeout=5).json() == []
    requests.put(f"{url}/_config/hooks/a", json={"mode": "gone"}, timeout=5)
    requests.put(f"{url}/_config/hooks/b", json={"mode": "gone"}, timeout=5)
    assert requests.delete(f"{url}/_config/hooks/b", timeout=5).status_code == 200
    assert _post(f"{url}/hooks/a").status_code == 410 and _post(f"{url}/hooks/b").status_code == 200
    assert requests.delete(f"{url}/_config", timeout=5).status_code == 200
    assert _post(f"{url}/hooks/a").status_code == 200
    assert requests.get(f"{url}/_config", timeout=5).json() == {}
    assert requests.get(f"{url}/_health", timeout=5).json() == {"status": "ok"}


@pytest.mark.parametrize("cfg", [
    {"mode": "explode"}, {"status": 99}, {"status": "500"}, {"status": True}, {"fail_times": -1},
    {"fail_times": 1.5}, {"hang_seconds": -1}, {"hang_seconds": 601}, {"hang_seconds": "1"},
    {"mode": "redirect", "status": 200}, {"secret": ""}, {"secret": [1]}, {"secret": []},
    {"enforce_signature": True}, {"enforce_signature": "yes", "secret": SECRET}, {"body": 3},
    {"location": ["x"]}, {"surprise": 1}, {"retry_after": {"s": 1}}, {"path": "/x"},
])
def test_bad_config_is_400_and_changes_nothing(sim, cfg):
    server, url = sim
    r = requests.put(f"{url}/_config/hooks/a", json=cfg, timeout=5)
    assert r.status_code == 400 and r.json()["error"], r.text
    with pytest.raises(ConfigError):
        server.configure("/hooks/a", **cfg)
    assert server.config() == {}
    assert _post(f"{url}/hooks/a").status_code == 200


@pytest.mark.parametrize("raw", [b"[1]", b"not json", b'"ok"'])
def test_config_body_must_be_a_json_object(sim, raw):
    _, url = sim
    r = requests.put(f"{url}/_config/h", data=raw, timeout=5)
    assert r.status_code == 400


def test_reserved_and_odd_paths(sim):
    server, url = sim
    assert requests.put(f"{url}/_config", json={}, timeout=5).status_code == 404
    assert requests.put(f"{url}/_config/_inbox", json={}, timeout=5).status_code == 400
    assert _post(f"{url}/_inbox").status_code == 404
    assert _post(f"{url}/").status_code == 404
    r = requests.get(f"{url}/hooks/a", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert requests.get(f"{url}/_nope", timeout=5).status_code == 404
    assert requests.delete(f"{url}/_nope", timeout=5).status_code == 404
    with pytest.raises(ConfigError):
        server.configure("/", mode="gone")
    assert server.inbox() == []


def test_oversized_body_is_413(sim):
    server, url = sim
    r = _post(f"{url}/big", b"x" * (webhook_sim.MAX_BODY + 1))
    assert r.status_code == 413
    assert server.inbox() == []


def test_concurrent_senders_all_recorded_with_fail_times_exact(sim):
    server, url = sim
    server.configure("/busy", mode="fail", status=503, fail_times=10)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        r = _post(f"{url}/busy", json.dumps({"i": i}).encode())
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses).count(503) == 10 and statuses.count(200) == 30
    got = server.inbox("/busy")
    assert len(got) == 40 and len({e["id"] for e in got}) == 40
    assert sorted(json.loads(e["body"])["i"] for e in got) == list(range(40))


def test_wait_for_and_clear(sim):
    server, url = sim
    threading.Timer(0.2, lambda: _post(f"{url}/late")).start()
    assert len(server.wait_for(1, "/late", timeout=5)) == 1
    assert server.wait_for(2, "/late", timeout=0.1) == server.inbox("/late")
    server.configure("/late", mode="gone")
    server.clear()
    assert server.inbox() == []
    assert _post(f"{url}/late").status_code == 410  # clear empties the inbox, keeps configs


def test_listens_on_loopback_only(sim):
    server, _ = sim
    assert server.server_address[0] == HOST


def test_cli_serves_on_the_given_port():
    from infra.local.stack import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.webhook_sim", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        assert _post(f"http://127.0.0.1:{port}/x").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_stack_wiring_starts_the_receiver():
    assert "webhooks" in SIMULATORS and "webhooks" in Stack.ALL
    ports = Ports.free()
    stack = Stack(ports, project_id="demo-webhook-sim", components=("webhooks",))
    assert stack.env()["PAYLOOM_WEBHOOK_SIM_URL"] == f"http://127.0.0.1:{ports.webhooks}"
    assert f"webhooks=http://127.0.0.1:{ports.webhooks}" in stack.env()["PAYLOOM_LOCAL_SIMULATORS"]
    assert "webhook receiver" in stack.describe()
    stack.start()
    try:
        url = stack.env()["PAYLOOM_WEBHOOK_SIM_URL"]
        assert requests.put(f"{url}/_config/hooks/a", json={"mode": "gone"}, timeout=5).ok
        assert _post(f"{url}/hooks/a").status_code == 410
        assert len(requests.get(f"{url}/_inbox", params={"path": "/hooks/a"}, timeout=5).json()) == 1
    finally:
        stack.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(f"http://127.0.0.1:{ports.webhooks}/x", timeout=1)
