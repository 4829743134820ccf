"""The SDK against the real API (in-process gateway on the emulators, real API keys):
resources, pagination, typed errors, idempotency across a dropped connection, modes and
tenant isolation, a wallet payment refunded, webhook endpoints."""
from __future__ import annotations

import http.server
import socket
import threading
import pytest
import requests

import payloom
from shared.ledger import audit
from tests.ledger.conftest import fund
from tests.support.identity import create_user_with_token

FEES = {"fee_schedule": {"wallet": {"percent_bps": 250, "fixed": {"USD": 30}}}}


def intents_in_firestore(deps, merchant_id: str) -> list[dict]:
    """The merchant's intent documents (each test has its own project: a scan is small)."""
    docs = (s.to_dict() for s in deps.db.collection("payment_intents").stream())
    return [d for d in docs if d["tenant"] == merchant_id]


# --- resources and pagination ---------------------------------------------------------------
def test_create_retrieve_modify_list_and_auto_paginate_intents(sdk):
    client, mch = sdk()
    created = [client.PaymentIntent.create(amount=100 + i, currency="USD",
                                           metadata={"order": str(i)}) for i in range(7)]
    first = created[0]
    assert isinstance(first, payloom.PaymentIntent) and first.object == "payment_intent"
    assert first.merchant == mch and first.livemode is False and first.amount == 100
    assert first.client_secret and first.status == "requires_payment_method"
    assert first.last_response.status == 201 and first.last_response.request_id

    got = client.PaymentIntent.retrieve(first.id)
    assert got.id == first.id and got.metadata.order == "0" and "client_secret" not in got
    changed = got.modify(description="first order")
    assert changed is got and got.description == "first order"
    assert client.PaymentIntent.retrieve(first.id).description == "first order"

    page = client.PaymentIntent.list(limit=3)
    assert isinstance(page, payloom.ListObject) and len(page) == 3 and page.has_more is True
    assert [i.id for i in page] == [c.id for c in reversed(created)][:3]    # newest first
    every = list(page.auto_paging_iter())
    assert [i.id for i in every] == [c.id for c in reversed(created)]
    assert len({i.id for i in every}) == 7 and all(isinstance(i, payloom.PaymentIntent) for i in every)
    # filters are kept on every page
    created[1].cancel()
    created[4].cancel(cancellation_reason="duplicate")
    canceled = list(client.PaymentIntent.list(limit=1, status="canceled").auto_paging_iter())
    assert [i.id for i in canceled] == [created[4].id, created[1].id]
    assert canceled[0].cancellation_reason == "duplicate"
    # a page past the end is empty, not an error
    last = client.PaymentIntent.list(limit=10)
    assert last.has_more is False and last.next_page().is_empty


def test_real_api_errors_are_typed_with_code_and_param(sdk):
    client, _ = sdk()
    with pytest.raises(payloom.InvalidRequestError) as info:
        client.PaymentIntent.create(amount="12.50", currency="USD")     # floats/strings refused
    e = info.value
    assert (e.http_status, e.code, e.param) == (400, "parameter_invalid", "amount")
    assert e.request_id and e.request_id.startswith("req_")
    with pytest.raises(payloom.InvalidRequestError) as info:
        client.PaymentIntent.create(amount=5, currency="USD", colour="red")
    assert (info.value.code, info.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(payloom.InvalidRequestError) as info:
        client.PaymentIntent.retrieve("pi_doesnotexist0000000")
    assert (info.value.http_status, info.value.code) == (404, "resource_missing")

    reader, _ = sdk(scopes=("payments:read",))
    with pytest.raises(payloom.PermissionError) as info:
        reader.PaymentIntent.create(amount=5, currency="USD")
    assert (info.value.http_status, info.value.code) == (403, "missing_scope")

    bad = payloom.Client("sk_test_" + "Z" * 43, api_base=client.api_base)
    with pytest.raises(payloom.AuthenticationError) as info:
        bad.PaymentIntent.list()
    assert info.value.http_status == 401


def test_an_idempotency_key_replays_and_refuses_other_parameters(sdk, deps):
    client, mch = sdk()
    a = client.PaymentIntent.create(amount=700, currency="USD", idempotency_key="order-700")
    b = client.PaymentIntent.create(amount=700, currency="USD", idempotency_key="order-700")
    assert a.id == b.id
    assert a.last_response.idempotent_replayed is False and b.last_response.idempotent_replayed is True
    assert a.client_secret and b.client_secret is None     # a secret shown once is not replayed
    with pytest.raises(payloom.IdempotencyError) as info:
        client.PaymentIntent.create(amount=701, currency="USD", idempotency_key="order-700")
    assert (info.value.http_status, info.value.code) == (409, "idempotency_key_reused")
    assert len(intents_in_firestore(deps, mch)) == 1


# --- a connection dropped after the server acted ------------------------------------------------
class DroppingProxy:
    """Forwards to the gateway; for the first ``drops`` POSTs it lets the gateway act, then
    closes the client's connection without answering (the response is lost on the way)."""

    def __init__(self, upstream: str, drops: int = 1):
        self.upstream, self.drops, self.seen = upstream, drops, []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                proxy.seen.append((self.command, self.headers.get("Idempotency-Key")))
                r = requests.request(self.command, proxy.upstream + self.path, data=body,
                                     headers=headers, timeout=60, allow_redirects=False)
                if self.command == "POST" and proxy.drops > 0:
                    proxy.drops -= 1
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_retry_after_a_dropped_connection_creates_one_object(sdk, deps, inprocess_gateway):
    client, mch = sdk()
    proxy = DroppingProxy(inprocess_gateway, drops=1)
    try:
        via = payloom.Client(client.api_key, api_base=proxy.url, sleep=lambda s: None)
        intent = via.PaymentIntent.create(amount=4242, currency="USD")
    finally:
        proxy.close()
    posts = [key for method, key in proxy.seen if method == "POST"]
    assert len(posts) == 2 and posts[0] == posts[1]                  # the same key, retried
    assert intent.last_response.attempts == 2
    assert intent.last_response.idempotent_replayed is True          # the first one's answer
    stored = intents_in_firestore(deps, mch)
    assert [d["id"] for d in stored] == [intent.id]                  # created once

    # without retries the caller sees the failure, and can retry with the key it was given
    proxy = DroppingProxy(inprocess_gateway, drops=1)
    try:
        once = payloom.Client(client.api_key, api_base=proxy.url, max_network_retries=0)
        with pytest.raises(payloom.APIConnectionError) as info:
            once.PaymentIntent.create(amount=5, currency="USD")
        again = once.PaymentIntent.create(amount=5, currency="USD",
                                          idempotency_key=info.value.idempotency_key)
    finally:
        proxy.close()
    assert again.last_response.idempotent_replayed is True
    assert len(intents_in_firestore(deps, mch)) == 2


# --- modes and tenants -----------------------------------------------------------------------
def test_test_keys_never_see_live_objects_nor_other_merchants(sdk, make_merchant):
    test_client, mch = sdk()
    live_client, _ = sdk(merchant=mch, livemode=True)
    other_client, _ = sdk()
    assert (test_client.livemode, live_client.livemode) == (False, True)
    live = live_client.PaymentIntent.create(amount=10, currency="USD")
    mine = test_client.PaymentIntent.create(amount=11, currency="USD")
    assert live.livemode is True and mine.livemode is False
    for client, intent in ((test_client, live), (live_client, mine), (other_client, mine),
                           (other_client, live)):
        with pytest.raises(payloom.InvalidRequestError) as info:
            client.PaymentIntent.retrieve(intent.id)
        assert info.value.http_status == 404
        with pytest.raises(payloom.InvalidRequestError):
            client.PaymentIntent.cancel(intent.id)
    assert [i.id for i in test_client.PaymentIntent.list().auto_paging_iter()] == [mine.id]
    assert [i.id for i in live_client.PaymentIntent.list().auto_paging_iter()] == [live.id]
    assert list(other_client.PaymentIntent.list().auto_paging_iter()) == []
    # a key acts only for its own merchant
    with pytest.raises(payloom.PermissionError):
        test_client.PaymentIntent.list(merchant=make_merchant(("owner",)).id)
    # a page cursor from another tenant is refused, not followed
    with pytest.raises(payloom.InvalidRequestError) as info:
        other_client.PaymentIntent.list(starting_after=mine.id)
    assert info.value.param == "starting_after"


def test_a_user_token_with_merchant_and_mode_headers(inprocess_gateway, make_merchant):
    m = make_merchant(("owner", "viewer"))
    owner = payloom.Client(m.users["owner"][1], api_base=inprocess_gateway, merchant=m.id)
    viewer = payloom.Client(m.users["viewer"][1], api_base=inprocess_gateway, merchant=m.id)
    live_owner = payloom.Client(m.users["owner"][1], api_base=inprocess_gateway, merchant=m.id,
                                mode="live")
    made = owner.PaymentIntent.create(amount=50, currency="USD")
    assert made.merchant == m.id and made.livemode is False
    assert viewer.PaymentIntent.retrieve(made.id).id == made.id
    with pytest.raises(payloom.PermissionError):
        viewer.PaymentIntent.create(amount=50, currency="USD")            # role too low
    with pytest.raises(payloom.InvalidRequestError):
        live_owner.PaymentIntent.retrieve(made.id)                        # other mode: 404
    assert live_owner.PaymentIntent.create(amount=1, currency="USD").livemode is True


# --- a wallet payment refunded through the SDK -------------------------------------------------
def test_wallet_payment_then_partial_and_full_refund(deps, sdk, make_merchant):
    m = make_merchant(("owner",), settings=FEES)
    merchant, _ = sdk(merchant=m.id)
    uid, token = create_user_with_token(deps)
    fund(deps, uid, 5_000)
    payer = payloom.Client(token, api_base=merchant.api_base)

    intent = merchant.PaymentIntent.create(amount=1_000, currency="USD")
    paid = payer.PaymentIntent.pay(intent.id, client_secret=intent.client_secret)
    assert paid.status == "succeeded" and paid.amount_received == 1_000
    with pytest.raises(payloom.InvalidRequestError) as info:
        merchant.Refund.create(payment_intent=intent.id, amount=1_001)
    assert info.value.param == "amount"
    part = merchant.Refund.create(payment_intent=intent.id, amount=400, reason="requested_by_customer")
    assert isinstance(part, payloom.Refund)
    assert (part.status, part.amount, part.method, part.ledger.asset) == ("succeeded", 400, "wallet", "USD")
    rest = merchant.Refund.create(payment_intent=intent.id)
    assert rest.amount == 600
    listed = merchant.Refund.list_for(intent.id)
    assert sorted(r.id for r in listed) == sorted([part.id, rest.id])
    assert merchant.Refund.retrieve(part.id).amount == 400
    assert merchant.PaymentIntent.retrieve(intent.id).amount_refunded == 1_000
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == []


# --- webhook endpoints ------------------------------------------------------------------------
def test_webhook_endpoints_secret_rotation_and_test_delivery(sdk):
    client, _ = sdk(scopes=("webhooks:read", "webhooks:write"))
    ep = client.WebhookEndpoint.create(url="http://127.0.0.1:9/hook",
                                       enabled_events=["payment_intent.succeeded"])
    assert ep.secret.startswith("whsec_") and ep.status == "enabled"
    assert "secret" not in client.WebhookEndpoint.retrieve(ep.id)     # shown once only
    rotated = client.WebhookEndpoint.rotate_secret(ep.id, expires_in_seconds=3600)
    assert rotated.secret.startswith("whsec_") and rotated.secret != ep.secret
    assert rotated.previous_secret_expires_at
    assert ep.disable().status == "disabled" and ep.enable().status == "enabled"
    delivery = ep.send_test()
    assert isinstance(delivery, payloom.WebhookDelivery) and delivery.endpoint == ep.id
    listed = ep.list_deliveries()
    assert delivery.id in [d.id for d in listed.auto_paging_iter()]
    assert client.WebhookEndpoint.retrieve_delivery(ep.id, delivery_id=delivery.id).id == delivery.id
    assert [e.id for e in client.WebhookEndpoint.list().auto_paging_iter()] == [ep.id]
    gone = client.WebhookEndpoint.delete(ep.id)
    assert gone.deleted is True
    with pytest.raises(payloom.InvalidRequestError):
        client.WebhookEndpoint.retrieve(ep.id)



# --- a user sets up a merchant, a project and its key -------------------------------------------
def test_a_user_sets_up_a_merchant_project_and_key_through_the_sdk(deps, inprocess_gateway):
    _, token = create_user_with_token(deps)
    user = payloom.Client(token, api_base=inprocess_gateway)
    mch = user.Merchant.create(business_name="Shop", country="KH", settlement_asset="USD")
    assert isinstance(mch, payloom.Merchant) and mch.id.startswith("mch_")
    team = payloom.Client(token, api_base=inprocess_gateway, merchant=mch.id)
    assert team.Merchant.retrieve_settings(mch.id).object == "merchant_settings"
    project = team.Project.create(name="web shop")
    assert isinstance(project, payloom.Project) and project.merchant == mch.id
    assert [p.id for p in team.Project.list().auto_paging_iter()] == [project.id]
    key = team.Project.create_api_key(project.id, name="server",
                                      scopes=["payments:read", "payments:write"])
    assert key.secret.startswith("sk_test_") and key.project == project.id

    shop = payloom.Client(key.secret, api_base=inprocess_gateway)
    intent = shop.PaymentIntent.create(amount=5, currency="USD")
    assert intent.merchant == mch.id and intent.project_id == project.id
    listed = team.ApiKey.list(project=project.id)
    assert [k.id for k in listed] == [key.id] and "secret" not in listed.data[0]

    rolled = team.ApiKey.roll(key.id, expires_in_seconds=0)
    assert rolled.secret != key.secret
    with pytest.raises(payloom.AuthenticationError):
        shop.PaymentIntent.retrieve(intent.id)                    # the old secret stopped
    fresh = payloom.Client(rolled.secret, api_base=inprocess_gateway)
    assert fresh.PaymentIntent.retrieve(intent.id).id == intent.id
    team.ApiKey.revoke(rolled.id)
    with pytest.raises(payloom.AuthenticationError):
        fresh.PaymentIntent.retrieve(intent.id)

    _, stranger = create_user_with_token(deps)
    outsider = payloom.Client(stranger, api_base=inprocess_gateway)
    with pytest.raises(payloom.PermissionError):
        outsider.Project.list(merchant=mch.id)
    with pytest.raises(ValueError):
        outsider.Project.list()                                   # no merchant to act for
