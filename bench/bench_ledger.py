"""Ledger and wallet: P2P latency/throughput over HTTP, Firestore round trips per transfer, and
credits/second into one hot account, sharded (blind increments in a unit of work) vs naive (one
document read and written in every Firestore transaction, the design the ledger left), measured
side by side at the same thread count.

Senders and recipients are distinct users per concurrent request, so the HTTP figures measure
the transfer path and not same-document contention (which the emulator handles badly at 3+
writers, LOCAL_STACK.md). Bench users get KYC tier 2 so the outgoing limits do not interfere.
"""
from __future__ import annotations

import collections
import itertools
import threading
import uuid

import requests

from bench.harness import BenchEnv, count_rpcs, measure

PASSWORD = "bench passphrase 2026"


def _ip(i: int) -> str:
    return f"198.19.{(i >> 8) & 255}.{i & 255}"


def _users(env: BenchEnv, http: requests.Session, n: int, tag: str, ips) -> list[tuple[str, str, str]]:
    """(user_id, username, access token) for n fresh users registered over HTTP."""
    out = []
    for i in range(n):
        name = f"lb_{tag}_{i}"
        r = http.post(f"{env.base_url}/v1/auth/register", timeout=60,
                      json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
                      headers={"X-Forwarded-For": _ip(next(ips))})
        r.raise_for_status()
        r = http.post(f"{env.base_url}/v1/auth/login", timeout=60,
                      json={"username": name, "password": PASSWORD},
                      headers={"X-Forwarded-For": _ip(next(ips))})
        r.raise_for_status()
        body = r.json()
        uid = body.get("user_id") or body.get("user", {}).get("id")
        if not uid:
            from shared.identity.users import directory
            uid = directory.find_user_id(env.deps.db, username=name)
        out.append((uid, name, body["access_token"]))
    return out


def naive_credit(db, payer: str, target: str, amount: int) -> None:
    """The design sharding replaced: one Firestore transaction reads the payer and the target
    account and writes both, plus the transfer record. Concurrent credits lock one document."""
    from google.cloud import firestore

    from shared.platform.ids import new_id

    accts = db.collection("ledger_accounts")
    pref, tref = accts.document(payer), accts.document(target)
    xref = db.collection("bench_naive_transfers").document(new_id("txf"))

    @firestore.transactional
    def run(txn):
        snaps = {s.id: s.to_dict() for s in txn.get_all([pref, tref])}
        p, t = snaps[payer], snaps[target]
        txn.update(pref, {"debits_posted": int(p.get("debits_posted") or 0) + amount})
        txn.update(tref, {"credits_posted": int(t.get("credits_posted") or 0) + amount})
        txn.create(xref, {"debit": payer, "credit": target, "amount": amount})
    run(db.transaction())


def run(env: BenchEnv) -> list[dict]:
    from shared.ledger import accounts, service
    from shared.ledger.model import AccountFlags, AccountTemplate, TransferSpec
    from shared.platform.ids import new_id

    deps, db = env.deps, env.deps.db
    quick = env.quick
    n_p2p, n_hot = (24, 40) if quick else (200, 400)
    pairs = 4 if quick else 10
    tag = uuid.uuid4().hex[:6]
    http = requests.Session()
    ips = itertools.count(1)
    rows: list[dict] = []
    now = deps.clock.now()

    def fund(uid: str, amount: int) -> str:
        clearing = accounts.ensure_system_account(db, "topup_clearing", "USD", deps.clock.now())
        tmpl = accounts.wallet_template(uid, "USD")
        service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=clearing,
                                                credit_account_id=tmpl.id, amount=amount,
                                                asset="USD", code="topup"), templates=[tmpl])
        return tmpl.id

    # --- P2P over HTTP --------------------------------------------------------------------
    senders = _users(env, http, pairs, f"{tag}s", ips)
    recipients = _users(env, http, pairs, f"{tag}r", ips)
    for uid, _, _ in senders:
        db.collection("users").document(uid).update({"kyc_tier": 2})
        fund(uid, 1_000_000)

    tl, lock, counters = threading.local(), threading.Lock(), collections.Counter()

    def own(label: str, who: list[str]) -> str:
        """Each worker thread pays from its own wallet, so payers never contend."""
        mine = tl.__dict__.setdefault("payers", {})
        if label not in mine:
            with lock:
                mine[label] = who[counters[label] % len(who)]
                counters[label] += 1
        return mine[label]

    def p2p(i: int) -> None:
        k = int(own("p2p", [str(j) for j in range(pairs)]))   # one sender/recipient pair per thread
        _, _, token = senders[k]
        r = http.post(f"{env.base_url}/v1/wallet/transfers", timeout=60,
                      json={"to": {"username": recipients[k][1]}, "amount": 1, "asset": "USD"},
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": new_id("idem")})
        if r.status_code != 201:
            raise RuntimeError(r.text)

    conc = min(4, pairs)
    stats = measure(f"POST /v1/wallet/transfers (HTTP, {conc} threads, a pair per thread)", p2p,
                    n=n_p2p, concurrency=conc, warmup=2)
    rows.append(stats.row())

    # --- Firestore round trips per transfer -----------------------------------------------
    client = env.client("wallet")
    token = senders[-1][2]   # a sender the timed run did not use (per-user rate limits)

    def one_http_transfer():
        r = client.post("/v1/wallet/transfers",
                        json={"to": {"username": recipients[-1][1]}, "amount": 1, "asset": "USD"},
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": new_id("idem")})
        if r.status_code != 201:
            raise RuntimeError(r.get_data(as_text=True))
    one_http_transfer()  # warm caches (account metadata, JWKS)
    avg, kinds = count_rpcs(one_http_transfer, repeat=5)
    rows.append({"name": "Firestore RPCs per P2P transfer (full HTTP request)", "rpcs": avg, **kinds})

    src, dst = senders[1][0], accounts.wallet_template(recipients[1][0], "USD")

    def one_ledger_transfer():
        service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=accounts.user_wallet_id(src, "USD"),
                                                credit_account_id=dst.id, amount=1, asset="USD"),
                             templates=[dst])
    avg, kinds = count_rpcs(one_ledger_transfer, repeat=5)
    rows.append({"name": "Firestore RPCs per ledger transfer (service call)", "rpcs": avg, **kinds})

    # --- hot account: sharded vs naive -------------------------------------------------------
    hot = accounts.open_account(db, accounts.system_template("settlement", "USD", f"bench-{tag}"), now)["id"]
    naive = accounts.open_account(db, AccountTemplate(
        id=new_id("acc"), asset="USD", owner_type="system", owner_id=f"settlement:naive-{tag}",
        kind="settlement", flags=AccountFlags(debits_must_not_exceed_credits=True)), now)["id"]
    payers = [fund(new_id("usr"), 10_000_000) for _ in range(8)]
    naive_payers = [fund(new_id("usr"), 10_000_000) for _ in range(2)]

    error_kinds: collections.Counter = collections.Counter()

    def credit(target: str, threads: int, who: list[str]):
        def fn(i: int) -> None:
            try:
                payer = own(f"{target}:{threads}", who[:threads])
                if target == naive:
                    naive_credit(db, payer, target, 1)
                else:
                    service.transfer_now(deps, TransferSpec(
                        id=new_id("txf"), debit_account_id=payer, credit_account_id=target,
                        amount=1, asset="USD", code="payment"))
            except Exception as exc:
                error_kinds[type(exc).__name__] += 1
                raise
        return fn

    others = [accounts.wallet_template(new_id("usr"), "USD") for _ in range(8)]

    def distinct(i: int) -> None:
        payer = own("distinct", payers)
        k = payers.index(payer)
        service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=payer,
                                                credit_account_id=others[k].id, amount=1,
                                                asset="USD"), templates=[others[k]])

    clearing = accounts.ensure_system_account(db, "topup_clearing", "USD", now)

    def blind_credit(i: int) -> None:
        """A settlement credit from the (unlimited) acquirer clearing account: nothing to check,
        so nothing is read; one commit."""
        try:
            service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=clearing,
                                                    credit_account_id=hot, amount=1, asset="USD",
                                                    code="settlement"))
        except Exception as exc:
            error_kinds[type(exc).__name__] += 1
            raise

    avg, kinds = count_rpcs(lambda: blind_credit(0), repeat=5)
    rows.append({"name": "Firestore RPCs per blind credit into a hot account", "rpcs": avg, **kinds})
    results = {}
    for label, threads in (("sharded", 2), ("sharded", 8)):
        s = measure(f"credits into one hot account: {label}, {threads} threads",
                    blind_credit, n=n_hot, concurrency=threads, warmup=threads)
        results[(label, threads)] = s
        rows.append(s.row())
    s = measure("payments into one hot account from checked wallets, 2 threads",
                credit(hot, 2, payers), n=n_hot // 2, concurrency=2, warmup=2)
    results[("wallet payers", 2)] = s
    rows.append(s.row())
    rows.append(measure("baseline: no shared account (distinct wallets), 8 threads", distinct,
                        n=n_hot, concurrency=8, warmup=8).row())
    # The naive design runs last with its own payers, so its stalled transactions cannot slow
    # the others; it runs fewer credits (it is an order of magnitude slower).
    s = measure("credits into one hot account: naive one-document, 2 threads",
                credit(naive, 2, naive_payers), n=max(20, n_hot // 4), concurrency=2, warmup=2)
    results[("naive one-document", 2)] = s
    rows.append(s.row())
    ratio = results[("sharded", 2)].per_second / max(results[("naive one-document", 2)].per_second, 1e-9)
    rows.append({"name": "hot account speed-up, sharded / naive at 2 threads", "ratio": round(ratio, 2)})
    balance = accounts.balance(db, hot).credits_posted
    rows.append({"name": "naive design: transactions that failed (contention)",
                 "errors": results[("naive one-document", 2)].errors})
    rows.append({"name": "hot account exact after concurrent credits",
                 "expected": sum(s.n - s.errors for (lbl, _), s in results.items()
                                 if lbl in ("sharded", "wallet payers")) + 5 + 2 + 8 + 2,
                 "credits_posted": balance})
    if error_kinds:
        rows.append({"name": "hot-account bench errors by kind", **dict(error_kinds)})
    return rows
