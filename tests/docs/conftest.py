"""Docs tests: a merchant with a test-mode API key (the payments tests' fixtures), and the
Python SDK importable from ``sdk/python`` (as in tests/sdk)."""
from __future__ import annotations

import sys

import pytest

from shared.platform import manifest
from tests.payments.conftest import api_key, make_merchant  # noqa: F401  (fixtures reused)

SDK = manifest.REPO_ROOT / "sdk" / "python"
if str(SDK) not in sys.path:
    sys.path.insert(0, str(SDK))


@pytest.fixture
def test_key(make_merchant, api_key):  # noqa: F811
    """A merchant's test-mode secret key (``sk_test_…``) with payments scopes."""
    merchant = make_merchant(("owner",))
    return api_key(merchant.id)


@pytest.fixture
def docs(function_client, deps):
    return function_client("docs")
