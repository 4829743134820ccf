"""``/v1/events`` keeps test and live apart: a test key never reads a live event (list, get,
filter by type, or a cursor of the other mode), and the reverse."""
from __future__ import annotations

from tests.payments.test_intents_api import create

EVENTS = "/v1/events"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def intents_in(events) -> set[str]:
    return {e["data"]["object"]["id"] for e in events if e["type"].startswith("payment_intent.")}


def test_events_of_one_mode_are_invisible_to_the_other(deps, payments, function_client, make_merchant,
                                                       api_key):
    m = make_merchant(("owner",))
    test_pi = create(payments, m.headers(), amount=500).get_json()
    live_pi = create(payments, m.headers(live=True), amount=700).get_json()
    events = function_client("events")
    scopes = ("events:read",)
    test_key, live_key = api_key(m.id, scopes, livemode=False), api_key(m.id, scopes, livemode=True)

    def listed(key, **query):
        r = events.get(EVENTS, headers=_bearer(key), query_string=query)
        assert r.status_code == 200, r.get_json()
        return r.get_json()["data"]

    seen_test = listed(test_key)
    seen_live = listed(live_key)
    assert intents_in(seen_test) == {test_pi["id"]} and intents_in(seen_live) == {live_pi["id"]}
    assert all(not e["livemode"] for e in seen_test) and all(e["livemode"] for e in seen_live)
    assert [e["data"]["object"]["id"] for e in listed(test_key, type="payment_intent.created")] \
        == [test_pi["id"]]
    live_event = seen_live[0]["id"]
    assert events.get(f"{EVENTS}/{live_event}", headers=_bearer(test_key)).status_code == 404
    assert events.get(f"{EVENTS}/{live_event}", headers=_bearer(live_key)).status_code == 200
    cross = events.get(EVENTS, headers=_bearer(test_key), query_string={"starting_after": live_event})
    assert cross.status_code == 400 and cross.get_json()["error"]["code"] == "invalid_cursor"
    # a member acting in a mode sees that mode only
    by_user = events.get(EVENTS, headers=m.headers(live=True)).get_json()["data"]
    assert intents_in(by_user) == {live_pi["id"]}
