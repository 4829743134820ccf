"""The crypto method on the page: which (network, asset) pairs the payer may choose, choosing one
(``shared.payments.crypto_method.choose``: a deposit address, the amount due, its rate locked),
and the payment request shown afterwards (QR code, address, amount, EIP-681 link, countdown).

The QR code is a ``data:`` PNG (1-bit, pypng, about 1 KB): no request, allowed by the CSP's
``img-src data:``. Indicative amounts in the chooser come from the rates cache (no I/O when
warm); when no rate is available the option is shown without one and choosing it answers the
rate service's 503 as a message.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import types
from typing import Any

from shared.chain import payment_uri, qr
from shared.chain.networks import chain_networks
from shared.checkout import money
from shared.ledger import assets
from shared.payments import crypto_method
from shared.platform.errors import InvalidRequest, PayloomError


@dataclasses.dataclass(frozen=True)
class Option:
    value: str            # "<network>:<asset>", what the form posts
    network: str
    asset: str
    token: str | None
    indicative: str       # "25.00 USDC" or "" when no rate is available


def _indicative(deps, doc: dict[str, Any], asset: str, lang: str) -> str:
    if doc.get("amount") is None:
        return ""
    if doc["currency"] == asset:
        return money.ledger(doc["amount"], asset, lang)
    from shared.rates import service as rates
    try:
        conv = rates.convert(deps, int(doc["amount"]), doc["currency"], asset)
    except PayloomError:
        return ""
    return money.ledger(conv.amount, asset, lang)


def options(deps, doc: dict[str, Any], accepted: tuple[str, ...] | None, lang: str) -> list[Option]:
    """Every network of the intent's mode × every on-chain asset it carries that the merchant
    accepts (the intent's own currency always)."""
    out = []
    for network in chain_networks(deps).for_mode(bool(doc["livemode"])):
        for code in network.assets:
            asset = assets.ASSETS.get(code)
            if asset is None or asset.onchain_decimals is None:
                continue
            if accepted is not None and code not in accepted and code != doc["currency"]:
                continue
            out.append(Option(f"{network.name}:{code}", network.name, code,
                              network.tokens.get(code), _indicative(deps, doc, code, lang)))
    return out


def choose(deps, request, secret: str, doc: dict[str, Any], value: str) -> None:
    """Choose crypto for the intent (the payer's client secret authorises it)."""
    network, _, asset = (value or "").partition(":")
    try:
        body = crypto_method.ChooseCrypto(network=network, asset=asset, client_secret=secret)
    except ValueError:
        raise InvalidRequest("Choose a network and a currency.", code="parameter_invalid",
                             param="option") from None
    crypto_method.choose(types.SimpleNamespace(deps=deps, request=request), doc["id"], body)


@functools.lru_cache(maxsize=512)
def qr_data_uri(uri: str) -> str:
    return "data:image/png;base64," + base64.b64encode(qr.qr_png(uri, box_size=5)).decode()


def details(doc: dict[str, Any], lang: str) -> dict[str, Any] | None:
    """The chosen payment request as the page shows it (None before crypto is chosen)."""
    from shared.checkout.view import crypto_remaining
    c = doc.get("crypto")
    if not c:
        return None
    due = crypto_remaining(doc)
    uri = c["uri"]
    if due is not None and int(c.get("received") or 0) and due > 0:
        # part arrived: the wallet link and QR ask for what is still due, not the whole
        uri = (payment_uri.erc20_uri(c["token"], c["address"], c["chain_id"], due) if c.get("token")
               else payment_uri.native_uri(c["address"], c["chain_id"], due))
    return {
        "network": c["network"], "chain_id": c["chain_id"], "asset": c["asset"],
        "token": c.get("token"), "address": c["address"], "uri": uri,
        "amount": money.onchain(c.get("amount_due"), c["asset"], lang),
        "amount_plain": money.plain_base(c.get("amount_due"), c["asset"]),
        "remaining": money.onchain(due, c["asset"], lang) if due is not None else "",
        "remaining_plain": money.plain_base(due, c["asset"]) if due is not None else "",
        "received": money.onchain(c.get("received") or 0, c["asset"], lang),
        "rate": (c.get("rate") or {}).get("rate"),
        "qr": qr_data_uri(uri),
    }
