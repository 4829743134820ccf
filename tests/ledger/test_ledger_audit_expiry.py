"""The audit (scheduled function) and hold expiry through a real Cloud Task."""
import logging
import time

from google.cloud import firestore

from shared.ledger import audit, accounts, service
from shared.ledger.model import TRANSFERS, TransferSpec
from shared.platform.ids import new_id
from tests.ledger.conftest import fund, new_user_id, unit


def _events(deps, etype):
    return [e.to_dict() for e in deps.db.collection("events").stream() if e.get("type") == etype]


def test_audit_passes_on_a_clean_ledger_and_detects_a_corrupted_balance(deps, function_client,
                                                                          service_headers, caplog):
    client = function_client("ledger_audit")
    a = fund(deps, new_user_id(), 500)
    b = accounts.wallet_template(new_user_id(), "USD")
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=a,
                                               credit_account_id=b.id, amount=200, asset="USD"),
                            templates=[b])
    merchant = accounts.open_account(deps.db, accounts.system_template("settlement", "USD", "m"),
                                     deps.clock.now())["id"]
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=a,
                                               credit_account_id=merchant, amount=50, asset="USD"))

    assert client.post("/", json={}).status_code == 401          # service credentials only
    time.sleep(audit.SETTLE.total_seconds())                      # the audit reads the settled past
    ok = client.post("/", headers=service_headers)
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["ok"] is True and ok.get_json()["transfers"] == 3
    assert ok.get_json()["mode"] == "full"                        # no checkpoint yet
    assert _events(deps, "ledger.audit_failed") == []

    # Incremental: the next run reads only what was committed since the checkpoint.
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=a,
                                            credit_account_id=merchant, amount=5, asset="USD"))
    time.sleep(audit.SETTLE.total_seconds())
    inc = client.post("/", headers=service_headers).get_json()
    assert inc["mode"] == "incremental" and inc["ok"] is True
    assert (inc["entries"], inc["transfers"], inc["accounts"]) == (2, 1, 2)
    assert inc["assets"]["USD"]["credits_posted"] == 500 + 200 + 50 + 5
    nothing = client.post("/", headers=service_headers).get_json()
    assert (nothing["mode"], nothing["entries"], nothing["ok"]) == ("incremental", 0, True)

    # Someone edits a balance by hand (a bug, or an operator): the audit must notice.
    deps.db.collection("ledger_accounts").document(b.id).update({"credits_posted": firestore.Increment(1)})
    # … and a hot shard.
    deps.db.collection("ledger_accounts").document(merchant).collection("balance_shards") \
        .document("0").set({"credits_posted": firestore.Increment(5)}, merge=True)
    time.sleep(audit.SETTLE.total_seconds())
    with caplog.at_level(logging.ERROR):
        bad = client.post("/", json={"full": True}, headers=service_headers)
    report = bad.get_json()
    assert bad.status_code == 200 and report["ok"] is False
    checks = {(v["check"], v.get("account_id") or v.get("asset")) for v in report["violations"]}
    assert ("balance_mismatch", b.id) in checks and ("balance_mismatch", merchant) in checks
    assert ("debits_ne_credits", "USD") in checks
    assert any(r.levelno == logging.ERROR and "ledger audit failed" in r.getMessage()
               for r in caplog.records)
    failed = _events(deps, "ledger.audit_failed")
    assert len(failed) == 1 and failed[0]["tenant"] == "platform"
    assert failed[0]["data"]["object"]["violation_count"] == report["violation_count"]
    # An incremental run sees the corruption as soon as the account moves again.
    service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=a,
                                            credit_account_id=b.id, amount=1, asset="USD"))
    time.sleep(audit.SETTLE.total_seconds())
    again = client.post("/", headers=service_headers).get_json()
    assert again["mode"] == "incremental" and again["ok"] is False
    assert ("balance_mismatch", b.id) in {(v["check"], v.get("account_id")) for v in again["violations"]}


def test_hold_expires_through_a_real_cloud_task_and_releases_funds(deps, inprocess_gateway):
    a = fund(deps, new_user_id(), 1000)
    b = accounts.wallet_template(new_user_id(), "USD")
    hold = new_id("txf")
    service.transfer_now(deps, TransferSpec(id=hold, debit_account_id=a, credit_account_id=b.id,
                                               amount=400, asset="USD", pending=True,
                                               timeout_seconds=1), templates=[b])
    assert accounts.balance(deps.db, a).available == 600
    deadline = time.time() + 30
    status = "pending"
    while time.time() < deadline:
        status = deps.db.collection(TRANSFERS).document(hold).get().get("pending_status")
        if status != "pending":
            break
        time.sleep(0.25)
    assert status == "expired"
    assert accounts.balance(deps.db, a).available == 1000
    assert accounts.balance(deps.db, b.id).credits_pending == 0
    expiry = deps.db.collection(TRANSFERS).document(service.expiry_transfer_id(hold)).get().to_dict()
    assert expiry["kind"] == "expire_pending" and expiry["pending_id"] == hold
    assert len(_events(deps, "transfer.expired")) == 2       # one per user involved
    # A late duplicate delivery of the task changes nothing.
    assert unit(deps, service.expire_pending, hold).result == "already_expired"


def test_expiry_task_endpoint_is_idempotent_and_private(deps, function_client, service_headers):
    client = function_client("ledger_tasks")
    assert client.post("/expire-pending", json={"pending_id": "txf_x"}).status_code == 401
    r = client.post("/expire-pending", json={"pending_id": new_id("txf")}, headers=service_headers)
    assert r.status_code == 200 and r.get_json()["result"] == "not_found"
    bad = client.post("/expire-pending", json={}, headers=service_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "pending_id"
