"""Payment intents and refunds (``/v1/payment_intents``, ``/v1/refunds``)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from payloom.client import split_options
from payloom.objects import PayloomObject, register
from payloom.resources._base import Createable, Listable, Retrievable, Updateable, action, hybrid


@register
class PaymentIntent(Createable, Retrievable, Listable, Updateable):
    """A request to be paid: ``amount`` in integer minor units of ``currency`` (its ledger
    scale, e.g. ETH in gwei), paid by wallet, card or crypto. ``client_secret`` is only on
    the object ``create`` returns: hand it to the payer's client.

    Statuses: requires_payment_method → processing → succeeded, or canceled, expired,
    underpaid, overpaid, paid_late."""

    OBJECT_NAME = "payment_intent"
    PATH = "/v1/payment_intents"

    id: str
    merchant: str
    livemode: bool
    amount: Optional[int]
    currency: str
    amount_received: int
    amount_refunded: int
    status: str
    payment_method_types: List[str]
    method: Optional[str]
    description: Optional[str]
    metadata: Dict[str, str]
    success_url: Optional[str]     # where the hosted page sends the payer once paid
    cancel_url: Optional[str]      # (null: the merchant's branding default)
    created: int
    expires_at: int
    crypto: Optional[PayloomObject]
    client_secret: Optional[str]

    cancel = action("POST", "/cancel", doc="Cancel an intent that awaits payment or is underpaid.")
    choose_crypto = action(
        "POST", "/crypto",
        doc="Pay with crypto: allocate the intent's deposit address (``network``, ``asset``; "
            "the payer's ``client_secret`` when not called by the merchant). The answer's "
            "``crypto`` has the address, ``amount_due`` (on-chain base units, a string) and "
            "the EIP-681 ``uri``.")
    pay_with_card = action("POST", "/card", refresh=False,
                           doc="Pay with a card (``payment_method``, ``return_url``).")
    pay = action("POST", "/pay", doc="The payer (a signed-in user) pays from their wallet "
                                     "(``client_secret``).")

    @hybrid
    def qr_code(cls, id: str, params: Dict[str, Any]):
        """The PNG (``format="png"``, default) or SVG of the intent's EIP-681 request, bytes."""
        fmt = params.pop("format", "png")
        if fmt not in ("png", "svg"):
            raise ValueError("format must be 'png' or 'svg'")
        return "GET", f"{cls.instance_path(id)}/crypto/qr.{fmt}", params

    @property
    def payment_uri(self) -> Optional[str]:
        """The EIP-681 URI once crypto is chosen (``crypto.uri``)."""
        crypto = self.get("crypto")
        return crypto.get("uri") if isinstance(crypto, dict) else None


@register
class Refund(Createable, Retrievable, Listable):
    """A refund of a captured intent: ``pending`` → ``succeeded`` | ``failed``. Crypto
    refunds need the payer's ``address``."""

    OBJECT_NAME = "refund"
    PATH = "/v1/refunds"

    id: str
    payment_intent: str
    amount: int
    currency: str
    method: str
    status: str
    livemode: bool
    failure_reason: Optional[str]
    destination: Optional[PayloomObject]
    transaction: Optional[PayloomObject]

    @classmethod
    def list_for(cls, payment_intent: str, **params: Any):
        """Refunds of one intent."""
        params, options = split_options(params)
        params["payment_intent"] = payment_intent
        return cls._list(cls.PATH, params, options)
