"""Pure rules of the crypto method (amounts, dust, allocation indices, unmatched reasons) and
the deposit-address allocation on the Firestore emulator, concurrent creation included."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.payments import crypto_events, crypto_method, deposit
from shared.platform.errors import InvalidRequest
from shared.platform.uow import run_unit


def test_amount_due_same_asset_is_exact():
    assert crypto_method.amount_due_base(1_500_000_000, "ETH", "ETH") == 15 * 10**17
    assert crypto_method.amount_due_base(25_000_000, "USDC", "USDC") == 25_000_000
    assert crypto_method.amount_due_base(None, "ETH", "ETH") is None
    assert crypto_method.amount_due_base(1_000, "USD", "MUSD", converted_units=10_000_000) == \
        10 * 10**18
    with pytest.raises(InvalidRequest):
        crypto_method.amount_due_base(100, "USD", "KHR", converted_units=1)
    with pytest.raises(InvalidRequest):
        crypto_method.amount_due_base(100, "USD", "ETH", converted_units=0)


@given(st.integers(min_value=0, max_value=10**30))
def test_received_units_never_lose_a_base_unit(base):
    units, dust = crypto_method.received_units(base, asset="ETH", currency="ETH", amount=None,
                                               amount_due=None)
    assert units * 10**9 + dust == base and 0 <= dust < 10**9


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**24),
       st.integers(min_value=0, max_value=10**24))
def test_cross_currency_credit_is_proportional_and_exact_at_the_due_amount(amount, due, base):
    exact, _ = crypto_method.received_units(due, asset="ETH", currency="USD", amount=amount,
                                            amount_due=due)
    assert exact == amount
    got, _ = crypto_method.received_units(base, asset="ETH", currency="USD", amount=amount,
                                          amount_due=due)
    assert got * due <= base * amount < (got + 1) * due      # rounded down, by less than one unit


def test_topup_in_another_currency_uses_the_locked_rate():
    units, _ = crypto_method.received_units(15 * 10**17, asset="ETH", currency="USD", amount=None,
                                            amount_due=None, rate="2000.005")
    assert units == 300000  # 1.5 ETH × 2000.005 USD = 3000.0075 USD → 300000 cents (down)


def test_custodial_shards_own_disjoint_indices():
    seen = set()
    for k in range(deposit.CUSTODIAL_SHARDS):
        tree = deposit.Tree("custodial", "platform", k, deposit.CUSTODIAL_SHARDS)
        for n in range(50):
            i = deposit.index_for(tree, n)
            assert i not in seen
            seen.add(i)
    assert seen == set(range(50 * deposit.CUSTODIAL_SHARDS))
    t = deposit.choose_tree("mch_x", has_xpub=False, intent_id="pi_abc")
    assert t == deposit.choose_tree("mch_y", has_xpub=False, intent_id="pi_abc")   # stable
    assert deposit.choose_tree("mch_x", has_xpub=True, intent_id="pi_abc").key == "mch_x"


def _doc(**kw):
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    base = {"status": "requires_payment_method", "method": None, "late_until": now,
            "crypto": {"address": "0xAbC0000000000000000000000000000000000001", "asset": "USDC",
                       "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}
    base.update(kw)
    return base, now


def test_unmatched_reasons():
    doc, now = _doc()
    t = {"to": "0xabc0000000000000000000000000000000000001", "asset": "USDC",
         "token": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
         "first_seen_at": now - dt.timedelta(seconds=1)}
    assert crypto_events.unmatched_reason(doc, t) is None
    assert crypto_events.unmatched_reason(doc, {**t, "asset": "PPT", "token": "0x1"}) == "wrong_asset"
    assert crypto_events.unmatched_reason(doc, {**t, "to": "0x" + "1" * 40}) == "unknown_address"
    assert crypto_events.unmatched_reason({**doc, "status": "canceled"}, t) == "intent_canceled"
    assert crypto_events.unmatched_reason({**doc, "method": "wallet"}, t) == "paid_by_other_method"
    assert crypto_events.unmatched_reason(doc, {**t, "first_seen_at": now + dt.timedelta(seconds=1)}
                                          ) == "after_late_window"


def _fake_address(i: int) -> str:
    return "0x" + f"{i:040x}"


def test_allocation_skips_watched_addresses_and_survives_concurrency(deps):
    """Concurrent allocations on ONE counter: every unit gets a distinct index (the loser of a
    race re-runs with fresh reads); an address already watched is skipped."""
    tree = deposit.Tree("xpub", "mch_alloc")
    now = deps.clock.now()
    db = deps.db
    db.collection(deposit.WATCH).document(deposit.watch_id("anvil", _fake_address(0))).set(
        {"intent_id": "pi_other"})                          # index 0 is taken on this network
    got: list[deposit.Allocation] = []
    lock = threading.Lock()

    def one(k):
        def unit(uow):
            a = deposit.allocate(uow, tree=tree, network="anvil", livemode=False,
                                 derive=_fake_address, now=now)
            uow.create(deposit.watch_ref(uow.db, "anvil", a.address), {"intent_id": f"pi_{k}"})
            return a
        a = run_unit(deps, unit)
        with lock:
            got.append(a)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2, 6):
        one(k)
    indices = sorted(a.index for a in got)
    assert indices == [1, 2, 3, 4, 5, 6]
    counter = deposit.counter_ref(db, tree, "anvil", False).get().to_dict()
    assert counter["next"] == 7
    # another mode has its own counter; its index 1 is already watched on this network: skipped
    a = run_unit(deps, lambda uow: deposit.allocate(uow, tree=tree, network="anvil",
                                                   livemode=True, derive=_fake_address, now=now))
    assert a.index == 7 and a.skipped == 7
