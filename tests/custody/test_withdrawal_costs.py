"""Measured: Firestore round trips and node calls of a withdrawal's steps (propose, approve,
send, poll). Counts are asserted (they are what production pays: 10–30 ms per Firestore round
trip); times are printed only."""
from __future__ import annotations

import statistics
import time

from eth_account import Account

from bench.harness import RpcCounter
from shared.chain.networks import load_networks
from shared.custody import withdrawal_chain
from shared.refunds import crypto
from tests.custody.conftest import (
    WITHDRAWALS,
    configure,
    fund_hot,
    fund_revenue,
    make_staff,
    wait_mined,
)

GWEI = 10**9


def test_round_trips_of_each_step(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 2)
    configure(deps, staff.ids, threshold=2)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 10 * GWEI)
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI // 10}
    # warm-up: account metadata cache, the KMS data key, the node client
    first = custody_api.post(WITHDRAWALS, json={**body, "destination": Account.create().address},
                             headers=staff.headers(0))
    assert first.status_code == 201, first.get_json()
    with RpcCounter() as get:       # authentication + the withdrawal (a missing one)
        custody_api.get(f"{WITHDRAWALS}/wdr_missing000000", headers=staff.headers(0))
    reads_of_a_get = get.counts.get("batch_get_documents", 0)

    client = crypto.rpc_for(deps, load_networks(env={"PAYLOOM_CHAIN_NETWORKS": chain.networks_env}).get("anvil"))
    node = dict(client.counters)
    with RpcCounter() as one:
        r = custody_api.post(WITHDRAWALS, json={**body, "destination": Account.create().address},
                             headers={**staff.headers(0), "Idempotency-Key": "cost-1"})
    assert r.status_code == 201 and r.get_json()["status"] == "approved", r.get_json()
    node_calls = {k: v - node[k] for k, v in client.counters.items()}
    print("propose (below the limit):", one.counts, "node:", node_calls,
          "reads of a plain GET:", reads_of_a_get)
    # authentication (1, as in the GET) + the custodian's session (MFA age) + the derived id
    # (a key's retry) + the seed (the hot wallet's address) + the unit's ONE read (the id, the
    # audit head, the fee account with its shards): the GET's 2 reads + 3
    assert one.counts.get("batch_get_documents", 0) == reads_of_a_get + 3, one.counts
    # the idempotency claim, the unit, the outbox update, the stored response
    assert one.counts.get("commit", 0) == 4, one.counts
    assert node_calls == {"http_calls": 2, "rpc_requests": 5}, node_calls   # batch + estimate

    wid = r.get_json()["id"]
    node = dict(client.counters)
    with RpcCounter() as send:
        assert withdrawal_chain.send(deps, wid) == "sent"
    node_calls = {k: v - node[k] for k, v in client.counters.items()}
    print("send:", send.counts, "node:", node_calls, "+ the broadcast")
    # the withdrawal, the seed, then the claim unit's one read (withdrawal, nonce document,
    # audit head); its commit + the outbox update
    assert send.counts.get("batch_get_documents", 0) == 3 and send.counts.get("commit") == 2
    assert node_calls == {"http_calls": 2, "rpc_requests": 5}
    wait_mined(chain, deps.db.collection("custody_withdrawals").document(wid).get().get("chain")["hash"])
    node = dict(client.counters)
    with RpcCounter() as poll:
        assert withdrawal_chain.poll(deps, wid) == "succeeded"
    node_calls = {k: v - node[k] for k, v in client.counters.items()}
    print("poll (confirmed):", poll.counts, "node:", node_calls)
    assert node_calls == {"http_calls": 1, "rpc_requests": 2}          # receipt + head, batched
    # the withdrawal, then the closing unit's one read (withdrawal, audit head, the hold, its
    # resolution ids, the two accounts): post + status + audit + event in one commit
    assert poll.counts.get("batch_get_documents", 0) == 2 and poll.counts.get("commit") == 2

    pending = custody_api.post(WITHDRAWALS, json={**body, "amount": GWEI,
                                                  "destination": Account.create().address},
                               headers=staff.headers(0)).get_json()
    with RpcCounter() as approve:
        r = custody_api.post(f"{WITHDRAWALS}/{pending['id']}/approve", headers=staff.headers(1))
    assert r.get_json()["status"] == "approved"
    print("approve (reaching M):", approve.counts)
    # authentication + the custodian's session + the unit's one read (withdrawal, audit head)
    assert approve.counts.get("batch_get_documents", 0) == reads_of_a_get + 1, approve.counts
    assert approve.counts.get("commit") == 2

    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        assert custody_api.post(WITHDRAWALS, json={**body, "destination": Account.create().address},
                                headers=staff.headers(0)).status_code == 201
        times.append((time.perf_counter() - t0) * 1000)
    print(f"propose + precheck on anvil: p50 {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms (emulator, 2-core machine)")
