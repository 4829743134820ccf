"""Fixtures for payment intent tests: merchants with members of each role, the payments
function's test client, merchant API keys. Merchants are written in helper M's document shapes
(``merchants/{mch}``, ``merchant_members/{mch}:{usr}``, ``merchant_settings/{mch}``) so these
tests do not depend on M's HTTP routes; the membership is still checked by the real
``merchant_context`` resolver on every request."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shared.merchants import store
from shared.platform.ids import new_id
from shared.platform.uow import run_unit
from tests.support.identity import auth_headers, create_user_with_token

__all__ = ["Merchant", "err"]


def err(resp) -> dict[str, Any]:
    return resp.get_json()["error"]


@dataclasses.dataclass
class Merchant:
    id: str
    users: dict[str, tuple[str, str]]   # role -> (user id, token)

    def headers(self, role: str = "owner", *, live: bool = False, **extra) -> dict[str, str]:
        h = auth_headers(self.users[role][1], **{"Payloom-Merchant": self.id}, **extra)
        if live:
            h["Payloom-Mode"] = "live"
        return h


def _member(deps, mch: str, uid: str, role: str) -> None:
    now = deps.clock.now()
    store.member_ref(deps.db, mch, uid).set({"merchant_id": mch, "user_id": uid, "role": role,
                                             "email": None, "created_at": now, "updated_at": now})


@pytest.fixture
def make_merchant(deps):
    def make(roles=("owner",), settings: dict[str, Any] | None = None) -> Merchant:
        mch = new_id("mch")
        now = deps.clock.now()
        users = {}
        for role in roles:
            users[role] = create_user_with_token(deps)
            _member(deps, mch, users[role][0], role)
        store.merchant_ref(deps.db, mch).set({
            "id": mch, "business_name": "Shop", "country": "KH", "settlement_asset": "USD",
            "status": "active", "created_by": users[roles[0]][0], "created_at": now,
            "updated_at": now, "owners": [u for r, (u, _) in users.items() if r == "owner"],
            "member_count": len(users)})
        if settings:
            deps.db.collection("merchant_settings").document(mch).set(
                {"merchant_id": mch, **settings, "updated_at": now})
        return Merchant(mch, users)
    return make


@pytest.fixture
def merchant(make_merchant) -> Merchant:
    return make_merchant(("owner", "admin", "developer", "support", "viewer"))


@pytest.fixture
def payments(function_client):
    return function_client("payments")


@pytest.fixture
def api_key(deps):
    """A merchant API key's secret: ``api_key(mch, scopes, livemode=False)``."""
    from shared.identity.apikeys import service

    def make(mch: str, scopes=("payments:read", "payments:write"), livemode: bool = False) -> str:
        key = run_unit(deps, lambda uow: service.create_api_key(
            uow, owner_id=mch, name="test", scopes=list(scopes), livemode=livemode))
        return key.secret
    return make


@pytest.fixture
def payer(deps):
    uid, token = create_user_with_token(deps)
    return uid, auth_headers(token)
