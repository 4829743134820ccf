"""Property tests of the pure ledger rules (``shared.ledger.plan``), no Firestore: random
histories of transfers, holds, posts, voids, expiries, reversals, linked batches and retries,
applied to an in-memory store exactly as the engine writes them, keep every invariant."""
from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.ledger import accounts
from shared.ledger import plan as rules
from shared.ledger.model import Balances, TransferSpec
from shared.platform.errors import PayloomError
from shared.platform.ids import derived_id

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class Store:
    """Main documents, shards and transfers as plain values; ``apply`` writes a Plan."""

    def __init__(self):
        self.main: dict[str, dict] = {}
        self.shards: dict[tuple[str, int], Balances] = {}
        self.transfers: dict[str, dict] = {}
        self.entries: list[dict] = []

    def shard_sum(self, a: str) -> Balances:
        b = Balances()
        for (acc, _), s in self.shards.items():
            if acc == a:
                b = b + s
        return b

    def total(self, a: str) -> Balances:
        return Balances.of(self.main[a]) + self.shard_sum(a)

    def state(self, ids) -> dict[str, rules.AccountState]:
        return {a: rules.AccountState(dict(self.main[a]) if a in self.main else None, True,
                                      self.shard_sum(a)) for a in ids}

    def plan(self, specs, now, templates=()):
        ids = {x for s in specs for x in (s.id, s.pending_id, s.reverses) if x}
        transfers = {t: self.transfers.get(t) for t in ids}
        accts = {a for t in self.transfers.values() for a in (t["debit_account_id"], t["credit_account_id"])}
        accts |= {a for s in specs for a in (s.debit_account_id, s.credit_account_id) if a}
        accts |= set(self.main) | {t.id for t in templates}
        return rules.plan(specs, transfers=transfers, accounts=self.state(accts), now=now,
                          templates=templates, pick=lambda n, key: random.randrange(n))

    def apply(self, p: rules.Plan) -> None:
        for tid, fields in p.transfer_updates.items():
            assert tid in self.transfers
            self.transfers[tid].update(fields)
        for tid, doc in p.transfer_creates.items():
            assert tid not in self.transfers, "create() of an existing transfer"
            self.transfers[tid] = dict(doc)
        for a, doc in p.account_creates.items():
            assert a not in self.main
            self.main[a] = dict(doc)
        for a, delta in p.main_deltas.items():
            cur = Balances.of(self.main[a]) + delta
            self.main[a].update(cur.as_dict())
        for key, delta in p.shard_deltas.items():
            self.shards[key] = self.shards.get(key, Balances()) + delta
        self.entries += p.entries


WALLETS = [accounts.wallet_template(f"usr_prop{i}aaaaaaaa", "USD") for i in range(3)]
MERCHANT = accounts.system_template("settlement", "USD", "mch_prop", shard_count=3)
CLEARING = accounts.system_template("topup_clearing", "USD", "prop", shard_count=2)
ALL = [w.id for w in WALLETS] + [MERCHANT.id]
FLAGGED = set(ALL)

amounts = st.integers(min_value=1, max_value=500)
idx = st.integers(min_value=0, max_value=len(ALL) - 1)
pick = st.integers(min_value=0, max_value=50)
ops = st.one_of(
    st.tuples(st.just("fund"), idx, amounts),
    st.tuples(st.just("transfer"), idx, idx, amounts),
    st.tuples(st.just("hold"), idx, idx, amounts, st.booleans()),
    st.tuples(st.just("post"), pick, st.integers(min_value=1, max_value=100)),
    st.tuples(st.just("void"), pick),
    st.tuples(st.just("expire"), pick),
    st.tuples(st.just("reverse"), pick, st.integers(min_value=1, max_value=100)),
    st.tuples(st.just("linked"), idx, idx, idx, amounts, amounts),
    st.tuples(st.just("retry")),
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=120)),
)


def _new_store() -> Store:
    store = Store()
    for t in WALLETS + [MERCHANT, CLEARING]:
        store.main[t.id] = t.document(T0)
    return store


def _invariants(store: Store) -> None:
    sums = Balances()
    for a in store.main:
        b = store.total(a)
        sums = sums + b
        if a in FLAGGED:
            assert b.debits_posted + b.debits_pending <= b.credits_posted, (a, b)
        assert b.debits_pending >= 0 and b.credits_pending >= 0
    assert sums.debits_posted == sums.credits_posted
    assert sums.debits_pending == sums.credits_pending
    # balances = Σ entry effects, per account
    per = {}
    for e in store.entries:
        per[e["account_id"]] = per.get(e["account_id"], Balances()) + Balances.of(e["effect"])
    for a in store.main:
        assert per.get(a, Balances()) == store.total(a)
    # a hold is resolved at most once, by a transfer naming it
    resolvers = {}
    for t in store.transfers.values():
        if t["kind"] in ("post_pending", "void_pending", "expire_pending"):
            assert t["pending_id"] not in resolvers, "resolved twice"
            resolvers[t["pending_id"]] = t["id"]
    for t in store.transfers.values():
        if t["kind"] == "pending":
            assert (t["pending_status"] == "pending") == (t["id"] not in resolvers)
        if t["kind"] in ("single", "post_pending"):
            rev = sum(x["amount"] for x in store.transfers.values() if x.get("reverses") == t["id"])
            assert t["reversed_amount"] == rev <= t["amount"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(ops, min_size=1, max_size=25), seed=st.integers(0, 2**16))
def test_random_histories_keep_every_invariant(steps, seed):
    random.seed(seed)
    store, now, n = _new_store(), T0, 0
    last: list[TransferSpec] | None = None

    def tid() -> str:
        nonlocal n
        n += 1
        return derived_id("txf", str(seed), str(n))

    for step in steps:
        kind = step[0]
        holds = [t for t in store.transfers.values() if t["kind"] == "pending"]
        posted = [t for t in store.transfers.values() if t["kind"] in ("single", "post_pending")]
        specs: list[TransferSpec] | None = None
        if kind == "tick":
            now += dt.timedelta(seconds=step[1])
            continue
        if kind == "fund":
            specs = [TransferSpec(id=tid(), debit_account_id=CLEARING.id, credit_account_id=ALL[step[1]],
                                  amount=step[2], asset="USD")]
        elif kind == "transfer" and step[1] != step[2]:
            specs = [TransferSpec(id=tid(), debit_account_id=ALL[step[1]], credit_account_id=ALL[step[2]],
                                  amount=step[3], asset="USD")]
        elif kind == "hold" and step[1] != step[2]:
            specs = [TransferSpec(id=tid(), debit_account_id=ALL[step[1]], credit_account_id=ALL[step[2]],
                                  amount=step[3], asset="USD", pending=True,
                                  timeout_seconds=60 if step[4] else None)]
        elif kind == "post" and holds:
            h = holds[step[1] % len(holds)]
            specs = [TransferSpec(id=tid(), post_pending_id=h["id"],
                                  amount=max(1, h["amount"] * step[2] // 100))]
        elif kind == "void" and holds:
            specs = [TransferSpec(id=tid(), void_pending_id=holds[step[1] % len(holds)]["id"])]
        elif kind == "expire" and holds:
            hid = holds[step[1] % len(holds)]["id"]
            specs = [TransferSpec(id=derived_id("txf", "expire", hid), expire_pending_id=hid)]
        elif kind == "reverse" and posted:
            o = posted[step[1] % len(posted)]
            specs = [TransferSpec(id=tid(), reverses=o["id"], amount=max(1, o["amount"] * step[2] // 100))]
        elif kind == "linked" and len({step[1], step[2], step[3]}) == 3:
            a, b, c = (ALL[i] for i in step[1:4])
            specs = [TransferSpec(id=tid(), debit_account_id=a, credit_account_id=b, amount=step[4], asset="USD"),
                     TransferSpec(id=tid(), debit_account_id=b, credit_account_id=c, amount=step[5], asset="USD")]
        elif kind == "retry" and last:
            before = dict(store.transfers)
            p = store.plan(last, now)
            assert not p.created and all(r.status == "exists" for r in p.results)
            assert not (p.transfer_creates or p.transfer_updates or p.main_deltas or p.shard_deltas
                        or p.entries or p.events)
            assert store.transfers == before
            continue
        if not specs:
            continue
        snapshot = (dict(store.main), dict(store.shards), len(store.transfers))
        try:
            p = store.plan(specs, now)
        except PayloomError as exc:
            assert 400 <= exc.status < 500
            assert snapshot == (dict(store.main), dict(store.shards), len(store.transfers))
            continue
        assert p.created
        store.apply(p)
        last = specs
        _invariants(store)


def _funded(amount: int) -> Store:
    store = _new_store()
    store.apply(store.plan([TransferSpec(id="txf_fund00000001", debit_account_id=CLEARING.id,
                                         credit_account_id=WALLETS[0].id, amount=amount,
                                         asset="USD")], T0))
    return store


def test_linked_batch_is_all_or_nothing_and_names_the_failing_leg():
    store = _funded(100)
    specs = [TransferSpec(id="txf_leg000000001", debit_account_id=WALLETS[0].id,
                          credit_account_id=WALLETS[1].id, amount=60, asset="USD"),
             TransferSpec(id="txf_leg000000002", debit_account_id=WALLETS[0].id,
                          credit_account_id=WALLETS[2].id, amount=60, asset="USD")]
    with pytest.raises(PayloomError) as err:
        store.plan(specs, T0)
    assert err.value.code == "insufficient_funds" and err.value.param == "transfers[1].amount"
    specs[1].amount = 40
    p = store.plan(specs, T0)
    assert [r.status for r in p.results] == ["created", "created"]
    store.apply(p)
    assert store.total(WALLETS[0].id).available == 0


def test_credits_are_blind_shard_increments_and_debits_are_checked_in_the_main_doc():
    store = _funded(100)
    p = store.plan([TransferSpec(id="txf_p2p000000001", debit_account_id=WALLETS[0].id,
                                 credit_account_id=MERCHANT.id, amount=30, asset="USD")], T0)
    assert set(p.main_deltas) == {WALLETS[0].id}          # the checked side only
    assert {a for a, _ in p.shard_deltas} == {MERCHANT.id}  # the credit: a shard, no read needed
    # planning a credit to an account never read (cached metadata) works: nothing to check
    meta = rules.AccountState(MERCHANT.document(T0), read=False)
    q = rules.plan([TransferSpec(id="txf_p2p000000002", debit_account_id=CLEARING.id,
                                 credit_account_id=MERCHANT.id, amount=5, asset="USD")],
                   transfers={"txf_p2p000000002": None},
                   accounts={CLEARING.id: rules.AccountState(CLEARING.document(T0), read=False),
                             MERCHANT.id: meta}, now=T0)
    assert not q.main_deltas and len(q.shard_deltas) == 2
    # but a checked debit of an account whose shards were not read asks for them
    with pytest.raises(rules.NeedReads) as need:
        rules.plan([TransferSpec(id="txf_p2p000000003", debit_account_id=MERCHANT.id,
                                 credit_account_id=CLEARING.id, amount=5, asset="USD")],
                   transfers={"txf_p2p000000003": None},
                   accounts={CLEARING.id: rules.AccountState(CLEARING.document(T0), read=False),
                             MERCHANT.id: meta}, now=T0)
    assert need.value.shards == {MERCHANT.id}


def test_pending_post_void_expire_transitions():
    store = _funded(100)
    hold = TransferSpec(id="txf_hold00000001", debit_account_id=WALLETS[0].id,
                        credit_account_id=WALLETS[1].id, amount=70, asset="USD", pending=True,
                        timeout_seconds=60)
    store.apply(store.plan([hold], T0))
    assert store.total(WALLETS[0].id).available == 30
    with pytest.raises(PayloomError) as err:   # not due yet
        store.plan([TransferSpec(id="txf_exp000000001", expire_pending_id=hold.id)], T0)
    assert err.value.code == "pending_transfer_not_expired"
    with pytest.raises(PayloomError) as err:   # past expiry a capture is refused
        store.plan([TransferSpec(id="txf_post00000001", post_pending_id=hold.id)],
                   T0 + dt.timedelta(seconds=60))
    assert err.value.code == "pending_transfer_expired"
    store.apply(store.plan([TransferSpec(id="txf_post00000002", post_pending_id=hold.id, amount=50)],
                           T0 + dt.timedelta(seconds=10)))
    assert store.transfers[hold.id]["pending_status"] == "posted"
    assert store.total(WALLETS[0].id).available == 50 and store.total(WALLETS[1].id).posted == 50
    for spec in (TransferSpec(id="txf_void00000001", void_pending_id=hold.id),
                 TransferSpec(id="txf_exp000000002", expire_pending_id=hold.id)):
        with pytest.raises(PayloomError) as err:
            store.plan([spec], T0 + dt.timedelta(seconds=90))
        assert err.value.code == "pending_transfer_already_posted"
