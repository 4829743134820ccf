"""Ledger transfers against the Firestore emulator: double entry, idempotency by transfer id,
linked batches, two-phase, reversals, closed accounts, hot accounts, crash before publish."""
import datetime as dt

import pytest

from shared.ledger import history, accounts, audit, service
from shared.ledger.model import TRANSFERS, TransferSpec
from shared.platform.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from shared.platform.ids import new_id
from shared.platform.outbox import sweep
from tests.ledger.conftest import fund, new_user_id, unit


def tid():
    return new_id("txf")


def wallets(deps, n=2, asset="USD"):
    return [accounts.wallet_template(new_user_id(), asset) for _ in range(n)]


def bal(deps, acc_id):
    return accounts.balance(deps.db, acc_id)


def assert_audit_clean(deps):
    violations, _ = audit.check(audit.snapshot(deps.db))
    assert violations == []


def test_single_transfer_moves_money_and_records_balances_after(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    r = service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id,
                                                   credit_account_id=b.id, amount=250, asset="USD"),
                                templates=[b])
    assert r.status == "created"
    assert r.transfer["balances_after"][a.id]["available"] == 750
    assert r.transfer["balances_after"][b.id]["posted"] == 250
    assert bal(deps, a.id).posted == 750 and bal(deps, b.id).posted == 250
    entries = [e.to_dict() for e in deps.db.collection("ledger_entries").stream()
               if e.get("transfer_id") == r.id]
    assert {(e["account_id"], e["direction"], e["leg"]) for e in entries} == {(a.id, "debit", 0), (b.id, "credit", 1)}
    assert all(e["committed_at"] >= e["created_at"] for e in entries)   # the commit time, stamped
    after = dict((e["account_id"], bal) for e, bal in history.with_balances(deps.db, entries))
    assert after[a.id].available == 750 and after[b.id].posted == 250
    assert_audit_clean(deps)


def test_same_id_is_idempotent_and_different_fields_conflict(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    spec = TransferSpec(id=tid(), debit_account_id=a.id, credit_account_id=b.id, amount=100, asset="USD")
    assert service.transfer_now(deps, spec, templates=[b]).status == "created"
    again = service.transfer_now(deps, spec, templates=[b])
    assert again.status == "exists" and again.transfer["amount"] == 100
    assert bal(deps, a.id).posted == 900  # one effect
    for field, value in (("amount", 101), ("credit_account_id", a.id + "x"), ("description", "hi")):
        changed = TransferSpec(**{**spec.__dict__, field: value})
        if field == "credit_account_id":
            changed.credit_account_id = wallets(deps, 1)[0].id
        with pytest.raises(Conflict) as exc:
            service.transfer_now(deps, changed, templates=[b])
        assert exc.value.code == f"exists_with_different_{field}" and exc.value.param == field
        assert exc.value.status == 409


def test_insufficient_funds_and_bad_input(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 100)
    with pytest.raises(Unprocessable) as exc:
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id,
                                                   credit_account_id=b.id, amount=101, asset="USD"),
                                templates=[b])
    assert exc.value.code == "insufficient_funds"
    cases = [
        (dict(amount=0), "amount_not_positive"), (dict(amount=-5), "amount_not_positive"),
        (dict(asset="DOGE"), "asset_unknown"), (dict(credit_account_id=a.id), "accounts_must_be_different"),
        (dict(id="nope"), "transfer_id_invalid"), (dict(amount=2**63), "amount_too_large"),
    ]
    for override, code in cases:
        spec = TransferSpec(**{**dict(id=tid(), debit_account_id=a.id, credit_account_id=b.id,
                                      amount=10, asset="USD"), **override})
        with pytest.raises(InvalidRequest) as exc:
            service.transfer_now(deps, spec, templates=[b])
        assert exc.value.code == code, override
    with pytest.raises(InvalidRequest) as exc:   # asset mismatch between accounts
        khr = accounts.wallet_template(b.owner_id, "KHR")
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id,
                                                   credit_account_id=khr.id, amount=1, asset="USD"),
                                templates=[khr])
    assert exc.value.code == "accounts_must_have_same_asset"
    with pytest.raises(NotFound) as exc:
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id,
                                                   credit_account_id=b.id, amount=1, asset="USD"))
    assert exc.value.code == "account_not_found"
    assert bal(deps, a.id).posted == 100
    assert_audit_clean(deps)


def test_linked_legs_succeed_or_fail_together(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    fees = accounts.ensure_system_account(deps.db, "fees", "USD", deps.clock.now())
    pay, fee = tid(), tid()
    legs = [TransferSpec(id=pay, debit_account_id=a.id, credit_account_id=b.id, amount=900, asset="USD"),
            TransferSpec(id=fee, debit_account_id=a.id, credit_account_id=fees, amount=101, asset="USD")]
    with pytest.raises(Unprocessable) as exc:   # the fee leg overdraws: nothing happens
        service.transfer_now(deps, legs, templates=[b])
    assert exc.value.code == "insufficient_funds" and exc.value.param == "transfers[1].amount"
    assert not deps.db.collection(TRANSFERS).document(pay).get().exists
    assert bal(deps, a.id).posted == 1000
    legs[1].amount = 100
    results = service.transfer_now(deps, legs, templates=[b])
    assert [r.status for r in results] == ["created", "created"]
    assert results[1].transfer["balances_after"][a.id]["available"] == 0
    assert bal(deps, fees).credits_posted == 100
    assert [r.status for r in service.transfer_now(deps, legs, templates=[b])] == ["exists", "exists"]
    with pytest.raises(Conflict) as exc:    # an id reused in another batch
        service.transfer_now(deps, [legs[0]], templates=[b])
    assert exc.value.code == "exists_with_different_linked"
    assert_audit_clean(deps)


def test_two_phase_post_partial_void_and_resolve_once(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    hold = tid()
    r = service.transfer_now(deps, TransferSpec(id=hold, debit_account_id=a.id, credit_account_id=b.id,
                                                   amount=600, asset="USD", pending=True,
                                                   timeout_seconds=3600), templates=[b])
    assert r.transfer["balances_after"][a.id]["available"] == 400
    assert bal(deps, a.id).available == 400 and bal(deps, a.id).debits_pending == 600
    with pytest.raises(Unprocessable) as exc:   # the hold reserved the funds
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id, credit_account_id=b.id,
                                                   amount=401, asset="USD"))
    assert exc.value.code == "insufficient_funds"
    with pytest.raises(Unprocessable) as exc:
        unit(deps, service.post_pending, hold, amount=601)
    assert exc.value.code == "exceeds_pending_transfer_amount"
    post_id = tid()
    posted = unit(deps, service.post_pending, hold, id=post_id, amount=450)
    assert posted.transfer["status"] == "posted" and posted.transfer["pending_amount"] == 600
    assert bal(deps, a.id).posted == 550 and bal(deps, a.id).debits_pending == 0
    assert bal(deps, b.id).posted == 450 and bal(deps, b.id).credits_pending == 0
    assert unit(deps, service.post_pending, hold, id=post_id, amount=450).status == "exists"
    for fn in (lambda: unit(deps, service.void_pending, hold), lambda: unit(deps, service.post_pending, hold)):
        with pytest.raises(Unprocessable) as exc:
            fn()
        assert exc.value.code == "pending_transfer_already_posted"
    hold2 = tid()
    service.transfer_now(deps, TransferSpec(id=hold2, debit_account_id=a.id, credit_account_id=b.id,
                                               amount=500, asset="USD", pending=True))
    unit(deps, service.void_pending, hold2)
    assert bal(deps, a.id).available == 550
    assert deps.db.collection(TRANSFERS).document(hold2).get().get("pending_status") == "voided"
    with pytest.raises(NotFound):
        unit(deps, service.post_pending, tid())
    assert_audit_clean(deps)


def test_expiry_requires_due_time_and_post_after_expiry_is_refused(deps):
    from shared.platform.clock import FrozenClock
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    clock = FrozenClock(deps.clock.now())
    deps.clock = clock
    hold = tid()
    service.transfer_now(deps, TransferSpec(id=hold, debit_account_id=a.id, credit_account_id=b.id,
                                               amount=300, asset="USD", pending=True, timeout_seconds=60),
                            templates=[b])
    assert unit(deps, service.expire_pending, hold).result == "rescheduled"
    clock.advance(61)
    with pytest.raises(Unprocessable) as exc:
        unit(deps, service.post_pending, hold)
    assert exc.value.code == "pending_transfer_expired"
    assert unit(deps, service.expire_pending, hold).result == "expired"
    assert unit(deps, service.expire_pending, hold).result == "already_expired"
    assert bal(deps, a.id).available == 1000 and bal(deps, b.id).credits_pending == 0
    assert_audit_clean(deps)


def test_reversal_is_a_new_transfer_and_bounded(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 1000)
    orig = service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id, credit_account_id=b.id,
                                                      amount=400, asset="USD"), templates=[b])
    part = unit(deps, service.reverse, orig.id, amount=150)
    assert part.transfer["debit_account_id"] == b.id and part.transfer["reverses"] == orig.id
    assert unit(deps, service.reverse, orig.id, amount=150).status == "exists"   # same derived id
    with pytest.raises(Unprocessable) as exc:
        unit(deps, service.reverse, orig.id, amount=300)
    assert exc.value.code == "exceeds_reversible_amount"
    unit(deps, service.reverse, orig.id)   # the rest
    with pytest.raises(Unprocessable) as exc:
        unit(deps, service.reverse, orig.id, id=tid())
    assert exc.value.code == "transfer_already_reversed"
    assert bal(deps, a.id).posted == 1000 and bal(deps, b.id).posted == 0
    original = deps.db.collection(TRANSFERS).document(orig.id).get().to_dict()
    assert original["amount"] == 400 and original["reversed_amount"] == 400  # never edited
    assert_audit_clean(deps)


def test_closed_account_refuses_transfers(deps):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 100)
    fund(deps, b.owner_id, 1)
    unit(deps, accounts.close_account, b.id)
    with pytest.raises(Unprocessable) as exc:
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=a.id, credit_account_id=b.id,
                                                   amount=5, asset="USD"))
    assert exc.value.code == "account_closed" and exc.value.param == "credit_account_id"


def test_hot_account_credits_are_sharded_and_debits_checked(deps):
    db, now = deps.db, deps.clock.now()
    merchant = accounts.open_account(db, accounts.system_template("settlement", "USD", "m1",
                                                                  shard_count=4), now)["id"]
    payers = wallets(deps, 3)
    for p in payers:
        fund(deps, p.owner_id, 1000)
    for p in payers:
        r = service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=p.id,
                                                       credit_account_id=merchant, amount=300, asset="USD"))
        assert r.transfer["balances_after"][merchant] is None            # hot: not serialised
        assert r.transfer["balances_after"][p.id]["available"] == 700     # wallet: exact
    main = db.collection("ledger_accounts").document(merchant).get().to_dict()
    assert main["credits_posted"] == 0                                    # nothing on the main doc
    assert bal(deps, merchant).credits_posted == 900                      # main + Σ shards
    payout = accounts.wallet_template(new_user_id(), "USD")
    with pytest.raises(Unprocessable) as exc:
        service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=merchant,
                                                   credit_account_id=payout.id, amount=901,
                                                   asset="USD"), templates=[payout])
    assert exc.value.code == "insufficient_funds"
    service.transfer_now(deps, TransferSpec(id=tid(), debit_account_id=merchant, credit_account_id=payout.id,
                                               amount=900, asset="USD"), templates=[payout])
    assert bal(deps, merchant).available == 0
    assert_audit_clean(deps)


def test_crash_after_commit_before_publish_is_recovered_by_the_sweeper(deps, monkeypatch):
    a, b = wallets(deps)
    fund(deps, a.owner_id, 100)

    def boom(*args, **kwargs):
        raise RuntimeError("process died after commit")
    from shared.platform import outbox, uow as uow_mod
    monkeypatch.setattr(uow_mod.outbox, "deliver", boom)
    spec = TransferSpec(id=tid(), debit_account_id=a.id, credit_account_id=b.id, amount=60, asset="USD")
    with pytest.raises(RuntimeError):
        service.transfer_now(deps, spec, templates=[b])
    monkeypatch.undo()
    events = [e.to_dict() for e in deps.db.collection("events").stream()
              if e.get("data")["object"].get("id") == spec.id]
    assert sorted(e["tenant"] for e in events) == sorted([a.owner_id, b.owner_id])
    assert all(e["type"] == "transfer.created" for e in events)
    pending = [r.to_dict() for r in deps.db.collection(outbox.OUTBOX).stream()
               if not r.get("published") and {e["id"] for e in r.get("events")} == {e["id"] for e in events}]
    assert len(pending) == 1            # ONE outbox record for the commit, left for the sweeper
    later = deps.clock.now() + dt.timedelta(minutes=5)
    assert sweep(deps.db, deps.publisher, deps.tasks, now=later) >= 1
    assert deps.db.collection(outbox.OUTBOX).document(pending[0]["id"]).get().get("published")
    assert service.transfer_now(deps, spec, templates=[b]).status == "exists"  # retry: no 2nd effect
    assert bal(deps, a.id).posted == 40
