"""Merchant dashboard (issue 10): what a page costs, in-process through the ``dashboard``
function (functions-framework's test client, the member's cookies in its jar).

* the payments list (25 rows) and a payment's detail page (intent, refunds, events and their
  webhook attempts): latency and Firestore round trips per page;
* the same list when the access token has expired and the refresh token is rotated on the way
  (the transparent refresh: one more unit of work and the rate-limit write).

Every signed-in page pays for: the session check (one read, cached 5 s per instance), the
member's merchants (one query + one batch get) and the membership (one read, cached 5 s); the
figures are with both caches warm, as on a busy instance. Setup goes through the real services: a user
registered and a merchant created in-process, intents created by the payments service.
"""
from __future__ import annotations

import re
import uuid

from bench.harness import BenchEnv, count_rpcs, measure

PASSWORD = "bench passphrase 2026"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def run(env: BenchEnv) -> list[dict]:
    from shared.identity.users import accounts
    from shared.merchants import merchants
    from shared.merchants.models import CreateMerchant
    from shared.payments import intents
    from shared.payments.models import CreateIntent
    from shared.platform.auth import Principal
    from shared.platform.uow import run_unit

    deps = env.deps
    n_pages, n_refresh = (10, 5) if env.quick else (150, 60)
    name = f"bench_dash_{uuid.uuid4().hex[:8]}"
    user = run_unit(deps, lambda uow: accounts.register_user(
        uow, email=f"{name}@example.com", password=PASSWORD, username=name))
    me = Principal(kind="user", id=user.id, tenant_id=user.id)
    shop = run_unit(deps, lambda uow: merchants.create_merchant(uow, me, CreateMerchant(
        business_name="Bench shop", country="KH", settlement_asset="USD")))
    acting = Principal(kind="user", id=user.id, tenant_id=shop.id, role="owner", actor_id=user.id)
    made = [run_unit(deps, lambda uow, i=i: intents.create(
        uow, acting, CreateIntent(amount=100 + i, currency="USD"), None)) for i in range(30)]

    client = env.client("dashboard")
    page = client.get("/dashboard/signin").get_data(as_text=True)
    csrf = _CSRF.search(page).group(1)
    r = client.post("/dashboard/signin", data={"csrf_token": csrf, "email": f"{name}@example.com",
                                               "password": PASSWORD})
    if r.status_code != 303:
        raise RuntimeError(f"sign-in failed: {r.status_code}")

    def get(path: str):
        def call(_i: int) -> None:
            resp = client.get(path)
            if resp.status_code != 200:
                raise RuntimeError(f"{path}: {resp.status_code}")
        return call

    rows: list[dict] = []
    detail = f"/dashboard/payments/{made[-1].id}"
    for label, path in (("payments list (25 rows)", "/dashboard/payments"),
                        ("payment detail (timeline)", detail)):
        stats = measure(f"GET {label}", get(path), n=n_pages)
        per_page, kinds = count_rpcs(lambda p=path: get(p)(0), repeat=5)
        rows.append({**stats.row(), "firestore_rpcs": round(per_page, 1), "by_rpc": kinds})

    def refreshed(_i: int) -> None:
        client.set_cookie("dash_at", "expired", path="/dashboard")
        resp = client.get("/dashboard/payments")
        if resp.status_code != 200:
            raise RuntimeError(f"refresh: {resp.status_code}")
    stats = measure("GET payments list with a transparent refresh (token rotated)", refreshed,
                    n=n_refresh, warmup=1)
    per_page, kinds = count_rpcs(lambda: refreshed(0), repeat=3)
    rows.append({**stats.row(), "firestore_rpcs": round(per_page, 1), "by_rpc": kinds})
    return rows
