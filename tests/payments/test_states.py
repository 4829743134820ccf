"""The intent state rules, pure: classify and the transition table (property-tested)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.payments import states as S

amounts = st.integers(min_value=1, max_value=2**63 - 1)
received = st.integers(min_value=0, max_value=2**63 - 1)
bps = st.integers(min_value=0, max_value=1000)


@given(amounts, received, bps)
@settings(max_examples=400)
def test_classify_before_expiry_partitions_by_tolerance(amount, got, tol):
    status = S.classify(amount, got, tol, expired=False, in_late_window=False)
    slack = amount * tol // 10_000
    if got == 0:
        assert status == S.REQUIRES_PAYMENT_METHOD
    elif got < amount - slack:
        assert status == S.UNDERPAID
    elif got > amount + slack:
        assert status == S.OVERPAID
    else:
        assert status == S.SUCCEEDED
    # the merchant never receives less than the tolerance it chose allows
    if status in S.PAID:
        assert got * 10_000 >= amount * (10_000 - tol)


@given(amounts, st.integers(min_value=1, max_value=2**62), bps)
def test_more_money_never_makes_an_intent_less_paid(amount, got, tol):
    order = {S.REQUIRES_PAYMENT_METHOD: 0, S.UNDERPAID: 1, S.SUCCEEDED: 2, S.OVERPAID: 3}
    a = S.classify(amount, got, tol, expired=False, in_late_window=False)
    b = S.classify(amount, got + 1, tol, expired=False, in_late_window=False)
    assert order[b] >= order[a]


@given(received, bps, st.booleans())
def test_topup_any_positive_amount_pays(got, tol, late):
    status = S.classify(None, got, tol, expired=False, in_late_window=late)
    assert status == (S.SUCCEEDED if got else S.REQUIRES_PAYMENT_METHOD)
    after = S.classify(None, got, tol, expired=True, in_late_window=True)
    assert after == (S.PAID_LATE if got else S.EXPIRED)


@given(amounts, received, bps, st.booleans())
def test_after_expiry(amount, got, tol, in_window):
    status = S.classify(amount, got, tol, expired=True, in_late_window=in_window)
    if got == 0 or not in_window:
        assert status == S.EXPIRED
    elif got < amount - amount * tol // 10_000:
        assert status == S.UNDERPAID
    else:
        assert status == S.PAID_LATE


def test_tolerance_examples():
    assert S.classify(10_000, 9_950, 50, expired=False, in_late_window=False) == S.SUCCEEDED
    assert S.classify(10_000, 9_949, 50, expired=False, in_late_window=False) == S.UNDERPAID
    assert S.classify(10_000, 10_050, 50, expired=False, in_late_window=False) == S.SUCCEEDED
    assert S.classify(10_000, 10_051, 50, expired=False, in_late_window=False) == S.OVERPAID
    assert S.classify(10_000, 10_001, 0, expired=False, in_late_window=False) == S.OVERPAID
    # rounding down: 1 bps of 99 units allows nothing
    assert S.classify(99, 98, 1, expired=False, in_late_window=False) == S.UNDERPAID


@pytest.mark.parametrize("bad", [dict(received=-1), dict(tol=-1), dict(tol=10_001), dict(amount=0)])
def test_classify_rejects_nonsense(bad):
    args = dict(amount=100, received=1, tol=0) | bad
    with pytest.raises(ValueError):
        S.classify(args["amount"], args["received"], args["tol"], expired=False, in_late_window=False)


# --- transitions --------------------------------------------------------------------------------
def test_terminal_statuses_move_nowhere():
    for status in S.TERMINAL:
        assert all(not S.can_transition(status, t) for t in S.STATUSES)


def test_every_status_is_known_and_reachable():
    assert set(S.TRANSITIONS) | S.TERMINAL == set(S.STATUSES)
    reach, todo = {S.REQUIRES_PAYMENT_METHOD}, [S.REQUIRES_PAYMENT_METHOD]
    while todo:
        for nxt in S.TRANSITIONS.get(todo.pop(), ()):
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert reach == set(S.STATUSES)


@given(st.sampled_from(S.STATUSES), amounts, received, bps, st.booleans(), st.booleans())
def test_classify_targets_are_reachable_from_open_statuses(current, amount, got, tol, exp, late):
    """Whatever classify decides for an open intent is a legal move (or staying put)."""
    if current in S.TERMINAL:
        return
    if current == S.EXPIRED:
        exp = True
    target = S.classify(amount, got, tol, expired=exp, in_late_window=late)
    if target in (S.REQUIRES_PAYMENT_METHOD, S.EXPIRED) and got == 0:
        return  # nothing counted: the receipts' code leaves the status alone
    if current == S.EXPIRED and target == S.EXPIRED:
        return  # outside the late window: recorded, the status stays
    assert target == current or S.can_transition(current, target)


def test_paid_late_only_from_expiry_paths():
    assert not S.can_transition(S.SUCCEEDED, S.PAID_LATE)
    assert S.can_transition(S.EXPIRED, S.PAID_LATE)
    assert S.can_transition(S.UNDERPAID, S.PAID_LATE)


def test_cancel_and_expiry_sets():
    for s in S.CANCELABLE:
        assert S.can_transition(s, S.CANCELED)
    for s in S.EXPIRABLE:
        assert S.can_transition(s, S.EXPIRED)
    assert S.PROCESSING not in S.CANCELABLE | S.EXPIRABLE


@pytest.mark.parametrize("policy,n", [("high", 0), ("medium", 1), ("lowmedium", 2),
                                      ("low-medium", 2), ("low", 6), (3, 3)])
def test_required_confirmations(policy, n):
    assert S.required_confirmations(policy) == n


@pytest.mark.parametrize("bad", ["fast", "", True, -1, 101])
def test_required_confirmations_rejects(bad):
    with pytest.raises(ValueError):
        S.required_confirmations(bad)
