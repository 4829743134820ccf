"""Paying an intent from a Payloom wallet: ``POST /v1/payment_intents/{id}/pay`` by the payer.

The payer is a signed-in user outside any merchant context who holds the intent's client
secret. Everything happens in ONE unit of work: the intent is read (so its write is
conditional), a two-phase hold on the payer's wallet is created and captured in the same linked
ledger batch (``settlement.settle`` with ``holds``), and the intent moves to succeeded. Two
payments of one intent at once (the same payer twice, or two payers) both read the same version
of the intent; one commit wins, the other re-runs, finds the intent paid and answers 409
``intent_not_payable`` having moved nothing: the ledger batch and the intent commit together.

The wallet's checked debit means an insufficient balance refuses the whole batch: 400
``insufficient_funds``, nothing held.

Test mode never touches a real wallet: a test-mode intent paid "from a wallet" is funded by the
``test_faucet`` system account (play money, unlimited) and records who paid; a refund reverses
those legs back to the faucet. Live money and test money never meet in one transfer. Cost: one ``get_all`` (intent, idempotency record, the
payer's wallet and the batch's transfer ids), one commit.
"""
from __future__ import annotations

from shared.ledger import accounts, assets
from shared.payments import intents, states
from shared.payments.models import PaymentIntent, PayWithWallet
from shared.platform.auth import Principal
from shared.platform.errors import InvalidRequest, PayloomError
from shared.platform.uow import UnitOfWork

METHOD = "wallet"
PAYABLE = frozenset({states.REQUIRES_PAYMENT_METHOD})


def funding_template(payer_id: str, asset: str, livemode: bool):
    """The ledger account a wallet payment is drawn from: the payer's wallet in live mode, the
    test faucet in test mode (never a real wallet)."""
    if livemode:
        return accounts.wallet_template(payer_id, asset)
    return accounts.system_template("test_faucet", asset, "test")


def pay(uow: UnitOfWork, principal: Principal, intent_id: str, body: PayWithWallet) -> PaymentIntent:
    ref, doc = intents.load_for_update(uow, intent_id)
    intents.check_client_secret(doc, body.client_secret)
    if METHOD not in doc["payment_method_types"]:
        raise InvalidRequest("This payment intent does not accept wallet payments.",
                             code="payment_method_not_accepted", param="payment_method_types")
    if doc["status"] not in PAYABLE or uow.now >= doc["expires_at"]:
        status = doc["status"] if doc["status"] not in PAYABLE else states.EXPIRED
        raise intents.IntentNotPayable(f"This payment intent is {status} and cannot be paid.")
    if doc["amount"] is None:
        raise InvalidRequest("A payment intent without an amount (a top-up) cannot be paid "
                             "from a wallet.", code="amount_required")
    asset = assets.get_asset(doc["currency"])
    payer = funding_template(principal.id, asset.code, doc["livemode"])
    reference = f"wallet:{principal.id}"
    try:
        doc = intents.record_received(uow, ref, doc, doc["amount"], method=METHOD, final=True,
                                      reference=reference, hold=True, source=payer,
                                      extra={"payer": principal.id})
    except PayloomError as exc:
        if exc.code == "insufficient_funds":
            raise InvalidRequest("The wallet's available balance does not cover this payment.",
                                 code="insufficient_funds", param="amount") from None
        raise
    if doc["status"] not in states.PAID:  # pragma: no cover — a full payment always pays
        raise intents.IntentNotPayable("This payment intent could not be paid.")
    return intents.resource(doc)
