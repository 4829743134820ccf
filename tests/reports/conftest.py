"""Fixtures for reports: the payments fixtures (merchants with every role, payers, API keys)
and a test client of the ``reports`` function (its manifest entry when present; otherwise the
same router booted the way its main.py boots it)."""
from __future__ import annotations

import pytest

from tests.payments.conftest import api_key, make_merchant, merchant, payer, payments  # noqa: F401

REPORTS = "/v1/reports"


@pytest.fixture
def reports(function_client):
    from shared.platform import manifest
    try:
        manifest.function("reports")
        if (manifest.REPO_ROOT / "functions" / "reports" / "main.py").exists():
            return function_client("reports")
        raise KeyError("reports")
    except Exception:  # noqa: BLE001 — the coordinator adds the manifest entry
        import flask

        from shared.identity.sessions.authn import identity_authenticator
        from shared.merchants.context import merchant_context
        from shared.platform.entry import boot
        from shared.reports.http import api

        app = flask.Flask("reports")
        with app.app_context():
            boot("reports", authenticators=[identity_authenticator], resolvers=[merchant_context])

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "HEAD", "OPTIONS"])
        @app.route("/<path:path>", methods=["GET", "POST", "HEAD", "OPTIONS"])
        def handle(path):
            return api(flask.request)
        return app.test_client()
