"""``/v1/merchants/{mid}/branding`` through the merchants function: who may read and change it,
what it stores (a logo checked by its bytes, an SVG sanitised), hostile input answered with a
clear 4xx, and two admins changing different fields at once losing neither."""
from __future__ import annotations

import base64
import threading

import pytest

from shared.merchants.roles import RANK
from tests.merchants.conftest import assert_error, create_merchant, join, key_caller
from tests.merchants.test_branding_rules import HOSTILE_SVG, png

ORDER = ["viewer", "support", "developer", "admin", "owner"]


@pytest.fixture
def shop(user, client):
    owner = user()
    m = create_merchant(owner)
    team = {"owner": owner}
    for role in ORDER[:-1]:
        team[role] = user()
        join(owner, m["id"], team[role], role)
    return m["id"], team


def _key(owner, mid, client, scopes=("account:read",)):
    prj = owner.post(f"/{mid}/projects", json={"name": "k"}).get_json()["id"]
    r = owner.post(f"/{mid}/projects/{prj}/api_keys", json={"scopes": list(scopes)})
    assert r.status_code == 201, r.get_json()
    return key_caller(client, r.get_json()["secret"])


def test_set_read_and_clear_branding(shop, client):
    mid, team = shop
    empty = team["owner"].get(f"/{mid}/branding")
    assert empty.status_code == 200
    assert empty.get_json() == {"object": "merchant_branding", "merchant": mid, "display_name": None,
                                "logo": None, "brand_color": None, "brand_text_color": None,
                                "success_url": None, "cancel_url": None, "support_email": None,
                                "support_url": None, "updated": None}
    body = {"display_name": "Angkor Coffee ☕", "brand_color": "#1F3A93",
            "logo": base64.b64encode(png()).decode(),
            "success_url": "https://shop.example/thanks?order={PAYMENT_INTENT_ID}",
            "cancel_url": "http://localhost:3000/cart", "support_email": "Help@Shop.Example",
            "support_url": "https://shop.example/help"}
    r = team["admin"].post(f"/{mid}/branding", json=body)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["brand_color"] == "#1f3a93" and got["brand_text_color"] == "#ffffff"
    assert got["logo"] == "data:image/png;base64," + body["logo"]
    assert got["support_email"] == "help@shop.example" and got["updated"]
    assert {k: got[k] for k in ("display_name", "success_url", "cancel_url", "support_url")} == \
        {k: body[k] for k in ("display_name", "success_url", "cancel_url", "support_url")}
    assert team["viewer"].get(f"/{mid}/branding").get_json() == got
    # omitted fields keep their value; null and "" clear
    r = team["owner"].post(f"/{mid}/branding", json={"logo": None, "brand_color": "",
                                                      "display_name": "Angkor"})
    after = r.get_json()
    assert after["logo"] is None and after["brand_color"] is None and after["brand_text_color"] is None
    assert after["display_name"] == "Angkor" and after["success_url"] == body["success_url"]


def test_an_svg_logo_is_stored_sanitised(shop):
    mid, team = shop
    r = team["admin"].post(f"/{mid}/branding",
                           json={"logo": "data:image/svg+xml;base64," + base64.b64encode(HOSTILE_SVG).decode()})
    assert r.status_code == 200, r.get_json()
    uri = team["viewer"].get(f"/{mid}/branding").get_json()["logo"]
    assert uri.startswith("data:image/svg+xml;base64,")
    stored = base64.b64decode(uri.split(",", 1)[1]).decode().lower()
    assert "<rect" in stored
    assert not any(bad in stored for bad in ("script", "onload", "javascript", "evil.example",
                                             "foreignobject"))


def test_who_may_read_and_change_branding(shop, user, client):
    mid, team = shop
    stranger = user()
    other = create_merchant(stranger, business_name="Other Co")["id"]
    key = _key(team["owner"], mid, client)
    other_key = _key(stranger, other, client)
    for role in ORDER:
        assert team[role].get(f"/{mid}/branding").status_code == 200, role
        r = team[role].post(f"/{mid}/branding", json={"display_name": f"by {role}"})
        if RANK[role] >= RANK["admin"]:
            assert r.status_code == 200 and r.get_json()["display_name"] == f"by {role}"
        else:
            assert_error(r, 403, "insufficient_role")
    assert key.get(f"/{mid}/branding").status_code == 200           # account:read
    assert_error(key.post(f"/{mid}/branding", json={"display_name": "key"}), 403,
                 "principal_not_allowed")                            # keys never change it
    assert_error(_key(team["owner"], mid, client, ("payments:read",)).get(f"/{mid}/branding"),
                 403, "missing_scope")
    for caller in (stranger, other_key):
        assert_error(caller.get(f"/{mid}/branding"), 403, "not_a_member")
    assert_error(stranger.post(f"/{mid}/branding", json={"display_name": "x"}), 403, "not_a_member")
    assert_error(team["owner"].get(f"/{other}/branding"), 403, "not_a_member")
    assert_error(team["owner"].get("/mch_doesnotexist00/branding"), 403, "not_a_member")
    # the other merchant's branding never changed
    assert stranger.get(f"/{other}/branding").get_json()["display_name"] is None
    assert team["viewer"].get(f"/{mid}/branding").get_json()["display_name"] == "by owner"


@pytest.mark.parametrize("body,code,param", [
    ({}, "parameter_invalid", None),
    ({"colour": "#000000"}, "parameter_unknown", "colour"),
    ({"brand_color": "#fafafa"}, "color_contrast_too_low", "brand_color"),
    ({"brand_color": "blue;} body{display:none"}, None, "brand_color"),
    ({"success_url": "http://shop.example/ok"}, "url_invalid", "success_url"),
    ({"cancel_url": "javascript:alert(1)"}, "url_invalid", "cancel_url"),
    ({"support_url": "https://user:pw@shop.example/"}, "url_invalid", "support_url"),
    ({"success_url": "https://shop.example/" + "a" * 2100}, "parameter_invalid", "success_url"),
    ({"support_email": "not-an-email"}, "parameter_invalid", "support_email"),
    ({"display_name": "x" * 101}, "parameter_invalid", "display_name"),
    ({"display_name": 12}, "parameter_invalid", "display_name"),
    ({"display_name": "Angkor\u0000Coffee"}, "parameter_invalid", "display_name"),
    ({"display_name": "Coffee \u202egnp.exe"}, "parameter_invalid", "display_name"),
    ({"display_name": "\u200b\u2060\u00ad"}, "parameter_invalid", "display_name"),
    ({"logo": "@@not base64@@"}, "logo_invalid", "logo"),
    ({"logo": base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 64).decode()}, "logo_invalid", "logo"),
    ({"logo": base64.b64encode(b"<!DOCTYPE x><svg/>").decode()}, "logo_invalid", "logo"),
    ({"logo": base64.b64encode(png() + b"\0" * 16_400).decode()}, "logo_too_large", "logo"),
    ({"logo": "A" * 30_000}, "parameter_invalid", "logo"),
])
def test_hostile_input_is_a_clear_4xx(shop, body, code, param):
    mid, team = shop
    body_ = assert_error(team["admin"].post(f"/{mid}/branding", json=body), 400, code)
    assert body_["error"]["param"] == param
    assert team["admin"].get(f"/{mid}/branding").get_json()["updated"] is None   # nothing stored


def test_malformed_requests_are_refused(shop):
    mid, team = shop
    r = team["admin"].client.open(f"/v1/merchants/{mid}/branding", method="POST", data="{not json",
                                  headers={**team["admin"].headers,
                                           "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500 and set(r.get_json()) == {"error"}
    r = team["admin"].client.open(f"/v1/merchants/{mid}/branding", method="POST", data="x=1",
                                  headers={**team["admin"].headers,
                                           "Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= r.status_code < 500
    assert_error(team["admin"].call("DELETE", f"/{mid}/branding"), 405)


def test_two_admins_changing_different_fields_at_once_keep_both(shop):
    mid, team = shop
    results = []

    def change(caller, field, value):
        r = caller.post(f"/{mid}/branding", json={field: value})
        results.append(r.status_code)

    for round_ in range(3):
        threads = [threading.Thread(target=change, args=(team["owner"], "display_name", f"n{round_}")),
                   threading.Thread(target=change, args=(team["admin"], "support_email",
                                                         f"s{round_}@shop.example"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = team["viewer"].get(f"/{mid}/branding").get_json()
        assert (got["display_name"], got["support_email"]) == (f"n{round_}", f"s{round_}@shop.example")
    assert results == [200] * 6
