"""Members acting for a merchant on /v1/webhook_endpoints obey the role matrix (ADR 0030):
reading needs viewer, creating, changing, replaying and testing need developer. A user outside
any merchant context keeps managing their own endpoints."""
from __future__ import annotations

from tests.payments.conftest import make_merchant  # noqa: F401  (fixture)
from tests.support.identity import auth_headers, create_user_with_token
from tests.webhooks.test_endpoints_api import BASE, EVENTS, URL, app, client, fake_dns, wiring  # noqa: F401


def test_webhook_routes_follow_the_member_role_matrix(deps, client, make_merchant):  # noqa: F811
    m = make_merchant(("owner", "developer", "support", "viewer"))
    body = {"url": URL, "enabled_events": EVENTS}
    made = client.post(BASE, json=body, headers=m.headers("developer"))
    assert made.status_code == 201, made.get_json()
    ep = made.get_json()["id"]
    for role in ("viewer", "support"):
        h = m.headers(role)
        r = client.post(BASE, json={**body, "url": URL + f"/{role}"}, headers=h)
        assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_role"
        for path, payload in ((f"{BASE}/{ep}", {"description": "x"}), (f"{BASE}/{ep}/disable", None),
                              (f"{BASE}/{ep}/rotate_secret", {}), (f"{BASE}/{ep}/test", None)):
            r = client.post(path, json=payload, headers=h)
            assert r.status_code == 403, (role, path, r.get_json())
        assert client.delete(f"{BASE}/{ep}", headers=h).status_code == 403
        # reading is allowed to every member
        assert client.get(f"{BASE}/{ep}", headers=h).status_code == 200
        assert client.get(f"{BASE}/{ep}/deliveries", headers=h).status_code == 200
    assert client.post(f"{BASE}/{ep}/test", headers=m.headers("owner")).status_code == 202
    # a user outside any merchant context manages their own endpoints as before
    _, token = create_user_with_token(deps)
    own = client.post(BASE, json={**body, "url": URL + "/mine"}, headers=auth_headers(token))
    assert own.status_code == 201, own.get_json()
