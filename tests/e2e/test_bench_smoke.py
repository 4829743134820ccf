"""The benchmarks run (a quick pass), and the round-trip budget they report holds.

Round trips are counts, not timings, so they can be asserted; the timings are only reported.
Budget (issue: kernel second pass): new-key POST with an event <= 4, replay <= 1, P2P transfer
over HTTP <= 4, login <= 3."""
import json
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_quick_bench_runs_and_the_round_trip_budget_holds(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--results", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    rows = {row["name"]: row for module in results.values() for row in module}
    assert rows["Firestore round trips: POST probe (new Idempotency-Key)"]["per_request"] <= 4
    assert rows["Firestore round trips: POST probe (replayed Idempotency-Key)"]["per_request"] <= 1
    assert rows["Firestore round trips: ping"]["per_request"] == 0
    assert rows["Firestore RPCs per P2P transfer (full HTTP request)"]["rpcs"] <= 4
    assert rows["Firestore round trips: POST /v1/auth/login"]["per_request"] <= 3
    assert rows["Firestore RPCs per blind credit into a hot account"]["rpcs"] == 1
    assert rows["Firestore round trips per delivery attempt: succeeded (receiver 200)"]["per_attempt"] <= 4
    assert rows["Firestore round trips: POST payment intent (new Idempotency-Key)"]["per_request"] <= 4
    assert rows["watcher cost per block, caught up (1000 open addresses): empty block"][
        "rpc_http_requests_per_block"] <= 2
    assert all(row.get("errors", 0) == 0 for name, row in rows.items()
               if "naive" not in name and "errors" in row and "by kind" not in name), rows
