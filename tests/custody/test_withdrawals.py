"""Treasury withdrawals over HTTP on a real anvil and the emulators: one custodian sends at or
below the limit; above it M distinct custodians must approve (the proposer counts, a second
approval by the same custodian does not); who may call (custodians only, users only, a recent
MFA sign-in to move money); rejections without veto, the proposer's cancel, the approval
deadline; the ledger hold posted or voided; events and the audit chain."""
from __future__ import annotations

import datetime as dt

from eth_account import Account

from shared.custody import audit, withdrawal_chain
from shared.custody import withdrawals as wd
from shared.identity.apikeys import service as apikeys
from shared.platform.uow import run_unit
from tests.custody.conftest import (
    FEES_ETH,
    FEES_USDC,
    GWEI,
    WITHDRAWALS,
    assert_ledger_clean,
    balance,
    configure,
    err,
    eth_balance,
    finish,
    fund_hot,
    fund_revenue,
    make_staff,
    token_balance,
    wait_mined,
    withdrawal_doc,
)
from tests.refunds.conftest import events_of


def run_to_end(deps, chain, wid):
    """The send task, then the polls (what the custody queue does)."""
    assert withdrawal_chain.send(deps, wid) in ("sent", "rebroadcast")
    return finish(deps, chain, wid)


def scheduled(deps, wid, path):
    """Timers committed for ``wid`` on ``path`` (outbox records)."""
    return [t for o in deps.db.collection("outbox").stream() for t in o.to_dict().get("tasks") or []
            if t["path"] == path and t["body"].get("withdrawal_id") == wid]


def audit_actions(deps, wid):
    recs = sorted((s.to_dict() for s in audit.head_ref(deps.db, False)
                   .collection(audit.RECORDS).stream()), key=lambda r: r["seq"])
    return [r["action"] for r in recs if r["subject"] == wid]


def test_at_or_below_the_limit_one_custodian_sends_at_once(deps, chain, treasury, custody_api,
                                                           custody_tasks, service_headers):
    hot = treasury
    staff = make_staff(deps, 3)
    configure(deps, staff.ids, threshold=2)                  # ETH limit 0.5
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 2 * GWEI)
    to = Account.create().address
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI // 2, "destination": to.lower(),
            "memo": "exchange rebalance"}
    h = staff.headers(0, **{"Idempotency-Key": "wd-1"})
    r = custody_api.post(WITHDRAWALS, json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    w = r.get_json()
    assert w["status"] == "approved" and w["required_approvals"] == 1
    assert [v["custodian"] for v in w["approvals"]] == [staff.ids[0]]
    assert w["destination"] == to and w["amount_onchain"] == str(5 * 10**17)
    assert w["token"] is None and w["transaction"] is None
    again = custody_api.post(WITHDRAWALS, json=body, headers=h)   # a retry: the same answer
    assert again.status_code == 201 and again.get_json()["id"] == w["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert balance(deps, FEES_ETH).debits_pending == GWEI // 2      # held at once
    assert len(scheduled(deps, w["id"], wd.SEND_PATH)) == 1

    outs = [custody_tasks.post(wd.SEND_PATH, json={"withdrawal_id": w["id"]},
                               headers=service_headers) for _ in range(2)]
    assert [o.get_json()["outcome"] for o in outs] == ["sent", "rebroadcast"], [o.get_json() for o in outs]
    d = withdrawal_doc(deps, w["id"])
    assert d["status"] == "executing" and d["chain"]["sender"] == hot and d["chain"]["nonce"] == 0
    wait_mined(chain, d["chain"]["hash"])
    polled = custody_tasks.post(wd.POLL_PATH, json={"withdrawal_id": w["id"]},
                                headers=service_headers)
    assert polled.get_json()["outcome"] == "succeeded"
    assert withdrawal_chain.poll(deps, w["id"]) == "done"
    assert withdrawal_chain.send(deps, w["id"]) == "done"
    assert eth_balance(chain, to) == 5 * 10**17                    # paid exactly once

    got = custody_api.get(f"{WITHDRAWALS}/{w['id']}", headers=staff.headers(1, mfa=False)).get_json()
    assert got["status"] == "succeeded" and got["transaction"]["hash"] == d["chain"]["hash"]
    assert got["transaction"]["gas_used"] == 21_000 and got["succeeded_at"]
    fees = balance(deps, FEES_ETH)
    assert fees.debits_pending == 0 and fees.posted == 2 * GWEI - GWEI // 2
    assert got["ledger"]["debit_account"] == FEES_ETH and len(got["ledger"]["transfer_ids"]) == 1
    assert events_of(deps, w["id"]) == sorted(
        f"custody.withdrawal.{e}" for e in ("created", "approved", "executed", "succeeded"))
    assert audit_actions(deps, w["id"]) == ["withdrawal.proposed", "withdrawal.executed",
                                            "withdrawal.confirmed"]
    assert audit.verify(deps.db, False)["ok"]
    listed = custody_api.get(f"{WITHDRAWALS}?status=succeeded", headers=staff.headers(2)).get_json()
    assert [x["id"] for x in listed["data"]] == [w["id"]]
    assert_ledger_clean(deps)


def test_above_the_limit_m_distinct_custodians_must_approve(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 4)
    configure(deps, staff.ids, threshold=3)                  # USDC limit 100
    fund_hot(chain, hot, asset="USDC", amount=500_000_000)
    fund_revenue(deps, "USDC", 400_000_000)
    to = Account.create().address
    r = custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "USDC",
                                            "amount": 150_000_000, "destination": to},
                         headers=staff.headers(0))
    assert r.status_code == 201, r.get_json()
    w = r.get_json()
    assert (w["status"], w["required_approvals"], len(w["approvals"])) == ("pending_approval", 3, 1)
    assert w["token"] == chain.tokens["USDC"]
    url = f"{WITHDRAWALS}/{w['id']}/approve"

    def approve(i):
        return custody_api.post(url, headers=staff.headers(i))

    # the proposer approving again, then custodian 1 twice: each counts once
    for i in (0, 1, 1):
        resp = approve(i)
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["status"] == "pending_approval"
    assert [v["custodian"] for v in resp.get_json()["approvals"]] == staff.ids[:2]
    assert withdrawal_chain.send(deps, w["id"]) == "done"        # not approved: nothing signed
    assert scheduled(deps, w["id"], wd.SEND_PATH) == []
    resp = approve(2)
    assert resp.status_code == 200 and resp.get_json()["status"] == "approved"
    assert len(scheduled(deps, w["id"], wd.SEND_PATH)) == 1
    late = approve(3)
    assert late.status_code == 409 and err(late)["code"] == "withdrawal_not_pending"
    assert run_to_end(deps, chain, w["id"]) == "succeeded"
    assert token_balance(chain, "USDC", to) == 150_000_000
    assert balance(deps, FEES_USDC).posted == 250_000_000
    assert audit_actions(deps, w["id"]) == ["withdrawal.proposed"] + ["withdrawal.approval"] * 2 + [
        "withdrawal.executed", "withdrawal.confirmed"]
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)


def test_who_may_call(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 3)                              # 0, 1 custodians; 2 an outsider
    configure(deps, staff.ids[:2], threshold=2, live=[staff.ids[1]])
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 3 * GWEI)
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI, "destination":
            Account.create().address}

    r = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(2))
    assert r.status_code == 403 and err(r)["code"] == "custodian_required"
    r = custody_api.get(WITHDRAWALS, headers=staff.headers(2))
    assert r.status_code == 403 and err(r)["code"] == "custodian_required"
    key = run_unit(deps, lambda uow: apikeys.create_api_key(
        uow, owner_id=staff.ids[0], name="ops", scopes=["payments:read", "payments:write"], livemode=False)).secret
    r = custody_api.get(WITHDRAWALS, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and err(r)["code"] == "principal_not_allowed"
    r = custody_api.get(WITHDRAWALS)
    assert r.status_code == 401
    # a password-only session: reads yes, money no
    r = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0, mfa=False))
    assert r.status_code == 403 and err(r)["code"] == "mfa_required"
    assert custody_api.get(WITHDRAWALS, headers=staff.headers(0, mfa=False)).status_code == 200
    w = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0)).get_json()
    assert w["status"] == "pending_approval"
    for action in ("approve", "reject", "cancel"):
        r = custody_api.post(f"{WITHDRAWALS}/{w['id']}/{action}", headers=staff.headers(1, mfa=False))
        assert r.status_code == 403 and err(r)["code"] == "mfa_required", action
    # an MFA sign-in older than mfa_max_age_seconds (900 s) must be renewed to approve
    sid = next(s.id for s in deps.db.collection("sessions").stream()
               if s.get("user_id") == staff.ids[1] and "mfa" in s.get("amr"))
    deps.db.collection("sessions").document(sid).update(
        {"created_at": deps.clock.now() - dt.timedelta(minutes=16)})
    r = custody_api.post(f"{WITHDRAWALS}/{w['id']}/approve", headers=staff.headers(1))
    assert r.status_code == 403 and err(r)["code"] == "recent_mfa_required"
    r = custody_api.post(f"{WITHDRAWALS}/{w['id']}/reject", headers=staff.headers(1))
    assert r.status_code == 200                              # stopping money needs no step-up
    # the other mode: custodian 1 is a live custodian, but this is a test withdrawal
    r = custody_api.get(f"{WITHDRAWALS}/{w['id']}", headers=staff.headers(1, live=True))
    assert r.status_code == 404
    r = custody_api.get(f"{WITHDRAWALS}/{w['id']}", headers=staff.headers(0, live=True))
    assert r.status_code == 403                              # custodian 0 is not a live one
    r = custody_api.get(WITHDRAWALS, headers=staff.headers(0, **{"Payloom-Mode": "prod"}))
    assert r.status_code == 400 and err(r)["code"] == "invalid_mode"
    r = custody_api.get(f"{WITHDRAWALS}/wdr_doesnotexist000", headers=staff.headers(0))
    assert r.status_code == 404
    assert_ledger_clean(deps)


def test_rejections_cancel_only_when_the_threshold_is_out_of_reach(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 4)
    configure(deps, staff.ids, threshold=3)                  # 4 custodians, 3 needed
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 5 * GWEI)
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI, "destination":
            Account.create().address}
    w = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0)).get_json()
    url = f"{WITHDRAWALS}/{w['id']}"
    assert balance(deps, FEES_ETH).debits_pending == GWEI
    r = custody_api.post(f"{url}/reject", json={"reason": "unknown address"}, headers=staff.headers(1))
    assert r.status_code == 200 and r.get_json()["status"] == "pending_approval"
    assert r.get_json()["rejections"][0] == {"custodian": staff.ids[1], "created": r.get_json()["rejections"][0]["created"],
                                             "reason": "unknown address"}
    assert custody_api.post(f"{url}/reject", headers=staff.headers(1)).status_code == 200  # once
    r = custody_api.post(f"{url}/approve", headers=staff.headers(1))
    assert r.status_code == 409 and err(r)["code"] == "already_voted"
    r = custody_api.post(f"{url}/reject", headers=staff.headers(0))
    assert r.status_code == 409 and err(r)["code"] == "already_voted"
    r = custody_api.post(f"{url}/cancel", headers=staff.headers(2))
    assert r.status_code == 403 and err(r)["code"] == "proposer_only"
    r = custody_api.post(f"{url}/reject", headers=staff.headers(2))    # 4 − 2 < 3: canceled
    assert r.status_code == 200
    assert (r.get_json()["status"], r.get_json()["cancellation_reason"]) == ("canceled", "rejected")
    assert balance(deps, FEES_ETH).debits_pending == 0 and balance(deps, FEES_ETH).posted == 5 * GWEI
    r = custody_api.post(f"{url}/approve", headers=staff.headers(3))
    assert r.status_code == 409 and err(r)["code"] == "withdrawal_not_pending"
    assert audit_actions(deps, w["id"]) == ["withdrawal.proposed", "withdrawal.rejection",
                                            "withdrawal.rejection"]
    assert events_of(deps, w["id"]) == ["custody.withdrawal.canceled", "custody.withdrawal.created"]

    # the proposer cancels an approved withdrawal before it is signed; twice is the same answer
    small = custody_api.post(WITHDRAWALS, json={**body, "amount": GWEI // 10},
                             headers=staff.headers(3)).get_json()
    assert small["status"] == "approved"
    for _ in range(2):
        r = custody_api.post(f"{WITHDRAWALS}/{small['id']}/cancel", headers=staff.headers(3))
        assert r.status_code == 200 and r.get_json()["cancellation_reason"] == "proposer_canceled"
    assert withdrawal_chain.send(deps, small["id"]) == "done"           # nothing signed
    assert balance(deps, FEES_ETH).debits_pending == 0
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)


def test_the_approval_deadline_cancels_and_releases(deps, chain, treasury, custody_api, custody_tasks,
                                                    service_headers):
    hot = treasury
    staff = make_staff(deps, 3)
    configure(deps, staff.ids, threshold=2)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", 5 * GWEI)
    body = {"network": "anvil", "asset": "ETH", "amount": GWEI, "destination":
            Account.create().address}
    first = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0)).get_json()
    second = custody_api.post(WITHDRAWALS, json=body, headers=staff.headers(0)).get_json()
    assert first["id"] != second["id"]                       # no Idempotency-Key: two proposals
    assert first["approval_deadline"] - first["created"] == 24 * 3600
    assert len(scheduled(deps, first["id"], wd.EXPIRE_PATH)) == 1
    r = custody_tasks.post(wd.EXPIRE_PATH, json={"withdrawal_id": first["id"]}, headers=service_headers)
    assert r.get_json()["outcome"] == "early"                # the timer came early: nothing
    past = deps.clock.now() - dt.timedelta(seconds=1)
    for w in (first, second):
        deps.db.collection(wd.COLLECTION).document(w["id"]).update({"approval_deadline": past})
    # a vote after the deadline: 409 and the proposal is canceled on the spot
    r = custody_api.post(f"{WITHDRAWALS}/{first['id']}/approve", headers=staff.headers(1))
    assert r.status_code == 409 and err(r)["code"] == "withdrawal_expired"
    assert withdrawal_doc(deps, first["id"])["cancellation_reason"] == "expired"
    # the timer does the same for the other; a second delivery changes nothing
    outs = [custody_tasks.post(wd.EXPIRE_PATH, json={"withdrawal_id": second["id"]},
                               headers=service_headers).get_json()["outcome"] for _ in range(2)]
    assert outs == ["expired", "done"]
    assert balance(deps, FEES_ETH).debits_pending == 0
    assert audit_actions(deps, second["id"]) == ["withdrawal.proposed", "withdrawal.canceled"]
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)
