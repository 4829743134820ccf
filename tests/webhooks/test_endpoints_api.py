"""/v1/webhook_endpoints through the ``webhooks`` function, on the Firestore emulator.

Real users (password login) and real API keys; DNS is the only injected port (a resolver that
answers public, private or metadata addresses for chosen names)."""
from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import pytest
from google.cloud import firestore
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.adapters.kms import LocalKms
from shared.identity.apikeys import service as apikeys
from shared.platform import secrets_at_rest
from shared.platform.uow import run_unit
from shared.webhooks import endpoints, signing
from shared.webhooks.settings import WebhookSettings
from tests.support.identity import auth_headers, create_user_with_token

BASE = "/v1/webhook_endpoints"
PUBLIC = "93.184.216.34"
DNS = {"hooks.example.com": [PUBLIC], "other.example.com": [PUBLIC, "2606:2800:220:1::1"],
       "private.example.com": ["10.0.0.7"], "mixed.example.com": [PUBLIC, "192.168.0.3"],
       "meta.example.com": ["169.254.169.254"], "cgnat.example.com": ["100.64.1.1"],
       "mapped.example.com": ["::ffff:10.0.0.1"], "loop.example.com": ["127.0.0.1"]}
URL = "https://hooks.example.com/payloom"
EVENTS = ["topup.succeeded", "transfer.*"]


def fake_dns(host, port):
    if host in DNS:
        return list(DNS[host])
    if host.endswith(".example.com"):
        return [PUBLIC]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def wiring(deps):
    deps.extras["platform.kms"] = LocalKms.generate()
    deps.extras["webhooks.settings"] = WebhookSettings(allow_loopback=True)
    deps.extras["webhooks.resolver"] = fake_dns
    return deps


@pytest.fixture
def app(wiring, function_client):
    return function_client("webhooks").application


@pytest.fixture
def client(app):
    return app.test_client()


class Caller:
    def __init__(self, client, headers, tenant):
        self.client, self.headers, self.tenant = client, headers, tenant

    def call(self, method, path="", json=None, **headers):
        return self.client.open(BASE + path, method=method, json=json,
                                headers={**self.headers, **headers})

    def create(self, url=URL, events=None, **body):
        r = self.call("POST", json={"url": url, "enabled_events": events or EVENTS, **body})
        assert r.status_code == 201, r.get_json()
        return r.get_json()


@pytest.fixture
def user(wiring, client):
    def make():
        user_id, token = create_user_with_token(wiring)
        return Caller(client, auth_headers(token), user_id)
    return make


@pytest.fixture
def alice(user):
    return user()


@pytest.fixture
def bob(user):
    return user()


def api_key(deps, client, owner: str, scopes, livemode=False) -> Caller:
    key = run_unit(deps, lambda uow: apikeys.create_api_key(uow, owner_id=owner, name="server",
                                                            scopes=scopes, livemode=livemode))
    return Caller(client, auth_headers(key.secret), owner)


def assert_error(r, status, code=None, param=None):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
    body = r.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "code", "message", "param"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def events_of(deps, type_):
    q = deps.db.collection("events").where(filter=firestore.FieldFilter("type", "==", type_))
    return sorted((s.to_dict() for s in q.stream()), key=lambda e: e["created_at"])


def stored(deps, endpoint_id):
    return deps.db.collection("webhook_endpoints").document(endpoint_id).get().to_dict()


# --- create, secret shown once ---------------------------------------------------------------

def test_create_shows_the_secret_once(wiring, alice):
    deps = wiring
    r = alice.call("POST", json={"url": URL, "enabled_events": EVENTS, "description": "orders",
                                 "metadata": {"team": "billing"}}, **{"Idempotency-Key": "create-1"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    secret = created["secret"]
    assert created["id"].startswith("we_") and created["object"] == "webhook_endpoint"
    assert secret.startswith("whsec_") and len(signing.secret_key(secret)) == 32
    assert (created["url"], created["enabled_events"], created["description"]) == (URL, EVENTS, "orders")
    assert created["metadata"] == {"team": "billing"} and created["status"] == "enabled"
    assert created["disabled_reason"] is None and created["livemode"] is False
    assert created["secret_rotated_at"] is None and created["previous_secret_expires_at"] is None

    # stored sealed, bound to this endpoint, never in clear
    doc = stored(deps, created["id"])
    assert doc["owner"] == alice.tenant and doc["livemode"] is False
    assert secret not in str(doc) and secret[len("whsec_"):] not in str(doc)
    [entry] = doc["secrets"]
    assert secrets_at_rest.is_sealed(entry["sealed"]) and entry["expires_at"] is None
    assert endpoints.signing_secrets(deps, doc, deps.clock.now()) == [secret]

    # the idempotent replay answers the same endpoint without the secret
    again = alice.call("POST", json={"url": URL, "enabled_events": EVENTS, "description": "orders",
                                     "metadata": {"team": "billing"}}, **{"Idempotency-Key": "create-1"})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == created["id"] and again.get_json()["secret"] is None
    # a retry without the key is a duplicate, not a second endpoint
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": EVENTS}), 409,
                 "duplicate_endpoint", "url")

    got = alice.call("GET", f"/{created['id']}")
    assert got.status_code == 200 and "secret" not in got.get_json()
    assert got.get_json() == {k: v for k, v in created.items() if k != "secret"}
    listed = alice.call("GET").get_json()
    assert [e["id"] for e in listed["data"]] == [created["id"]] and "secret" not in listed["data"][0]
    assert secret not in r.get_data(as_text=False).decode().replace(secret, "", 1)  # once in the answer

    [event] = events_of(deps, "webhook_endpoint.created")
    assert event["tenant"] == alice.tenant and event["livemode"] is False
    assert event["data"]["object"]["id"] == created["id"] and secret not in str(event)
    assert "secret" not in event["data"]["object"]


def test_crud(wiring, alice):
    deps = wiring
    ep = alice.create(metadata={"a": "1", "b": "2"})
    path = f"/{ep['id']}"

    r = alice.call("POST", path, json={"url": "https://other.example.com/v2",
                                       "enabled_events": ["*"], "description": "all",
                                       "metadata": {"b": "", "c": "3"}})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["url"] == "https://other.example.com/v2" and body["enabled_events"] == ["*"]
    assert body["description"] == "all" and body["metadata"] == {"a": "1", "c": "3"}
    assert body["updated"] is not None and "secret" not in body
    [updated] = events_of(deps, "webhook_endpoint.updated")
    assert updated["data"]["object"]["url"] == "https://other.example.com/v2"

    # nothing changes: no write, no event
    same = alice.call("POST", path, json={"url": "https://other.example.com/v2", "enabled_events": ["*"]})
    assert same.status_code == 200 and same.get_json() == body
    assert len(events_of(deps, "webhook_endpoint.updated")) == 1
    # description null and metadata {} clear them
    cleared = alice.call("POST", path, json={"description": None, "metadata": {}}).get_json()
    assert cleared["description"] is None and cleared["metadata"] == {}

    # the old URL is free again, the new one is taken
    other = alice.create(URL)
    assert_error(alice.call("POST", f"/{other['id']}", json={"url": "https://OTHER.example.com:443/v2"}),
                 409, "duplicate_endpoint")

    deleted = alice.call("DELETE", path)
    assert deleted.status_code == 200
    assert deleted.get_json()["deleted"] is True and deleted.get_json()["id"] == ep["id"]
    assert stored(deps, ep["id"]) is None
    assert_error(alice.call("GET", path), 404, "resource_missing")
    assert_error(alice.call("DELETE", path), 404, "resource_missing")
    [gone] = events_of(deps, "webhook_endpoint.deleted")
    assert gone["data"]["object"]["id"] == ep["id"]
    assert [e["id"] for e in alice.call("GET").get_json()["data"]] == [other["id"]]
    # a deleted endpoint's URL can be used again
    assert alice.create("https://other.example.com/v2")["id"] != ep["id"]


def test_enable_disable_and_matching(wiring, alice):
    deps = wiring
    ep = alice.create(events=["topup.*", "transfer.posted"])
    both = alice.create("https://hooks.example.com/all", events=["*"])
    match = lambda t, live=False: sorted(d["id"] for d in endpoints.matching(deps.db, alice.tenant, live, t))
    assert match("topup.succeeded") == sorted([ep["id"], both["id"]])
    assert match("transfer.posted") == sorted([ep["id"], both["id"]])
    assert match("transfer.voided") == [both["id"]]
    assert match("topup.succeeded", live=True) == []
    assert match("thing.happened") == []  # internal types are never delivered

    r = alice.call("POST", f"/{ep['id']}/disable")
    assert r.status_code == 200
    assert (r.get_json()["status"], r.get_json()["disabled_reason"]) == ("disabled", "manual")
    assert match("topup.succeeded") == [both["id"]]
    assert alice.call("POST", f"/{ep['id']}/disable").get_json()["status"] == "disabled"
    [disabled] = events_of(deps, "webhook_endpoint.disabled")  # once
    assert disabled["data"]["object"]["disabled_reason"] == "manual"

    # delivery's health fields are reset by enabling
    deps.db.collection("webhook_endpoints").document(ep["id"]).update(
        {"failing_since": deps.clock.now() - dt.timedelta(days=1)})
    r = alice.call("POST", f"/{ep['id']}/enable")
    assert r.status_code == 200 and r.get_json()["status"] == "enabled"
    assert r.get_json()["disabled_reason"] is None and r.get_json()["failing_since"] is None
    assert alice.call("POST", f"/{ep['id']}/enable").status_code == 200
    assert len(events_of(deps, "webhook_endpoint.enabled")) == 1
    assert match("topup.succeeded") == sorted([ep["id"], both["id"]])


def test_set_disabled_for_delivery(wiring, alice):
    deps = wiring
    ep = alice.create()
    ref = endpoints.ref(deps.db, ep["id"])

    def gone(uow):
        return endpoints.set_disabled(uow, ref, uow.get(ref).to_dict(), "gone")
    assert run_unit(deps, gone).disabled_reason == "gone"
    assert run_unit(deps, gone).disabled_reason == "gone"  # idempotent
    assert [e["data"]["object"]["disabled_reason"] for e in events_of(deps, "webhook_endpoint.disabled")] == ["gone"]
    assert alice.call("GET", f"/{ep['id']}").get_json()["status"] == "disabled"


def test_rotate_secret(wiring, alice):
    deps = wiring
    ep = alice.create()
    first = ep["secret"]
    body = b'{"id":"evt_1","object":"event"}'

    r = alice.call("POST", f"/{ep['id']}/rotate_secret")
    assert r.status_code == 200, r.get_json()
    rotated = r.get_json()
    second = rotated["secret"]
    assert second.startswith("whsec_") and second != first and rotated["secret_rotated_at"]
    grace_end = dt.datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert abs((grace_end - deps.clock.now()).total_seconds() - 86400) < 60
    doc = stored(deps, ep["id"])
    assert first not in str(doc) and second not in str(doc)
    now = deps.clock.now()
    live = endpoints.signing_secrets(deps, doc, now)
    assert live == [second, first]
    # during the grace both secrets verify with the reference receiver
    headers = signing.headers(live, "evt_1", int(time.time()), body)
    Webhook(first).verify(body, headers)
    Webhook(second).verify(body, headers)
    # after it only the new one signs
    later = endpoints.signing_secrets(deps, doc, now + dt.timedelta(days=1, seconds=1))
    assert later == [second]
    with pytest.raises(WebhookVerificationError):
        Webhook(first).verify(body, signing.headers(later, "evt_1", int(time.time()), body))
    assert "secret" not in alice.call("GET", f"/{ep['id']}").get_json()
    assert len(events_of(deps, "webhook_endpoint.updated")) == 1

    # 0 ends the old secrets now; more than the maximum is refused
    third = alice.call("POST", f"/{ep['id']}/rotate_secret", json={"expires_in_seconds": 0}).get_json()
    assert endpoints.signing_secrets(deps, stored(deps, ep["id"]), deps.clock.now()) == [third["secret"]]
    assert third["previous_secret_expires_at"] is None
    assert_error(alice.call("POST", f"/{ep['id']}/rotate_secret",
                            json={"expires_in_seconds": 7 * 86400 + 1}), 400, "parameter_invalid",
                 "expires_in_seconds")
    assert_error(alice.call("POST", f"/{ep['id']}/rotate_secret", json={"expires_in_seconds": -1}),
                 400, "parameter_invalid")
    # replaying a rotation under its Idempotency-Key never shows the secret again
    k = {"Idempotency-Key": "rot-1"}
    fresh = alice.call("POST", f"/{ep['id']}/rotate_secret", **k).get_json()["secret"]
    replay = alice.call("POST", f"/{ep['id']}/rotate_secret", **k)
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_json()["secret"] is None
    assert endpoints.signing_secrets(deps, stored(deps, ep["id"]), deps.clock.now())[0] == fresh


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("events", [["nope.happened"], ["nope.*"], ["*.*"], ["topup*"],
                                    ["thing.happened"], ["topup.succeeded", "nope"], [".*"],
                                    ["topup.**"], ["*.succeeded"]])
def test_unknown_event_types(wiring, alice, events):
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": events}), 400,
                 "unknown_event_type", "enabled_events")


def test_event_patterns_accepted_and_refused_on_update(wiring, alice):
    ep = alice.create(events=["*", "topup.*", "webhook_endpoint.created", "topup.*"])
    assert ep["enabled_events"] == ["*", "topup.*", "webhook_endpoint.created"]  # de-duplicated
    assert_error(alice.call("POST", f"/{ep['id']}", json={"enabled_events": ["nope.x"]}), 400,
                 "unknown_event_type")
    assert_error(alice.call("POST", f"/{ep['id']}", json={"enabled_events": []}), 400,
                 "parameter_invalid", "enabled_events")
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": []}), 400,
                 "parameter_invalid", "enabled_events")
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": ["topup.*"] * 101}), 400,
                 "parameter_invalid", "enabled_events")


@pytest.mark.parametrize("url", ["not a url", "hooks.example.com/x", "ftp://hooks.example.com/",
                                 "https://user:pw@hooks.example.com/", "https://hooks.example.com/#x",
                                 "https://hooks.example.com:70000/", "https://" + "a" * 2050 + ".example.com/",
                                 "http://93.184.216.34/", "https://0x7f.1/"])
def test_bad_urls(wiring, alice, url):
    assert_error(alice.call("POST", json={"url": url, "enabled_events": EVENTS}), 400, "url_invalid", "url")


@pytest.mark.parametrize("url,reason", [
    ("https://10.0.0.1/in", "private"), ("https://private.example.com/in", "private"),
    ("https://mixed.example.com/in", "private"), ("https://169.254.169.254/computeMetadata/v1/", "metadata"),
    ("https://meta.example.com/", "metadata"), ("https://metadata.google.internal/", "metadata"),
    ("https://[::ffff:10.0.0.1]/", "private"), ("https://mapped.example.com/", "private"),
    ("https://cgnat.example.com/", "cgnat"), ("https://[fe80::1]/", "link_local"),
    ("http://hooks.example.com/", "plain_http"),
])
def test_private_and_metadata_urls(wiring, alice, url, reason):
    error = assert_error(alice.call("POST", json={"url": url, "enabled_events": EVENTS}), 400,
                         "url_unsafe", "url")
    assert reason in error["message"]


def test_loopback_only_in_test_mode(wiring, alice, user):
    assert alice.create("http://127.0.0.1:9/in")["url"] == "http://127.0.0.1:9/in"
    assert alice.create("http://loop.example.com:9/in")["status"] == "enabled"
    wiring.extras["webhooks.settings"] = WebhookSettings(allow_loopback=False)
    assert_error(alice.call("POST", json={"url": "https://loop.example.com/", "enabled_events": EVENTS}),
                 400, "url_unsafe")
    assert_error(alice.call("POST", json={"url": "https://127.0.0.1/", "enabled_events": EVENTS}),
                 400, "url_unsafe")
    assert_error(alice.call("POST", json={"url": "http://127.0.0.1:9/x", "enabled_events": EVENTS}),
                 400, "url_invalid")


def test_unresolvable_and_private_updates(wiring, alice):
    deps = wiring
    assert_error(alice.call("POST", json={"url": "https://nowhere.invalid/", "enabled_events": EVENTS}),
                 400, "url_unresolvable", "url")
    ep = alice.create()
    before = stored(deps, ep["id"])
    for url, code in (("https://private.example.com/x", "url_unsafe"), ("ftp://x.example.com/", "url_invalid"),
                      ("https://nowhere.invalid/", "url_unresolvable")):
        assert_error(alice.call("POST", f"/{ep['id']}", json={"url": url}), 400, code, "url")
    assert stored(deps, ep["id"]) == before


def test_duplicates(wiring, alice, bob):
    alice.create(URL)
    for spelling in (URL, "https://HOOKS.example.com:443/payloom", "https://hooks.example.com./payloom"):
        assert_error(alice.call("POST", json={"url": spelling, "enabled_events": ["*"]}), 409,
                     "duplicate_endpoint", "url")
    assert alice.create(URL + "?v=2")["url"] == URL + "?v=2"  # another URL
    assert bob.create(URL)["url"] == URL  # another tenant


def test_duplicates_under_concurrency(wiring, app, alice):
    """Eight simultaneous creates of one URL: exactly one endpoint exists."""
    barrier = threading.Barrier(8)
    results: list[int] = []

    def create():
        client = app.test_client()
        barrier.wait()
        r = client.post(BASE, json={"url": "https://hooks.example.com/race", "enabled_events": ["*"]},
                        headers=alice.headers)
        results.append(r.status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] + [409] * 7, results
    docs = [s.to_dict() for s in wiring.db.collection("webhook_endpoints").stream()]
    assert [d["url"] for d in docs] == ["https://hooks.example.com/race"]
    assert len(events_of(wiring, "webhook_endpoint.created")) == 1


@pytest.mark.parametrize("metadata", [
    {f"k{i}": "v" for i in range(51)}, {"k" * 41: "v"}, {"k": "v" * 501}, {"k": ""}, {"": "v"},
    {"__name__": "v"}, {"k": 1}, {"k": {"nested": "x"}}, ["not", "a", "map"],
])
def test_oversized_or_malformed_metadata(wiring, alice, metadata):
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": EVENTS, "metadata": metadata}),
                 400, "parameter_invalid")


def test_metadata_limits_after_a_merge(wiring, alice):
    ep = alice.create(metadata={f"k{i}": "v" for i in range(50)})
    assert_error(alice.call("POST", f"/{ep['id']}", json={"metadata": {"one_more": "v"}}), 400,
                 "parameter_invalid", "metadata")
    ok = alice.call("POST", f"/{ep['id']}", json={"metadata": {"k0": "", "one_more": "v"}})
    assert ok.status_code == 200 and len(ok.get_json()["metadata"]) == 50


def test_other_request_mistakes(wiring, alice):
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": EVENTS, "secret": "whsec_x"}),
                 400, "parameter_unknown")
    assert_error(alice.call("POST", json={"enabled_events": EVENTS}), 400, "parameter_missing", "url")
    assert_error(alice.call("POST", json={"url": URL, "enabled_events": EVENTS,
                                          "description": "d" * 501}), 400, "parameter_invalid")
    ep = alice.create()
    assert_error(alice.call("POST", f"/{ep['id']}", json={"status": "disabled"}), 400, "parameter_unknown")
    assert_error(alice.call("POST", f"/{ep['id']}/enable", json={"x": 1}), 400, "unexpected_body")
    assert_error(alice.call("GET", "/we_doesnotexist000000000"), 404, "resource_missing")
    assert_error(alice.call("GET", "?limit=0"), 400, "parameter_invalid", "limit")
    r = alice.client.post(BASE, json={"url": URL, "enabled_events": EVENTS})
    assert_error(r, 401)


def test_too_many_endpoints(wiring, alice):
    wiring.extras["webhooks.settings"] = WebhookSettings(allow_loopback=True, max_endpoints_per_owner=3)
    made = [alice.create(f"https://hooks.example.com/{i}") for i in range(3)]
    assert_error(alice.call("POST", json={"url": "https://hooks.example.com/3", "enabled_events": EVENTS}),
                 400, "too_many_endpoints")
    assert alice.call("DELETE", f"/{made[0]['id']}").status_code == 200
    alice.create("https://hooks.example.com/3")


def test_another_tenants_endpoint_is_404_on_every_route(wiring, alice, bob):
    deps = wiring
    ep = alice.create()
    before = stored(deps, ep["id"])
    path = f"/{ep['id']}"
    live_key = api_key(deps, alice.client, alice.tenant, ["webhooks:*"], livemode=True)
    for stranger in (bob, live_key):  # another tenant, or the same tenant in the other mode
        for method, sub, body in (("GET", "", None), ("POST", "", {"description": "mine"}),
                                  ("DELETE", "", None), ("POST", "/enable", None),
                                  ("POST", "/disable", None), ("POST", "/rotate_secret", {})):
            assert_error(stranger.call(method, path + sub, json=body), 404, "resource_missing")
        assert stranger.call("GET").get_json()["data"] == []
        assert_error(stranger.call("GET", f"?starting_after={ep['id']}"), 400, "invalid_cursor")
    assert stored(deps, ep["id"]) == before
    assert alice.call("GET", path).status_code == 200


def test_api_key_scopes(wiring, alice):
    deps = wiring
    ep = alice.create()
    reader = api_key(deps, alice.client, alice.tenant, ["webhooks:read"])
    assert reader.call("GET", f"/{ep['id']}").status_code == 200
    assert [e["id"] for e in reader.call("GET").get_json()["data"]] == [ep["id"]]
    for method, sub, body in (("POST", "", {"url": "https://hooks.example.com/k", "enabled_events": ["*"]}),
                              ("POST", f"/{ep['id']}", {"description": "x"}),
                              ("DELETE", f"/{ep['id']}", None), ("POST", f"/{ep['id']}/disable", None),
                              ("POST", f"/{ep['id']}/enable", None),
                              ("POST", f"/{ep['id']}/rotate_secret", {})):
        assert_error(reader.call(method, sub, json=body), 403, "missing_scope")
    unrelated = api_key(deps, alice.client, alice.tenant, ["wallet:read"])
    assert_error(unrelated.call("GET"), 403, "missing_scope")
    writer = api_key(deps, alice.client, alice.tenant, ["webhooks:write", "webhooks:read"])
    made = writer.create("https://hooks.example.com/by-key")
    assert made["secret"].startswith("whsec_")
    assert stored(deps, made["id"])["owner"] == alice.tenant  # the key's owner owns it
    live = api_key(deps, alice.client, alice.tenant, ["webhooks:*"], livemode=True)
    live_ep = live.create()  # same URL, other mode: not a duplicate
    assert live_ep["livemode"] is True and [e["id"] for e in live.call("GET").get_json()["data"]] == [live_ep["id"]]


def test_list_pagination(wiring, alice, bob):
    made = [alice.create(f"https://hooks.example.com/p{i}")["id"] for i in range(5)]
    bob.create()
    seen, cursor = [], None
    while True:
        r = alice.call("GET", "?limit=2" + (f"&starting_after={cursor}" if cursor else ""))
        assert r.status_code == 200, r.get_json()
        page = r.get_json()
        assert page["object"] == "list" and page["url"] == BASE and len(page["data"]) <= 2
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == list(reversed(made))  # newest first, each once, only alice's
    assert_error(alice.call("GET", "?starting_after=we_nope"), 400, "invalid_cursor")
    assert_error(alice.call("GET", "?limit=101"), 400, "parameter_invalid")
