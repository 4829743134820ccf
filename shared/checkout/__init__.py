"""checkout: the hosted payment page ``/pay/...`` (issue 10 item 1; ADR 0040).

A payer reaches a payment intent through its client secret (``/pay/<client secret>``), an
invoice's hosted URL (``/pay/invoice/<id>``) or a payment link (``/pay/link/<id>``, which makes
one intent per browser). ``access`` resolves the URL to the intent; ``view`` turns the intent into
what the page shows; the method modules (``crypto``, ``wallet``, ``card_entry``) call the payment
services in-process; ``http`` holds the routes.
"""
