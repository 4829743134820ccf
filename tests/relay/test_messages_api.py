"""The client messages API through the real ``messages`` function: create (202), read, list,
cancel, idempotency, scopes, tenant isolation, limits, opt-outs and every refusal as a 4xx.

The dispatch task each create queues goes to a gateway nobody serves here (the tests of
dispatch serve it), so messages stay ``queued`` unless a test moves them.
"""
from __future__ import annotations

import concurrent.futures as cf
import time

import pytest
from google.cloud.firestore_v1 import FieldFilter

from shared.platform.uow import run_unit
from shared.relay import blacklist, lifecycle, quotas
from shared.relay import supply_models as M
from tests.relay.dispatch_kit import client_key, events_of, message_doc, messages_client, use_settings  # noqa: F401
from tests.relay.supply_kit import fresh_phone

SMART = "+85510234567"


def err(resp) -> dict:
    body = resp.get_json()
    assert body and "error" in body, resp.get_data(as_text=True)
    return body["error"]


@pytest.fixture
def client(deps):
    use_settings(deps)
    return client_key(deps)


def send(messages_client, client, **body):
    payload = {"to": fresh_phone("smart"), "text": "Your code is 123456", **body}
    return messages_client.post("/v1/messages", json=payload, headers=client.headers())


def test_create_answers_202_with_the_counted_message_and_its_history(deps, messages_client, client):
    to = fresh_phone("metfone")
    r = send(messages_client, client, to=to, text="សួស្តី! កូដរបស់អ្នកគឺ 123456", priority="high",
             client_reference="order-17", metadata={"order": "17"})
    assert r.status_code == 202, r.get_data(as_text=True)
    m = r.get_json()
    assert m["id"].startswith("msg_") and m["object"] == "message" and m["livemode"] is False
    assert (m["to"], m["carrier"], m["encoding"], m["parts"]) == (to, "metfone", "UCS-2", 1)
    assert m["status"] == "queued" and [h["status"] for h in m["status_history"]] == ["queued"]
    assert m["priority"] == "high" and m["client_reference"] == "order-17"
    assert m["expires_at"] - m["created"] == 24 * 3600 and m["attempts"] == 0
    got = messages_client.get(f"/v1/messages/{m['id']}", headers=client.headers())
    assert got.status_code == 200 and got.get_json() == m
    doc = message_doc(deps, m["id"])
    assert doc["tenant"] == client.owner and doc["due"] == "dispatch" and doc["active"] is True
    assert doc["purge_at"] > doc["created_at"]
    assert events_of(deps, m["id"]) == ["message.queued"]
    assert "sim" not in m and "provider" not in m and "token" not in str(m)


def test_national_format_and_long_gsm_text_are_normalised_and_counted(messages_client, client):
    r = send(messages_client, client, to="010 234 567", text="x" * 300 + "€")
    assert r.status_code == 202, r.get_data(as_text=True)
    m = r.get_json()
    assert m["to"] == "+85510234567" and m["carrier"] == "smart"
    assert (m["encoding"], m["parts"], m["characters"]) == ("GSM-7", 2, 301)


def test_another_client_and_the_other_mode_see_a_404(deps, messages_client, client):
    m = send(messages_client, client).get_json()
    other = client_key(deps)
    live_same_owner = client_key(deps, owner=client.owner, livemode=True)
    for c in (other, live_same_owner):
        assert messages_client.get(f"/v1/messages/{m['id']}", headers=c.headers()).status_code == 404
        r = messages_client.post(f"/v1/messages/{m['id']}/cancel", headers=c.headers())
        assert r.status_code == 404
        listed = messages_client.get("/v1/messages", headers=c.headers()).get_json()
        assert listed["data"] == []
    for bad in ("msg_nope", "evt_" + "a" * 20, "x" * 300):
        r = messages_client.get(f"/v1/messages/{bad}", headers=client.headers())
        assert r.status_code == 404


def test_scopes_decide_who_may_send_and_read(deps, messages_client):
    use_settings(deps)
    reader = client_key(deps, scopes=("sms:read",))
    payments = client_key(deps, scopes=("payments:read", "payments:write"))
    r = send(messages_client, reader)
    assert r.status_code == 403 and err(r)["code"] == "missing_scope"
    assert messages_client.get("/v1/messages", headers=reader.headers()).status_code == 200
    r = messages_client.get("/v1/messages", headers=payments.headers())
    assert r.status_code == 403 and err(r)["code"] == "missing_scope"
    r = messages_client.post("/v1/messages", json={"to": SMART, "text": "hi"})
    assert r.status_code == 401


def test_an_idempotency_key_replays_and_refuses_other_parameters(deps, messages_client, client):
    body = {"to": fresh_phone("smart"), "text": "Order 5 shipped"}
    h = client.headers(**{"Idempotency-Key": "k-1"})
    first = messages_client.post("/v1/messages", json=body, headers=h)
    again = messages_client.post("/v1/messages", json=body, headers=h)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = messages_client.post("/v1/messages", json={**body, "text": "Order 6"}, headers=h)
    assert other.status_code == 409 and err(other)["type"] == "idempotency_error"


def test_sixteen_concurrent_identical_posts_make_one_message(deps, function_client, client):
    body = {"to": fresh_phone("cellcard"), "text": "Burst", "client_reference": "burst-1"}
    h = client.headers(**{"Idempotency-Key": "burst-key"})
    apps = [function_client("messages") for _ in range(4)]

    def post(i):
        return apps[i % 4].post("/v1/messages", json=body, headers=h)
    with cf.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    ok = [a for a in answers if a.status_code == 202]
    assert ok and all(a.status_code in (202, 409, 503) for a in answers), [a.status_code for a in answers]
    assert len({a.get_json()["id"] for a in ok}) == 1
    docs = list(deps.db.collection(lifecycle.COLLECTION)
                .where(filter=FieldFilter("client_reference", "==", "burst-1")).stream())
    assert len(docs) == 1
    assert events_of(deps, docs[0].id) == ["message.queued"]
    used = sum((s.to_dict() or {}).get("count", 0) for s in deps.db.collection(quotas.USAGE).stream()
               if s.id.startswith(client.owner))
    assert used == 1


@pytest.mark.parametrize("body,status,code,param", [
    ({"to": "+14155550123"}, 400, "recipient_unsupported", "to"),
    ({"to": "+85523756789"}, 400, "phone_not_mobile", "to"),          # Phnom Penh landline
    ({"to": "not a phone"}, 400, "phone_invalid", "to"),
    ({"to": "+8551"}, 400, "phone_invalid", "to"),
    ({"to": ""}, 400, "parameter_invalid", "to"),
    ({"text": ""}, 400, "text_empty", "text"),
    ({"text": "a" * 1531}, 400, "text_too_long", "text"),
    ({"text": "ក" * 671}, 400, "text_too_long", "text"),
    ({"text": "a" * 2001}, 400, "parameter_invalid", "text"),
    ({"text": "nul \u0000 byte"}, 400, "text_invalid", "text"),
    ({"priority": "urgent"}, 400, "parameter_invalid", "priority"),
    ({"priority": None}, 400, "parameter_invalid", "priority"),
    ({"send_at": int(time.time()) + 40 * 86400}, 400, "send_at_too_far", "send_at"),
    ({"send_at": "tomorrow"}, 400, "parameter_invalid", "send_at"),
    ({"expires_at": int(time.time()) + 10}, 400, "expires_at_invalid", "expires_at"),
    ({"expires_at": int(time.time()) + 30 * 86400}, 400, "expires_at_invalid", "expires_at"),
    ({"expires_at": 1.5}, 400, "parameter_invalid", "expires_at"),
    ({"client_reference": "bad\nref"}, 400, "parameter_invalid", "client_reference"),
    ({"client_reference": "x" * 129}, 400, "parameter_invalid", "client_reference"),
    ({"metadata": {"k" * 41: "v"}}, 400, "parameter_invalid", "metadata"),
    ({"colour": "red"}, 400, "parameter_unknown", "colour"),
    ({"callback_url": "https://example.com/cb"}, 400, "callback_secret_required", "callback_url"),
    ({"text": "Claim your prize now, you have won free money"}, 422, "content_spam", "text"),
    ({"text": "Go to bit.ly/abc"}, 422, "content_url_shortener", "text"),
    ({"text": "Please verify your account at http://198.51.100.7/x"}, 422, "content_phishing", "text"),
])
def test_hostile_and_invalid_input_is_a_clear_4xx_and_writes_nothing(
        deps, messages_client, client, body, status, code, param):
    r = send(messages_client, client, **body)
    assert r.status_code == status, r.get_data(as_text=True)
    e = err(r)
    assert (e["code"], e["param"]) == (code, param)
    assert list(deps.db.collection(lifecycle.COLLECTION).limit(1).stream()) == []


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b"{\"to\": ", b"\xff\xfe"])
def test_malformed_bodies_are_400(messages_client, client, raw):
    r = messages_client.post("/v1/messages", data=raw, content_type="application/json",
                             headers=client.headers())
    assert r.status_code == 400


def test_a_callback_url_needs_a_secret_and_a_public_address(deps, messages_client, client):
    from shared.adapters.kms import LocalKms
    deps.extras["platform.kms"] = LocalKms.generate()
    r = messages_client.post("/v1/messages/callback_secret", headers=client.headers())
    assert r.status_code == 200 and r.get_json()["secret"].startswith("whsec_")
    for url in ("http://10.0.0.5/cb", "https://169.254.169.254/latest", "ftp://example.com/x",
                "https://user:pw@example.com/"):
        r = send(messages_client, client, callback_url=url)
        assert r.status_code == 400 and err(r)["param"] == "callback_url", url
    deps.extras["webhooks.resolver"] = lambda host, port: ["93.184.216.34"]
    r = send(messages_client, client, callback_url="https://hooks.example.com/sms")
    assert r.status_code == 202, r.get_data(as_text=True)
    rotated = messages_client.post("/v1/messages/callback_secret", headers=client.headers()).get_json()
    assert rotated["previous_expires_at"] is not None


def test_opt_outs_block_the_recipient_until_removed(deps, messages_client, client):
    to = fresh_phone("smart")
    r = messages_client.post("/v1/messages/opt_outs", json={"to": to}, headers=client.headers())
    assert r.status_code == 200, r.get_data(as_text=True)
    opt = r.get_json()
    again = messages_client.post("/v1/messages/opt_outs", json={"to": to}, headers=client.headers())
    assert again.get_json()["id"] == opt["id"]
    r = send(messages_client, client, to=to)
    assert r.status_code == 422 and err(r)["code"] == "recipient_opted_out"
    other = client_key(deps)   # opt-outs are per client
    assert send(messages_client, other, to=to).status_code == 202
    listed = messages_client.get("/v1/messages/opt_outs", headers=client.headers()).get_json()
    assert [o["to"] for o in listed["data"]] == [to]
    assert messages_client.get("/v1/messages/opt_outs", headers=other.headers()).get_json()["data"] == []
    assert messages_client.delete(f"/v1/messages/opt_outs/{opt['id']}",
                                  headers=other.headers()).status_code == 404
    gone = messages_client.delete(f"/v1/messages/opt_outs/{opt['id']}", headers=client.headers())
    assert gone.status_code == 200 and gone.get_json()["deleted"] is True
    assert send(messages_client, client, to=to).status_code == 202


def test_blacklisted_recipients_are_refused(deps, messages_client, client):
    to = fresh_phone("cellcard")
    run_unit(deps, lambda uow: blacklist.add(uow, M.BlacklistRequest(kind="recipient", value=to,
                                                                     reason="complaints")))
    r = send(messages_client, client, to=to)
    assert r.status_code == 422 and err(r)["code"] == "recipient_blocked"


def test_per_recipient_frequency_cap(deps, messages_client, client):
    use_settings(deps, per_recipient_hour=2)
    to = fresh_phone("smart")
    assert [send(messages_client, client, to=to).status_code for _ in range(2)] == [202, 202]
    r = send(messages_client, client, to=to)
    assert r.status_code == 429 and err(r)["code"] == "recipient_frequency_capped"
    assert int(r.headers["Retry-After"]) > 0
    assert send(messages_client, client_key(deps), to=to).status_code == 202   # another client


def test_daily_quota_per_client_is_exact_under_a_burst(deps, function_client, client):
    deps.db.collection(quotas.CLIENTS).document(client.owner).set({"daily_quota": 6})
    apps = [function_client("messages") for _ in range(4)]

    def post(i):
        return apps[i % 4].post("/v1/messages", json={"to": fresh_phone("smart"), "text": f"n{i}"},
                                headers=client.headers())
    with cf.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(12)))
    codes = [a.status_code for a in answers]
    accepted = codes.count(202)
    assert set(codes) <= {202, 429, 503}, codes
    assert 6 <= accepted <= 6 + 4, codes   # racing creates at the edge may overshoot a little
    stored = list(deps.db.collection(lifecycle.COLLECTION)
                  .where(filter=FieldFilter("tenant", "==", client.owner)).stream())
    used = sum((s.to_dict() or {}).get("count", 0) for s in deps.db.collection(quotas.USAGE).stream()
               if s.id.startswith(client.owner + ":test:"))
    assert used == len(stored) == accepted           # the count is exact
    r = post(99)
    assert r.status_code == 429 and err(r)["code"] == "daily_quota_exceeded"


def test_list_filters_and_pagination(deps, messages_client, client):
    to = fresh_phone("smart")
    ids = [send(messages_client, client, to=to if i < 2 else fresh_phone("smart"),
                client_reference=f"ref-{i % 2}").get_json()["id"] for i in range(5)]
    h = client.headers()
    page = messages_client.get("/v1/messages?limit=2", headers=h).get_json()
    assert len(page["data"]) == 2 and page["has_more"]
    rest = messages_client.get(f"/v1/messages?limit=10&starting_after={page['data'][-1]['id']}",
                               headers=h).get_json()
    assert {m["id"] for m in page["data"] + rest["data"]} == set(ids)
    by_to = messages_client.get(f"/v1/messages?to={to}", headers=h).get_json()["data"]
    assert {m["id"] for m in by_to} == set(ids[:2])
    by_ref = messages_client.get("/v1/messages?client_reference=ref-0", headers=h).get_json()["data"]
    assert {m["id"] for m in by_ref} == {ids[0], ids[2], ids[4]}
    queued = messages_client.get("/v1/messages?status=queued&limit=100", headers=h).get_json()["data"]
    assert len(queued) == 5
    created = message_doc(deps, ids[0])["created_at"]
    ranged = messages_client.get(f"/v1/messages?created[gte]={int(created.timestamp()) + 3600}",
                                 headers=h).get_json()["data"]
    assert ranged == []
    r = messages_client.get(f"/v1/messages?status=queued&to={to}", headers=h)
    assert r.status_code == 400
    for q in ("status=lost", "limit=0", "limit=101", "starting_after=msg_zzz", "created[gte]=x",
              "to=garbage"):
        r = messages_client.get(f"/v1/messages?{q}", headers=h)
        assert r.status_code == 400, q


def test_another_tenants_or_modes_ids_are_never_cursors(deps, messages_client, client):
    """A cursor must name one of the caller's own objects in its mode (tenant_mode_query)."""
    mine = send(messages_client, client).get_json()["id"]
    theirs_client, live = client_key(deps), client_key(deps, owner=client.owner, livemode=True)
    theirs = send(messages_client, theirs_client).get_json()["id"]
    live_id = send(messages_client, live).get_json()["id"]
    opt = messages_client.post("/v1/messages/opt_outs", json={"to": fresh_phone("smart")},
                               headers=theirs_client.headers()).get_json()["id"]
    for path, cursor in (("/v1/messages", theirs), ("/v1/messages", live_id),
                         ("/v1/messages/opt_outs", opt)):
        r = messages_client.get(f"{path}?starting_after={cursor}", headers=client.headers())
        assert r.status_code == 400 and err(r)["code"] == "invalid_cursor", (path, cursor)
    ok = messages_client.get(f"/v1/messages?starting_after={mine}", headers=client.headers())
    assert ok.status_code == 200 and ok.get_json()["data"] == []


def test_cancel_while_pending_only(deps, messages_client, client):
    m = send(messages_client, client).get_json()
    r = messages_client.post(f"/v1/messages/{m['id']}/cancel", headers=client.headers())
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    again = messages_client.post(f"/v1/messages/{m['id']}/cancel", headers=client.headers())
    assert again.status_code == 200 and again.get_json()["status"] == "canceled"
    assert events_of(deps, m["id"]) == ["message.queued", "message.canceled"]
    doc = message_doc(deps, m["id"])
    assert doc["active"] is False and doc["due"] is None
    sent = send(messages_client, client).get_json()
    lifecycle.message_ref(deps.db, sent["id"]).update({"status": "sent"})
    r = messages_client.post(f"/v1/messages/{sent['id']}/cancel", headers=client.headers())
    assert r.status_code == 409 and err(r)["code"] == "message_not_cancelable"


def test_members_acting_for_a_merchant_send_and_read_the_merchants_messages(deps, messages_client, client):
    """``Payloom-Merchant`` is honoured (ADR 0030): a developer's message belongs to the merchant
    (its quota, its list, its webhooks), a viewer may read but not send, a stranger naming the
    merchant is refused, and the member's own list stays their own."""
    from shared.merchants import store
    from shared.platform.ids import new_id
    from tests.support.identity import auth_headers, create_user_with_token

    merchant = new_id("mch")
    people = {}
    for role in ("developer", "viewer", None):
        uid, token = create_user_with_token(deps)
        if role:
            store.member_ref(deps.db, merchant, uid).set({"role": role, "user_id": uid,
                                                          "merchant_id": merchant})
        people[role] = auth_headers(token, **{"Payloom-Merchant": merchant})
    body = {"to": fresh_phone("smart"), "text": "Your order has shipped"}
    r = messages_client.post("/v1/messages", json=body, headers=people["developer"])
    assert r.status_code == 202, r.get_data(as_text=True)
    m = r.get_json()
    assert message_doc(deps, m["id"])["tenant"] == merchant
    listed = messages_client.get("/v1/messages", headers=people["viewer"]).get_json()["data"]
    assert [x["id"] for x in listed] == [m["id"]]
    assert messages_client.get(f"/v1/messages/{m['id']}", headers=people["viewer"]).status_code == 200
    r = messages_client.post("/v1/messages", json=body, headers=people["viewer"])
    assert r.status_code == 403 and err(r)["code"] == "insufficient_role"
    r = messages_client.post(f"/v1/messages/{m['id']}/cancel", headers=people["viewer"])
    assert r.status_code == 403 and err(r)["code"] == "insufficient_role"
    for method, path in (("GET", "/v1/messages"), ("GET", f"/v1/messages/{m['id']}"),
                         ("POST", "/v1/messages")):
        r = messages_client.open(path, method=method, json=body if method == "POST" else None,
                                 headers=people[None])
        assert r.status_code == 403 and err(r)["code"] == "not_a_member", (method, path)
    # without the header the developer is back in their own (empty) tenant
    own = {k: v for k, v in people["developer"].items() if k != "Payloom-Merchant"}
    assert messages_client.get("/v1/messages", headers=own).get_json()["data"] == []
    assert messages_client.get(f"/v1/messages/{m['id']}", headers=own).status_code == 404
