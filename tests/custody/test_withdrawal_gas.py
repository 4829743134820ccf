"""A withdrawal's transaction through ``shared.chain.outgoing`` on a real anvil: stuck in the
pool it is replaced (same nonce, +12.5% fees) after the bump delay, the replacement is what
the destination receives, and its gas is booked once to ``network_fees`` as sweeps book theirs."""
from __future__ import annotations

import datetime as dt

from eth_account import Account

from shared.chain import outgoing
from shared.custody import audit, withdrawal_chain
from shared.ledger import accounts
from tests.custody.conftest import (
    GWEI,
    WITHDRAWALS,
    assert_ledger_clean,
    balance,
    configure,
    eth_balance,
    finish,
    fund_hot,
    fund_revenue,
    make_staff,
    rpc,
    withdrawal_doc,
)
from tests.refunds.test_crypto_refund_gas import mining_paused

NETWORK_FEES = accounts.system_account_id("network_fees", "ETH", "test")


def test_a_stuck_withdrawal_is_replaced_and_its_gas_booked_once(deps, chain, treasury, custody_api):
    hot = treasury
    staff = make_staff(deps, 1)
    configure(deps, staff.ids, threshold=1)
    fund_hot(chain, hot)
    fund_revenue(deps, "ETH", GWEI)
    to = Account.create().address
    w = custody_api.post(WITHDRAWALS, json={"network": "anvil", "asset": "ETH", "amount": GWEI // 10,
                                            "destination": to}, headers=staff.headers(0)).get_json()
    assert w["status"] == "approved", w
    booked = balance(deps, NETWORK_FEES)
    before = booked.debits_posted if booked else 0
    with mining_paused(chain):
        assert withdrawal_chain.send(deps, w["id"]) == "sent"
        deps.extras["chain.bump_policy"] = outgoing.BumpPolicy(after=dt.timedelta(0))
        assert withdrawal_chain.poll(deps, w["id"]) == "bumped"
        deps.extras["chain.bump_policy"] = outgoing.BumpPolicy()
        signed = withdrawal_doc(deps, w["id"])["chain"]
        old, new = signed["attempts"]
        assert signed["hash"] == new["hash"] and int(new["max_fee_per_gas"]) * 8 >= int(
            old["max_fee_per_gas"]) * 9
        assert int(rpc(chain, "eth_getTransactionByHash", new["hash"])["nonce"], 16) == signed["nonce"]
        rpc(chain, "evm_mine")
    assert finish(deps, chain, w["id"]) == "succeeded"
    d = withdrawal_doc(deps, w["id"])
    assert d["chain"]["hash"] == new["hash"] and eth_balance(chain, to) == 10**17
    fee = int(d["chain"]["fee"])
    assert fee > 0 and int(d["chain"]["fee_unbooked_wei"]) == fee % GWEI
    assert balance(deps, NETWORK_FEES).debits_posted - before == fee // GWEI
    assert withdrawal_chain.poll(deps, w["id"]) == "done"        # a duplicate poll books nothing
    assert balance(deps, NETWORK_FEES).debits_posted - before == fee // GWEI
    assert audit.verify(deps.db, False)["ok"]
    assert_ledger_clean(deps)
