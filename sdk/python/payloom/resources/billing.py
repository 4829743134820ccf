"""Invoices and payment links (``/v1/invoices``, ``/v1/payment_links``)."""
from __future__ import annotations

from typing import List, Optional

from payloom.objects import PayloomObject, register
from payloom.resources._base import (Createable, Deletable, Listable, Retrievable, Updateable,
                                     action, sub_list)


@register
class Invoice(Createable, Retrievable, Listable, Updateable, Deletable):
    """draft → open (``finalize``: numbered, with a payment intent) → paid | void |
    uncollectible. ``delete`` removes a draft (a finalized invoice is voided instead)."""

    OBJECT_NAME = "invoice"
    PATH = "/v1/invoices"

    id: str
    status: str
    number: Optional[str]
    customer: PayloomObject
    currency: str
    total: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    payment_intent: Optional[str]
    hosted_invoice_url: Optional[str]
    success_url: Optional[str]
    cancel_url: Optional[str]

    finalize = action("POST", "/finalize", doc="Number it, create its intent, open it.")
    void = action("POST", "/void", doc="Void an open or uncollectible invoice.")
    mark_uncollectible = action("POST", "/mark_uncollectible", doc="Stop collecting it.")
    list_lines = sub_list("/lines", doc="Every line of the invoice.")


@register
class PaymentLink(Createable, Retrievable, Listable, Updateable):
    """A shareable checkout: each visitor gets their own payment intent."""

    OBJECT_NAME = "payment_link"
    PATH = "/v1/payment_links"

    id: str
    active: bool
    url: str
    currency: str
    amount: Optional[int]
    line_items: List[PayloomObject]
    success_url: Optional[str]
    cancel_url: Optional[str]

    button = action("GET", "/button", refresh=False,
                    doc="An HTML snippet to embed (``label=``): ``.html``.")
    start_checkout = action("POST", "/intents", refresh=False,
                            doc="A visitor starts paying (``client_key``, ``amount`` for a "
                                "custom amount): an intent and its client secret.")


@register
class PaymentLinkCheckout(PayloomObject):
    OBJECT_NAME = "payment_link_checkout"
    payment_intent: str
    client_secret: str


@register
class PaymentLinkButton(PayloomObject):
    OBJECT_NAME = "payment_link_button"
    html: str


@register
class LineItem(PayloomObject):
    OBJECT_NAME = "line_item"

