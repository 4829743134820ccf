"""Every merchant route × every kind of caller, from outside (HTTP through the function).

Callers: each role of the merchant, a user of ANOTHER merchant (its owner), the merchant's own
API key (scopes account:read + api_keys:read) and another merchant's key. Expected: the least
role of the route's action or higher succeeds (2xx), lower roles get 403 insufficient_role,
outsiders and other merchants' keys get 403 not_a_member (the same answer as a merchant that
does not exist), and the merchant's key passes read routes only (403 principal_not_allowed on
the others). Mutating calls that succeed get a fresh target each time.
"""
from __future__ import annotations

import itertools

from shared.merchants.roles import RANK
from tests.merchants.conftest import assert_error, create_merchant, join, key_caller

ORDER = ["viewer", "support", "developer", "admin", "owner"]
_n = itertools.count()


def test_every_route_for_every_caller(user, client):
    owner = user()
    m = create_merchant(owner)
    mid = m["id"]
    team = {"owner": owner}
    for role in ORDER[:-1]:
        team[role] = user()
        join(owner, mid, team[role], role)
    stranger = user()
    other = create_merchant(stranger, business_name="Other Co")

    def project():
        r = owner.post(f"/{mid}/projects", json={"name": f"p{next(_n)}"})
        assert r.status_code == 201, r.get_json()
        return r.get_json()["id"]

    def key(merchant_id=mid, by=owner, scopes=("account:read", "api_keys:read")):
        r = by.post(f"/{merchant_id}/projects", json={"name": "k"})
        prj = r.get_json()["id"]
        r = by.post(f"/{merchant_id}/projects/{prj}/api_keys", json={"scopes": list(scopes)})
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    def viewer_target():
        u = user()
        join(owner, mid, u, "viewer")
        return u.id

    def invitation():
        r = owner.post(f"/{mid}/invitations", json={"email": f"x{next(_n)}@example.org", "role": "viewer"})
        return r.get_json()["id"]

    fixed_project, fixed_key = project(), key()
    merchant_key = key_caller(client, fixed_key["secret"])
    other_key = key_caller(client, key(other["id"], stranger)["secret"])

    # (method, path factory, body, least role, key may call)
    routes = [
        ("GET", lambda: f"/{mid}", None, "viewer", True),
        ("POST", lambda: f"/{mid}", {"business_name": "Renamed"}, "admin", False),
        ("GET", lambda: f"/{mid}/settings", None, "admin", True),
        ("POST", lambda: f"/{mid}/settings", {"payment_tolerance_bps": 50}, "admin", False),
        ("GET", lambda: f"/{mid}/branding", None, "viewer", True),
        ("POST", lambda: f"/{mid}/branding", {"display_name": "Rebranded"}, "admin", False),
        ("GET", lambda: f"/{mid}/members", None, "viewer", False),
        ("GET", lambda: f"/{mid}/members/{owner.id}", None, "viewer", False),
        ("POST", lambda: f"/{mid}/members/{viewer_target()}", {"role": "support"}, "admin", False),
        ("DELETE", lambda: f"/{mid}/members/{viewer_target()}", None, "admin", False),
        ("POST", lambda: f"/{mid}/invitations", lambda: {"email": f"i{next(_n)}@example.org", "role": "viewer"}, "admin", False),
        ("GET", lambda: f"/{mid}/invitations", None, "admin", False),
        ("DELETE", lambda: f"/{mid}/invitations/{invitation()}", None, "admin", False),
        ("POST", lambda: f"/{mid}/projects", {"name": "new"}, "admin", False),
        ("GET", lambda: f"/{mid}/projects", None, "viewer", True),
        ("GET", lambda: f"/{mid}/projects/{fixed_project}", None, "viewer", True),
        ("POST", lambda: f"/{mid}/projects/{fixed_project}", {"name": "renamed"}, "admin", False),
        ("DELETE", lambda: f"/{mid}/projects/{project()}", None, "admin", False),
        ("POST", lambda: f"/{mid}/projects/{fixed_project}/api_keys", {"scopes": ["payments:read"]}, "developer", False),
        ("GET", lambda: f"/{mid}/api_keys", None, "developer", True),
        ("GET", lambda: f"/{mid}/api_keys/{fixed_key['id']}", None, "developer", True),
        ("POST", lambda: f"/{mid}/api_keys/{key()['id']}/roll", {}, "developer", False),
        ("DELETE", lambda: f"/{mid}/api_keys/{key()['id']}", None, "developer", False),
    ]
    failures, checked = [], 0

    def expect(caller_name, caller, method, path, body, status, code=None):
        nonlocal checked
        checked += 1
        b = body() if callable(body) else body
        r = caller.call(method, path, json=b if method != "GET" and method != "DELETE" else None)
        ok = (200 <= r.status_code < 300) if status == "2xx" else r.status_code == status
        if ok and code is not None:
            ok = r.get_json()["error"]["code"] == code
        if ok and r.status_code >= 400:
            assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}
        if not ok:
            failures.append(f"{caller_name} {method} {path}: {r.status_code} {r.get_data(as_text=True)[:160]}")

    for method, path_of, body, least, keys_ok in routes:
        for role in ORDER:  # lowest first: refusals before any success changes state
            if RANK[role] >= RANK[least]:
                expect(role, team[role], method, path_of(), body, "2xx")
            else:
                expect(role, team[role], method, path_of(), body, 403, "insufficient_role")
        expect("stranger", stranger, method, path_of(), body, 403, "not_a_member")
        expect("other_key", other_key, method, path_of(), body, 403,
               "not_a_member" if keys_ok else "principal_not_allowed")
        if keys_ok:
            expect("merchant_key", merchant_key, method, path_of(), body, "2xx")
        else:
            expect("merchant_key", merchant_key, method, path_of(), body, 403, "principal_not_allowed")
    assert not failures, "\n".join(failures)
    assert checked == len(routes) * 8


def test_user_level_routes_refuse_api_keys(user, client):
    owner = user()
    mid = create_merchant(owner)["id"]
    prj = owner.post(f"/{mid}/projects", json={"name": "p"}).get_json()["id"]
    secret = owner.post(f"/{mid}/projects/{prj}/api_keys",
                        json={"scopes": ["account:read"]}).get_json()["secret"]
    key = key_caller(client, secret)
    assert_error(key.post("", json={"business_name": "x", "country": "KH", "settlement_asset": "USD"}),
                 403, "principal_not_allowed")
    assert_error(key.get(""), 403, "principal_not_allowed")
    assert_error(key.post("/invitations/inv_" + "a" * 24 + "/accept", json={}), 403,
                 "principal_not_allowed")


def test_a_key_without_the_scope_is_refused(user, client):
    owner = user()
    mid = create_merchant(owner)["id"]
    prj = owner.post(f"/{mid}/projects", json={"name": "p"}).get_json()["id"]
    secret = owner.post(f"/{mid}/projects/{prj}/api_keys",
                        json={"scopes": ["payments:read"]}).get_json()["secret"]
    key = key_caller(client, secret)
    assert_error(key.get(f"/{mid}"), 403, "missing_scope")
    assert_error(key.get(f"/{mid}/api_keys"), 403, "missing_scope")
