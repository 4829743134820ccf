"""The round-trip budget of the kernel (issue: new-key POST with an event <= 4, replay <= 1).

Round trips are counted, not timed, so the budget is a deterministic regression guard; the
timings live in the benchmarks."""
import pytest

from bench.harness import RpcCounter


@pytest.fixture
def api(function_client):
    return function_client("platform")


def post(api, headers, key):
    return api.post("/v1/platform/probes", json={"delay_seconds": 600},
                    headers={**headers, "Idempotency-Key": key})


def test_new_key_post_with_event_costs_three_round_trips_and_a_replay_one(api, service_headers):
    post(api, service_headers, "warm-up")  # clients, topics and caches of this process
    with RpcCounter() as new:
        first = post(api, service_headers, "rt-1")
    assert first.status_code == 201
    # read (record + probe) + commit (record, probe, event, outbox) + outbox marked published
    assert new.total == 3, new.counts
    assert new.counts == {"batch_get_documents": 1, "commit": 2}
    with RpcCounter() as replay:
        again = post(api, service_headers, "rt-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert replay.total == 1, replay.counts


def test_a_get_costs_one_round_trip_and_a_noop_none(api, service_headers):
    probe = post(api, service_headers, "rt-get").get_json()
    with RpcCounter() as get:
        assert api.get(f"/v1/platform/probes/{probe['id']}", headers=service_headers).status_code == 200
    assert get.total == 1, get.counts
    with RpcCounter() as ping:
        assert api.get("/v1/platform/ping").status_code == 200
    assert ping.total == 0
