"""Concurrency against the emulator: no double spend, exact hot-account credits.

Same-document transactional contention stays at 2 threads (the emulator stalls at 3+, see
LOCAL_STACK.md); the hot account takes 8 concurrent writers because its credits are blind
increments into shards and never read in the transaction.
"""
import concurrent.futures
import threading

from shared.ledger import accounts, audit, service
from shared.ledger.model import TransferSpec
from shared.platform.errors import Unprocessable
from shared.platform.ids import new_id
from tests.ledger.conftest import fund, new_user_id


def test_two_simultaneous_debits_exceeding_the_balance_exactly_one_wins(deps):
    a = fund(deps, new_user_id(), 1000)
    b, c = (accounts.wallet_template(new_user_id(), "USD") for _ in range(2))
    barrier = threading.Barrier(2)

    def spend(target):
        barrier.wait()
        try:
            service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=a,
                                                       credit_account_id=target.id, amount=700,
                                                       asset="USD"), templates=[target])
            return "ok"
        except Unprocessable as exc:
            return exc.code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(spend, (b, c)))
    assert outcomes == ["insufficient_funds", "ok"]
    assert accounts.balance(deps.db, a).available == 300
    assert audit.check(audit.snapshot(deps.db))[0] == []


def test_many_concurrent_credits_to_one_hot_account_add_up_exactly(deps):
    threads, per_thread, amount = 8, 25, 7
    db, now = deps.db, deps.clock.now()
    merchant = accounts.open_account(db, accounts.system_template("settlement", "USD", "hot-test"), now)["id"]
    payers = [fund(deps, new_user_id(), per_thread * amount) for _ in range(threads)]

    def pay(i):
        # Each thread pays from its own wallet (serialised only with itself); all credit one
        # hot account.
        for _ in range(per_thread):
            service.transfer_now(deps, TransferSpec(id=new_id("txf"), debit_account_id=payers[i],
                                                       credit_account_id=merchant, amount=amount,
                                                       asset="USD", code="payment"))
        return i

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        assert sorted(pool.map(pay, range(threads))) == list(range(threads))
    got = accounts.balance(db, merchant)
    assert got.credits_posted == threads * per_thread * amount
    shards = [s.to_dict() for s in db.collection("ledger_accounts").document(merchant)
              .collection("balance_shards").stream()]
    assert len(shards) > 1 and sum(s["credits_posted"] for s in shards) == got.credits_posted
    assert all(accounts.balance(db, p).available == 0 for p in payers)
    assert audit.check(audit.snapshot(db))[0] == []
