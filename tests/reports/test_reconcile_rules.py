"""The reconciliation's accounting rules, pure: every category of explained money, the two
checks that locate a difference, who may spend, and the batched calls."""
from __future__ import annotations

import datetime as dt

from eth_account import Account

from shared.reports import reconcile as R

NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
DF = 10**9                                       # ETH: wei per gwei


def t(tid, amount, status="confirmed", block=10, **kw):
    return {"id": tid, "amount": str(amount), "status": status, "block_number": block,
            "first_seen_at": NOW - dt.timedelta(minutes=1), **kw}


def rec(applied="confirmed", units=1, unmatched=None):
    return {"applied": applied, "units": units, "unmatched": unmatched}


def settled(units, **kw):
    return {"settled": True, "amount": units, **kw}


def test_a_settled_payment_with_dust_is_exactly_explained():
    x = R.explain(5 * DF + 7, [t("a", 5 * DF + 7)], {"a": rec()}, {"a": settled(5)}, 5 * DF,
                  dust_factor=DF, block=10, now=NOW)
    assert (x.booked, x.dust, x.expected, x.difference, x.kinds) == (5 * DF, 7, 5 * DF + 7, 0, [])


def test_pending_unmatched_unsettled_and_whole_dust_are_not_booked():
    ts = [t("p", 100, "seen"), t("u", 200), t("s", 300 * DF), t("d", 9)]
    recs = {"p": rec("seen"), "u": rec(unmatched="wrong_asset"), "s": rec(units=300),
            "d": rec(units=0)}
    x = R.explain(100 + 200 + 300 * DF + 9, ts, recs, {}, 0, dust_factor=DF, block=10, now=NOW)
    assert (x.pending, x.unmatched, x.unsettled, x.dust) == (100, 200, 300 * DF, 9)
    assert x.difference == 0 and x.kinds == []


def test_blocks_after_the_cursor_are_not_counted():
    x = R.explain(0, [t("a", 50, block=11)], {"a": rec()}, {}, 0, dust_factor=DF, block=10, now=NOW)
    assert x.watcher == 0 and x.kinds == []


def test_consumer_lag_is_in_flight_then_stuck():
    fresh = R.explain(70, [t("a", 70)], {}, {}, 0, dust_factor=DF, block=10, now=NOW)
    assert (fresh.in_flight, fresh.stuck, fresh.kinds) == (70, 0, [])
    old = t("a", 70, confirmed_at=NOW - dt.timedelta(hours=2))
    late = R.explain(70, [old], {"a": rec("seen")}, {}, 0, dust_factor=DF, block=10, now=NOW)
    assert (late.in_flight, late.stuck, late.kinds) == (70, 70, ["stuck"])


def test_a_reorged_transfer_still_booked_is_in_flight_then_stuck():
    gone = t("a", 4 * DF, status="reorged", reorged_at=NOW - dt.timedelta(seconds=5))
    x = R.explain(0, [gone], {"a": rec()}, {"a": settled(4)}, 4 * DF, dust_factor=DF, block=10,
                  now=NOW)
    assert (x.reorg_booked, x.expected, x.kinds) == (4 * DF, 0, [])
    gone["reorged_at"] = NOW - dt.timedelta(hours=3)
    x = R.explain(0, [gone], {"a": rec()}, {"a": settled(4)}, 4 * DF, dust_factor=DF, block=10,
                  now=NOW)
    assert x.kinds == ["stuck"]
    # once the consumer reversed it: nothing booked, nothing expected
    x = R.explain(0, [gone], {"a": rec("reorged")}, {"a": {**settled(4), "settled": False}}, 0,
                  dust_factor=DF, block=10, now=NOW)
    assert (x.expected, x.kinds) == (0, [])


def test_unobserved_money_and_ledger_gap_are_told_apart():
    x = R.explain(10 + 3, [t("a", 10)], {"a": rec(units=0)}, {}, 0, dust_factor=DF, block=10,
                  now=NOW)
    assert (x.unobserved, x.ledger_gap, x.difference, x.kinds) == (3, 0, 3, ["unobserved"])
    y = R.explain(5 * DF, [t("a", 5 * DF)], {"a": rec()}, {"a": settled(5)}, 6 * DF,
                  dust_factor=DF, block=10, now=NOW)
    assert (y.unobserved, y.ledger_gap, y.difference, y.kinds) == (0, DF, -DF, ["ledger_mismatch"])


def test_who_may_spend():
    custodial = R.explain(0, [], {}, {}, 0, dust_factor=DF, block=10, now=NOW, nonce=1,
                          tree="custodial")
    assert custodial.kinds == ["custody_spent"]
    owner = R.explain(0, [t("a", 10)], {"a": rec(units=0)}, {}, 0, dust_factor=DF, block=10,
                      now=NOW, nonce=2, tree="xpub")
    assert owner.owner_spent and owner.unobserved == -10 and owner.kinds == []
    assert owner.breakdown()["owner_spent"] == "true"


def test_ledger_booked_counts_external_both_ways_and_skips_holds():
    ext = "acc_ext"
    ts = [{"kind": "single", "amount": 90, "debit_account_id": ext, "credit_account_id": "s"},
          {"kind": "single", "amount": 10, "debit_account_id": ext, "credit_account_id": "f"},
          {"kind": "single", "amount": 90, "debit_account_id": "s", "credit_account_id": ext},
          {"kind": "pending", "amount": 50, "debit_account_id": ext, "credit_account_id": "s"}]
    assert R.ledger_booked(ts, ext) == 10


def test_balance_calls_and_quantities():
    calls = R.balance_calls("0x00000000000000000000000000000000000000AB", {"USDC": "0xT"}, "0xa")
    assert [c[0] for c in calls] == ["eth_getTransactionCount", "eth_getBalance", "eth_call"]
    assert calls[2][1][0]["data"] == "0x70a08231" + "0" * 62 + "ab" and calls[2][1][1] == "0xa"
    assert R.quantity("0x") == 0 and R.quantity("0x10") == 16 and R.quantity(None) == 0
    assert R.run_id("anvil", "k") == R.run_id("anvil", "k") != R.run_id("anvil", "j")


# --- sweeps (ADR 0038): their outflows and nonces are explained ------------------------------------
def sweep_doc(address, asset, *, amount, mined_block, status=1, value="0", fee=21_000 * DF,
              top_up=None, network_name="anvil"):
    tx = {"mined": {"block_number": mined_block, "status": status, "value": value,
                    "fee": str(fee)} if mined_block is not None else None}
    ups = [{"mined": {"block_number": top_up[1], "status": 1, "value": str(top_up[0])}}] if top_up else []
    return {"network": network_name, "kind": "sweep", "from": address, "asset": asset,
            "amount": str(amount), "tx": tx, "top_ups": ups}


def test_sweep_flows_count_mined_outflows_fees_and_top_ups_up_to_the_block():
    a = Account.create().address
    docs = [sweep_doc(a, "ETH", amount=5, value="5", mined_block=10, fee=7),
            sweep_doc(a, "USDC", amount=9, mined_block=12, fee=11, top_up=(30, 11)),
            sweep_doc(a, "USDC", amount=4, mined_block=20, fee=3),          # after the block
            sweep_doc(a, "USDC", amount=4, mined_block=None),               # not mined yet
            sweep_doc(a, "PPT", amount=6, mined_block=13, status=0, fee=2),  # reverted: fee only
            sweep_doc(a, "ETH", amount=5, value="5", mined_block=9, network_name="other")]
    flows = R.sweep_flows(docs, "anvil", "ETH", 15)
    assert flows[a.lower()] == {"nonces": 3, "ETH": 5 + 7 + 11 + 2 - 30, "USDC": 9}


def test_explained_sweeps_are_not_custody_spent_but_one_more_transaction_is():
    # a token address after its sweep: its ether is the top-up's unspent rest (swept < 0)
    x = R.explain(40, [], {}, {}, 0, dust_factor=1, block=10, now=NOW, nonce=2,
                  tree="custodial", swept=-40, sweep_nonces=2)
    assert (x.expected, x.difference, x.unobserved, x.kinds) == (40, 0, 0, [])
    y = R.explain(40, [], {}, {}, 0, dust_factor=1, block=10, now=NOW, nonce=3,
                  tree="custodial", swept=-40, sweep_nonces=2)
    assert y.kinds == ["custody_spent"]
    paid = R.explain(10 * DF, [t("a", 15 * DF)], {"a": rec()}, {"a": settled(15)}, 15 * DF,
                     dust_factor=DF, block=10, now=NOW, nonce=1, tree="custodial",
                     swept=5 * DF, sweep_nonces=1)        # an ether address partly swept
    assert (paid.expected, paid.unobserved, paid.kinds) == (10 * DF, 0, [])
    assert paid.breakdown()["swept"] == str(5 * DF)
