"""Merchants tests: the ``merchants`` function on the Firestore emulator, real users (password
login), real API keys, invitation emails through notify to the loopback email API."""
from __future__ import annotations

import dataclasses

import pytest

from infra.local import email_sim
from shared.merchants import context
from tests.support.identity import (
    auth_headers,
    create_user_with_token,
    deliver_outbound,
)

BASE = "/v1/merchants"


@pytest.fixture(scope="session")
def email_server():
    server, _ = email_sim.start()
    yield server
    server.stop()


@pytest.fixture
def wiring(deps, email_server):
    from shared.notify.settings import NotifySettings
    from tests.support.identity import fast_identity_settings
    deps.extras["identity.settings"] = fast_identity_settings(
        email_api_url=email_server.base_url, email_api_key="test-key")
    deps.extras["notify.settings"] = NotifySettings(email_api_url=email_server.base_url,
                                                    email_api_key="test-key")
    context.CACHE.clear()
    return deps


@pytest.fixture
def client(wiring, function_client):
    return function_client("merchants")


@pytest.fixture
def inbox(wiring, email_server):
    def read(to: str) -> list[dict]:
        deliver_outbound(wiring)
        return email_server.inbox(to)
    return read


@dataclasses.dataclass
class Caller:
    client: object
    id: str
    email: str | None
    headers: dict

    def call(self, method, path="", json=None, **headers):
        return self.client.open(BASE + path, method=method, json=json,
                                headers={**self.headers, **headers})

    def get(self, path="", **h):
        return self.call("GET", path, **h)

    def post(self, path="", json=None, **h):
        return self.call("POST", path, json=json if json is not None else {}, **h)

    def delete(self, path="", **h):
        return self.call("DELETE", path, **h)


@pytest.fixture
def user(wiring, client):
    """``user(verified=True)``: a real signed-in user (email marked verified when asked)."""
    def make(verified: bool = True, email: str | None = None) -> Caller:
        user_id, token = create_user_with_token(wiring, email=email)
        doc = wiring.db.collection("users").document(user_id)
        if verified:
            doc.update({"email_verified": True})
        return Caller(client, user_id, doc.get().get("email"), auth_headers(token))
    return make


def key_caller(client, secret: str) -> Caller:
    return Caller(client, "key", None, auth_headers(secret))


def create_merchant(owner: Caller, **body) -> dict:
    body = {"business_name": "Angkor Coffee", "country": "KH", "settlement_asset": "USD", **body}
    r = owner.post("", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def join(owner: Caller, merchant_id: str, member: Caller, role: str) -> dict:
    """Invite ``member`` with ``role`` and accept as the verified invited email."""
    r = owner.post(f"/{merchant_id}/invitations", json={"email": member.email, "role": role})
    assert r.status_code == 201, r.get_json()
    r = member.post(f"/invitations/{r.get_json()['id']}/accept", json={})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def assert_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:400])
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "code", "message", "param"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body
