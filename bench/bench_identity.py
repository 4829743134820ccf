"""Identity: password login latency (production argon2id), token verification throughput, and
Firestore round trips per login and per refresh.

Login is limited per account (10 attempts/min; ``shared.identity.users.login_guard``), so the logins
are spread over several accounts, each from its own X-Forwarded-For address. Round trips are
counted for a whole in-process HTTP login (issue 7 budget: <= 3).
"""
from __future__ import annotations

import itertools
import uuid

import requests

from bench.harness import BenchEnv, count_rpcs, measure

PASSWORD = "bench passphrase 2026"


def _ip(i: int) -> str:
    return f"198.18.{(i >> 8) & 255}.{i & 255}"


def run(env: BenchEnv) -> list[dict]:
    from shared.identity.users import passwords
    from shared.identity.config import IdentitySettings, identity_settings
    from shared.identity.sessions.sessions import start_session
    from shared.identity.sessions.authn import verify_access_token
    from shared.identity.sessions.tokens import decode_access_token

    n_login, n_verify = (12, 300) if env.quick else (120, 5000)
    run_id = uuid.uuid4().hex[:6]
    http = requests.Session()
    ips = itertools.count(1)
    rows: list[dict] = []

    # --- login over HTTP (the gateway runs with production argon2 parameters) ---------------
    users = [f"bench_{run_id}_{i}" for i in range(max(3, (n_login + 10) // 8 + 1))]
    for name in users:
        r = http.post(f"{env.base_url}/v1/auth/register", timeout=30,
                      json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
                      headers={"X-Forwarded-For": _ip(next(ips))})
        r.raise_for_status()

    def login(i: int) -> None:
        r = http.post(f"{env.base_url}/v1/auth/login", timeout=30,
                      json={"username": users[abs(i) % len(users)], "password": PASSWORD},
                      headers={"X-Forwarded-For": _ip(next(ips))})
        if r.status_code != 200:
            raise RuntimeError(r.text)

    prod = IdentitySettings()  # what the gateway runs with (production argon2 parameters)
    stats = measure(f"POST /v1/auth/login (HTTP, argon2id t={prod.argon2_time_cost} "
                    f"m={prod.argon2_memory_cost_kib}KiB p={prod.argon2_parallelism})", login,
                    n=n_login, concurrency=2, warmup=10)  # every gateway worker warm
    rows.append(stats.row())

    # --- argon2id alone, in-process, for reference -------------------------------------------
    deps = env.deps
    settings = identity_settings(deps)
    stored = passwords.hash_password(deps, PASSWORD)
    rows.append(measure(f"argon2id verify in-process (t={settings.argon2_time_cost} "
                        f"m={settings.argon2_memory_cost_kib}KiB p={settings.argon2_parallelism})",
                        lambda i: passwords.verify_password(deps, stored, PASSWORD),
                        n=max(5, n_login // 4)).row())

    # --- access-token verification in-process --------------------------------------------------
    pair = start_session(deps, user_id=f"usr_bench{run_id}000000000000", amr=["pwd"], ip=None,
                         user_agent="bench")
    token = pair.access_token
    sig = measure("verify access token: signature + claims only", lambda i: decode_access_token(deps, token),
                  n=n_verify, warmup=10)
    cached = measure(f"verify access token + session check (cache {settings.session_cache_seconds}s)",
                     lambda i: verify_access_token(deps, token), n=n_verify, warmup=10)
    uncached_settings = settings.model_copy(update={"session_cache_seconds": 0})
    previous = deps.extras.get("identity.settings")
    deps.extras["identity.settings"] = uncached_settings
    try:
        uncached = measure("verify access token + session read (no cache, 1 Firestore get)",
                           lambda i: verify_access_token(deps, token), n=max(50, n_verify // 10), warmup=5)
    finally:
        if previous is None:
            deps.extras.pop("identity.settings", None)
        else:
            deps.extras["identity.settings"] = previous
    rows += [sig.row(), cached.row(), uncached.row()]

    # --- Firestore round trips per login and per refresh (in-process function) ---------------
    client = env.client("auth")
    rt_user = f"bench_{run_id}_rpc"  # its own account: the per-account login limit is 10/min
    r = client.post("/v1/auth/register", headers={"X-Forwarded-For": _ip(next(ips))},
                    json={"email": f"{rt_user}@example.com", "username": rt_user, "password": PASSWORD})
    assert r.status_code == 201, r.get_data(as_text=True)
    refresh_tokens = [pair.refresh_token]

    def one_login():
        r = client.post("/v1/auth/login", json={"username": rt_user, "password": PASSWORD},
                        headers={"X-Forwarded-For": _ip(next(ips) + 30000)})
        assert r.status_code == 200, r.get_data(as_text=True)

    def one_refresh():
        r = client.post("/v1/auth/refresh", json={"refresh_token": refresh_tokens[-1]},
                        headers={"X-Forwarded-For": _ip(next(ips) + 40000)})
        assert r.status_code == 200, r.get_data(as_text=True)
        refresh_tokens.append(r.get_json()["refresh_token"])

    def one_jwks():
        r = client.get("/.well-known/jwks.json")
        assert r.status_code == 200

    for label, fn, repeat in (("POST /v1/auth/login", one_login, 3 if env.quick else 5),
                              ("POST /v1/auth/refresh", one_refresh, 3 if env.quick else 10),
                              ("GET /.well-known/jwks.json", one_jwks, 3)):
        total, by_kind = count_rpcs(fn, repeat=repeat)
        rows.append({"name": f"Firestore round trips: {label}", "per_request": total, "by_rpc": by_kind})
    return rows
