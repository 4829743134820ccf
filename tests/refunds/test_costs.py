"""Measured: Firestore round trips and latency of creating a wallet refund (reversal, settled
at once) and a crypto refund (holds + a timer)."""
from __future__ import annotations

import statistics
import time

from bench.harness import RpcCounter
from tests.ledger.conftest import fund
from tests.refunds.conftest import FEES, URL, wallet_paid_intent


def test_wallet_refund_round_trips_and_latency(deps, payments, refunds, make_merchant, payer):
    m = make_merchant(("owner",), settings=FEES)
    uid, ph = payer
    fund(deps, uid, 100_000)
    pis = [wallet_paid_intent(payments, m, ph) for _ in range(6)]
    # warm-up: membership cache, account metadata cache
    assert refunds.post(URL, json={"payment_intent": pis[0]["id"], "amount": 1},
                        headers=m.headers()).status_code == 201
    refunds.get(URL + "/re_missing", headers=m.headers())
    with RpcCounter() as get:       # authentication's own reads + the refund read (warm)
        refunds.get(URL + "/re_missing", headers=m.headers())
    auth = get.counts.get("batch_get_documents", 0) - 1
    with RpcCounter() as one:
        r = refunds.post(URL, json={"payment_intent": pis[1]["id"], "amount": 100},
                         headers={**m.headers(), "Idempotency-Key": "cost-1"})
    assert r.status_code == 201, r.get_json()
    gets = one.counts.get("batch_get_documents", 0) - auth
    print("wallet refund round trips:", one.counts, "authentication:", auth, "refund:", gets)
    # (1) refund id + intent + idempotency record; (2) reversal ids, reversed legs, settlement
    # and fee accounts with their shards, the payer's wallet; one commit + the outbox update
    assert gets == 2 and one.counts.get("commit") == 2, one.counts
    times = []
    for pi in pis[2:]:
        t0 = time.perf_counter()
        assert refunds.post(URL, json={"payment_intent": pi["id"]}, headers=m.headers()).status_code == 201
        times.append((time.perf_counter() - t0) * 1000)
    print(f"wallet refund create: p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
          f"(emulator, 2-core machine)")
