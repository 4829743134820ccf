"""Every route of ``invoices`` and ``payment_links``, hit with hostile bodies, path values and
queries as a stranger, as a merchant's owner and with a garbage token: always < 500, always the
error envelope (the platform's sweep uses a user outside any merchant context, which most of
these routes refuse before reading anything; this one gets past the merchant check)."""
from __future__ import annotations

import re

from shared.invoices.http import invoices_api, links_api
from shared.platform.router import SERVICE

BODIES = [b"{", b"[]", b"null", b"123", b"{}", b'{"amount": "1e309"}', b'{"amount": -1}',
          b'{"lines": [{"description": "x", "quantity": 1e308, "unit_amount": 1}]}',
          b'{"customer": {"email": "a@b.co"}, "currency": "USD", "lines": ' + b"[" * 70 + b"]" * 70 + b"}",
          b'{"currency": "USD", "custom_amount": {"minimum": 9223372036854775808, "maximum": 1}}',
          b'{"client_key": "' + b"k" * 5000 + b'"}', b"\xff\xfe\x00"]
PATHS = ["x", "..", "in_" + "0" * 24, "plink_" + "0" * 24, "a" * 300]
QUERIES = ["", "?limit=-5", "?starting_after=" + "z" * 500, "?status=nope", "?active=maybe",
           "?label=" + "<" * 100, "?unknown=1"]


def _sane(resp, what):
    assert resp.status_code < 500, f"{what} -> {resp.status_code} {resp.data[:300]!r}"
    if resp.status_code >= 400:
        body = resp.get_json(silent=True)
        assert body and set(body["error"]) == {"type", "code", "message", "param"}, what


def test_hostile_input_never_500s(deps, invoices_client, links_client, merchant):
    checked = 0
    for router, client, prefix in ((invoices_api, invoices_client, "/v1/invoices"),
                                   (links_api, links_client, "/v1/payment_links")):
        for route in router.routes:
            if route.auth == SERVICE:
                continue
            base = prefix + ("" if route.path == "/" else route.path)
            for headers in ({}, merchant.headers(), {"Authorization": "Bearer garbage"}):
                for value in PATHS if "{" in base else ["-"]:
                    path = re.sub(r"\{\w+\}", value, base)
                    if route.method == "GET":
                        for q in QUERIES:
                            _sane(client.get(path + q, headers=headers), f"GET {path}{q}")
                    else:
                        for body in BODIES:
                            r = client.open(path, method=route.method, data=body, headers=headers,
                                            content_type="application/json")
                            _sane(r, f"{route.method} {path} {body[:40]!r}")
                    checked += 1
    assert checked > 50
