"""Property test: random sequences of transfers, holds, partial posts, voids, expiries, linked
batches, reversals and retries, run against the emulator, agree with a tiny reference model and
keep every invariant (Σ debits = Σ credits per asset, no flagged account negative, balances =
sum of entries = what the transfers imply)."""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings, strategies as st

from shared.ledger import accounts, audit, service
from shared.ledger.model import TransferSpec
from shared.platform.clock import FrozenClock
from shared.platform.deps import Deps
from shared.platform.errors import PayloomError
from shared.platform.ids import new_id
from tests.ledger.conftest import new_user_id, unit

N_ACCOUNTS = 4          # 0-2 user wallets, 3 a hot merchant settlement account (both flagged)
amounts = st.integers(min_value=1, max_value=500)
idx = st.integers(min_value=0, max_value=N_ACCOUNTS - 1)
pick = st.integers(min_value=0, max_value=50)
pct = st.integers(min_value=1, max_value=100)
ops = st.one_of(
    st.tuples(st.just("fund"), idx, amounts),
    st.tuples(st.just("transfer"), idx, idx, amounts),
    st.tuples(st.just("hold"), idx, idx, amounts),
    st.tuples(st.just("post"), pick, pct),
    st.tuples(st.just("void"), pick),
    st.tuples(st.just("expire"), pick),
    st.tuples(st.just("reverse"), pick, pct),
    st.tuples(st.just("linked"), idx, idx, idx, amounts, amounts),
    st.tuples(st.just("retry")),
)


class NoTasks:
    """Holds here expire through ``service.expire_pending`` driven by the frozen clock."""
    def enqueue(self, **kw):
        return "t"


@dataclasses.dataclass
class Model:
    bal: dict[str, list[int]]            # account -> [dp, cp, dpe, cpe]
    flagged: set[str]
    holds: list[dict] = dataclasses.field(default_factory=list)
    posted: list[dict] = dataclasses.field(default_factory=list)

    def available(self, a: str) -> int:
        dp, cp, dpe, _ = self.bal[a]
        return cp - dp - dpe

    def can_debit(self, a: str, amount: int) -> bool:
        return a not in self.flagged or self.available(a) >= amount

    def move(self, d: str, c: str, dp=0, dpe=0):
        self.bal[d][0] += dp
        self.bal[d][2] += dpe
        self.bal[c][1] += dp
        self.bal[c][3] += dpe


def _ceil_pct(total: int, p: int) -> int:
    return max(1, -(-total * p // 100))


@settings(max_examples=25, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(steps=st.lists(ops, min_size=1, max_size=14))
def test_random_histories_keep_the_invariants(deps, steps):
    clock = FrozenClock(deps.clock.now())
    d = Deps(settings=deps.settings, clock=clock, tasks_factory=NoTasks)
    db, now = d.db, clock.now()
    wallets = [accounts.wallet_template(new_user_id(), "USD") for _ in range(3)]
    merchant = accounts.open_account(db, accounts.system_template(
        "settlement", "USD", new_id("mch"), shard_count=3), now)["id"]
    clearing = accounts.open_account(db, accounts.system_template(
        "topup_clearing", "USD", new_id("k"), shard_count=2), now)["id"]
    ids = [w.id for w in wallets] + [merchant]
    templates = wallets
    model = Model({a: [0, 0, 0, 0] for a in ids + [clearing]}, set(ids))
    last_specs: list[TransferSpec] | None = None

    def attempt(specs, expect_ok: bool, label):
        nonlocal last_specs
        try:
            results = service.transfer_now(d, specs, templates=templates)
        except PayloomError as exc:
            assert not expect_ok, f"{label}: unexpected {exc.code}: {exc.message}"
            return None
        assert expect_ok, f"{label}: succeeded but the model says it must fail"
        assert all(r.status == "created" for r in results)
        last_specs = specs
        return results

    for step in steps:
        kind = step[0]
        if kind == "fund":
            a = ids[step[1]]
            spec = TransferSpec(id=new_id("txf"), debit_account_id=clearing, credit_account_id=a,
                                amount=step[2], asset="USD")
            if attempt([spec], True, step):
                model.move(clearing, a, dp=step[2])
                model.posted.append({"id": spec.id, "d": clearing, "c": a, "amount": step[2], "rev": 0})
        elif kind in ("transfer", "hold"):
            a, b, amt = ids[step[1]], ids[step[2]], step[3]
            ok = a != b and model.can_debit(a, amt)
            spec = TransferSpec(id=new_id("txf"), debit_account_id=a, credit_account_id=b, amount=amt,
                                asset="USD", pending=kind == "hold",
                                timeout_seconds=60 if kind == "hold" else None)
            if attempt([spec], ok, step):
                if kind == "hold":
                    model.move(a, b, dpe=amt)
                    model.holds.append({"id": spec.id, "d": a, "c": b, "amount": amt, "status": "pending",
                                        "expires": clock.now().timestamp() + 60})
                else:
                    model.move(a, b, dp=amt)
                    model.posted.append({"id": spec.id, "d": a, "c": b, "amount": amt, "rev": 0})
        elif kind in ("post", "void", "expire") and model.holds:
            h = model.holds[step[1] % len(model.holds)]
            if kind == "expire":
                clock.advance(61)
                res = unit(d, service.expire_pending, h["id"])
                ok = h["status"] == "pending"
                assert (res.result == "expired") == ok, (step, res)
                if ok:
                    h["status"] = "expired"
                    model.move(h["d"], h["c"], dpe=-h["amount"])
                continue
            pending = h["status"] == "pending"
            if kind == "void":
                spec = TransferSpec(id=new_id("txf"), void_pending_id=h["id"])
                if attempt([spec], pending, step):
                    h["status"] = "voided"
                    model.move(h["d"], h["c"], dpe=-h["amount"])
            else:
                amt = _ceil_pct(h["amount"], step[2])
                ok = pending and clock.now().timestamp() < h["expires"]
                spec = TransferSpec(id=new_id("txf"), post_pending_id=h["id"], amount=amt)
                if attempt([spec], ok, step):
                    h["status"] = "posted"
                    model.move(h["d"], h["c"], dpe=-h["amount"], dp=amt)
                    model.posted.append({"id": spec.id, "d": h["d"], "c": h["c"], "amount": amt, "rev": 0})
        elif kind == "reverse" and model.posted:
            o = model.posted[step[1] % len(model.posted)]
            left = o["amount"] - o["rev"]
            amt = _ceil_pct(max(left, 1), step[2])
            ok = left > 0 and amt <= left and model.can_debit(o["c"], amt)
            spec = TransferSpec(id=new_id("txf"), reverses=o["id"], amount=amt)
            if attempt([spec], ok, step):
                o["rev"] += amt
                model.move(o["c"], o["d"], dp=amt)
        elif kind == "linked":
            a, b, c, x, y = ids[step[1]], ids[step[2]], ids[step[3]], step[4], step[5]
            ok = a != b and a != c and model.can_debit(a, x + y)
            specs = [TransferSpec(id=new_id("txf"), debit_account_id=a, credit_account_id=b, amount=x, asset="USD"),
                     TransferSpec(id=new_id("txf"), debit_account_id=a, credit_account_id=c, amount=y, asset="USD")]
            if attempt(specs, ok, step):
                model.move(a, b, dp=x)
                model.move(a, c, dp=y)
                model.posted += [{"id": specs[0].id, "d": a, "c": b, "amount": x, "rev": 0},
                                 {"id": specs[1].id, "d": a, "c": c, "amount": y, "rev": 0}]
        elif kind == "retry" and last_specs:
            results = service.transfer_now(d, last_specs, templates=templates)
            assert all(r.status == "exists" for r in results)

        got = accounts.read_balances(db, list(model.bal))
        for a, want in model.bal.items():
            have = got[a][1] if a in got else None
            have_list = [have.debits_posted, have.credits_posted, have.debits_pending,
                         have.credits_pending] if have else [0, 0, 0, 0]
            assert have_list == want, (step, a)
            if a in model.flagged:
                assert have_list[0] + have_list[2] <= have_list[1]

    violations, summary = audit.check(audit.snapshot(db))
    assert violations == [], violations[:3]
    usd = summary["assets"].get("USD")
    if usd:
        assert usd["debits_posted"] == usd["credits_posted"]
        assert usd["debits_pending"] == usd["credits_pending"]
