"""Hostile input from a SIGNED-IN member never becomes a 500 (tests/functions/test_no_500s hits
every page as a stranger, who is only ever sent to the sign-in page): every route with hostile
path values, queries and forms, with a valid CSRF token so the handlers really run."""
from __future__ import annotations

import re

from shared.dashboard.http import pages
from tests.functions.test_no_500s import PATH_VALUES, QUERIES

FORMS = [{}, {"amount": "-1", "idem": "x"}, {"amount": "1e309", "idem": "k" * 30, "confirm": "yes"},
         {"merchant": "mch_" + "z" * 70, "mode": "%00"}, {"scopes": ["*"], "project": "../x"},
         {"event": "evt_" + "a" * 300, "grace": "99999999999"}, {"email": "a" * 5000},
         {"currency": "XXX", "unit_amount": "1.5", "quantity": "0", "idem": "i" * 20,
          "email": "a@b.co", "description": "x"},
         {"active": "maybe", "confirm": "yes"}, {"date": "2026-02-30", "next": "//evil"}]


def _sane(resp, what):
    assert resp.status_code < 500, f"{what} -> {resp.status_code}"
    if resp.status_code >= 400:
        assert "Traceback" not in resp.get_data(as_text=True), what


def test_every_route_as_a_signed_in_owner(member):
    b = member("owner")
    checked = 0
    for route in pages.routes:
        if route.path in ("/signout",):
            continue
        for value in PATH_VALUES if "{" in route.path else ["-"]:
            path = re.sub(r"\{\w+\}", value, route.path)
            if route.method == "GET":
                for q in QUERIES + ["?status=%ff&email=%00&from=9999-99-99", "?date=1999-01-01",
                                    "?from=2020-01-01&to=2026-12-31", "?id=pi_%2e%2e"]:
                    _sane(b.get(path + q), f"GET {path}{q}")
            else:
                for form in FORMS:
                    _sane(b.post(path, form), f"POST {path} {form}")
            checked += 1
    assert checked > 40
    assert b.get("/payments").status_code == 200        # still signed in, session intact
