"""The custody audit log on the Firestore emulator: appends chain by hash, concurrent appenders
never share or skip a sequence number, each mode has its own chain, and the verifier reports an
altered record, a deleted one (middle or tail) and an inserted one; custodians read it over
HTTP."""
from __future__ import annotations

import itertools
import threading

from shared.custody import audit
from shared.platform.uow import run_unit
from tests.custody.conftest import configure, make_staff


def _append(deps, n, *, livemode=False, subject="wdr_test0000"):
    out = []
    for i in range(n):
        out.append(run_unit(deps, lambda uow, i=i: audit.append(
            uow, livemode=livemode, action="withdrawal.approval", actor={"user": f"usr_{i:08d}"},
            subject=subject, data={"n": i, "asset": "ETH", "ok": True})))
    return out


def _records(deps, livemode=False):
    return audit.head_ref(deps.db, livemode).collection(audit.RECORDS)


def test_records_chain_and_verify(deps):
    recs = _append(deps, 4)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4]
    assert recs[0]["prev"] == audit.GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(recs))
    live = _append(deps, 2, livemode=True)                       # the other mode: its own chain
    assert [r["seq"] for r in live] == [1, 2] and live[0]["prev"] == audit.GENESIS
    report = audit.verify(deps.db, False)
    assert report == {"ok": True, "records": 4, "head_seq": 4, "head_hash": recs[-1]["hash"],
                      "problems": []}
    assert audit.verify(deps.db, True)["ok"]


def test_altered_deleted_and_inserted_records_are_detected(deps):
    recs = _append(deps, 5)
    col = _records(deps)
    # altered: the amount of record 2 changed after the fact
    col.document(f"{2:012d}").update({"data.n": 99})
    assert audit.verify(deps.db, False)["problems"] == [{"seq": 2, "problem": "altered"}]
    col.document(f"{2:012d}").update({"data.n": 1})              # put back: clean again
    assert audit.verify(deps.db, False)["ok"]
    # altered AND re-hashed by someone who knows the scheme: the next link breaks
    forged = {**recs[2], "data": {**recs[2]["data"], "n": 42}}
    forged["hash"] = audit.record_hash(forged)
    col.document(f"{3:012d}").set(forged)
    assert audit.verify(deps.db, False)["problems"] == [{"seq": 4, "problem": "broken_link"}]
    col.document(f"{3:012d}").set(recs[2])
    # deleted in the middle
    col.document(f"{3:012d}").delete()
    problems = audit.verify(deps.db, False)["problems"]
    assert {"seq": 3, "problem": "missing"} in problems
    assert {"seq": 4, "problem": "broken_link"} in problems
    col.document(f"{3:012d}").set(recs[2])
    # the tail cut: the head still names record 5
    col.document(f"{5:012d}").delete()
    assert audit.verify(deps.db, False)["problems"] == [{"seq": 5, "problem": "head_mismatch"}]
    col.document(f"{5:012d}").set(recs[4])
    # an extra record slipped in at the end without moving the head
    fake = {**recs[4], "seq": 6, "prev": recs[4]["hash"]}
    fake["hash"] = audit.record_hash(fake)
    col.document(f"{6:012d}").set(fake)
    assert audit.verify(deps.db, False)["problems"] == [{"seq": 5, "problem": "head_mismatch"}]
    col.document(f"{6:012d}").delete()
    assert audit.verify(deps.db, False)["ok"]


def test_concurrent_appenders_take_distinct_consecutive_numbers(deps):
    """Two writers at once (the emulator's contention limit, LOCAL_STACK.md): each commit
    carries the head's precondition, the loser re-reads and appends after the winner."""
    barrier = threading.Barrier(2)
    errors = []

    def writer(k):
        try:
            barrier.wait()
            _append(deps, 5, subject=f"wdr_writer000{k}")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = sorted(s.get("seq") for s in _records(deps).stream())
    assert seqs == list(range(1, 11))
    assert audit.verify(deps.db, False)["ok"]


def test_custodians_list_and_verify_over_http(deps, custody_api):
    staff = make_staff(deps, 2)
    configure(deps, staff.ids[:1], threshold=1)
    recs = _append(deps, 3)
    r = custody_api.get("/v1/custody/audit?limit=2", headers=staff.headers(0, mfa=False))
    assert r.status_code == 200, r.get_json()
    page = r.get_json()
    assert [d["seq"] for d in page["data"]] == [3, 2] and page["has_more"]
    assert page["data"][0]["hash"] == recs[2]["hash"]
    r = custody_api.get(f"/v1/custody/audit?limit=2&starting_after={page['data'][1]['id']}",
                        headers=staff.headers(0, mfa=False))
    assert [d["seq"] for d in r.get_json()["data"]] == [1] and not r.get_json()["has_more"]
    r = custody_api.get("/v1/custody/audit/verification", headers=staff.headers(0, mfa=False))
    assert r.status_code == 200 and r.get_json()["ok"] and r.get_json()["records"] == 3
    _records(deps).document(f"{1:012d}").update({"actor.user": "usr_someoneelse0"})
    r = custody_api.get("/v1/custody/audit/verification", headers=staff.headers(0, mfa=False))
    assert r.get_json()["ok"] is False
    assert r.get_json()["problems"] == [{"seq": 1, "problem": "altered"}]
    # not a custodian: 403, and the live mode's chain is not this one
    r = custody_api.get("/v1/custody/audit/verification", headers=staff.headers(1))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "custodian_required"
    r = custody_api.get("/v1/custody/audit", headers=staff.headers(0, live=True))
    assert r.status_code == 403
