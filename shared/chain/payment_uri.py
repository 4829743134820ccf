"""EIP-681 payment request URIs: what a wallet scans to pay a deposit address.

    native:  ethereum:<deposit address>@<chain id>?value=<wei>
    ERC-20:  ethereum:<token contract>@<chain id>/transfer?address=<deposit address>&uint256=<base units>

We write amounts as plain integers in base units (exact; every wallet reads them) and read the
full EIP-681 number grammar back, scientific notation included (``value=2.014e18``, as MetaMask
and Trust write them), exactly, with ``Decimal`` and never through a float: an amount that is
not a whole number of base units is rejected, not rounded. Pure: no RPC, no I/O.

Grammar (EIP-681)::

    request        = "ethereum" ":" [ "pay-" ]target_address [ "@" chain_id ] [ "/" function_name ] [ "?" parameters ]
    number         = [ "-" / "+" ] *DIGIT [ "." 1*DIGIT ] [ ( "e" / "E" ) [ 1*DIGIT ] ]
"""
from __future__ import annotations

import dataclasses
import re
import urllib.parse
from decimal import Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING

from eth_utils import is_address, to_checksum_address

from shared.ledger.assets import get_asset, to_onchain
from shared.platform.errors import InvalidRequest

if TYPE_CHECKING:
    from shared.chain.networks import Network

UINT256_MAX = 2**256 - 1
_URI_RE = re.compile(r"^ethereum:(?:pay-)?(?P<target>0x[0-9a-fA-F]{40})(?:@(?P<chain>[0-9]+))?"
                     r"(?:/(?P<function>[A-Za-z_][A-Za-z0-9_]*))?(?:\?(?P<query>.*))?$")
_NUMBER_RE = re.compile(r"^[+-]?[0-9]*(?:\.[0-9]+)?(?:[eE][0-9]*)?$")


class InvalidPaymentUri(InvalidRequest):
    code = "invalid_payment_uri"


@dataclasses.dataclass(frozen=True)
class PaymentRequest:
    """A parsed (or to-be-written) request. ``recipient`` is who gets the funds (the deposit
    address); ``token`` the ERC-20 contract, ``None`` for the native asset; ``amount`` in base
    units (wei or the token's smallest unit), ``None`` when the payer chooses (a top-up)."""
    recipient: str
    chain_id: int | None
    amount: int | None = None
    token: str | None = None

    @property
    def is_token(self) -> bool:
        return self.token is not None

    def to_uri(self) -> str:
        if self.amount is not None and not 0 <= self.amount <= UINT256_MAX:
            raise ValueError("amount out of uint256 range")
        chain = f"@{self.chain_id}" if self.chain_id is not None else ""
        if self.token is None:
            query = f"?value={self.amount}" if self.amount is not None else ""
            return f"ethereum:{to_checksum_address(self.recipient)}{chain}{query}"
        query = f"address={to_checksum_address(self.recipient)}"
        if self.amount is not None:
            query += f"&uint256={self.amount}"
        return f"ethereum:{to_checksum_address(self.token)}{chain}/transfer?{query}"


def native_uri(recipient: str, chain_id: int, amount_wei: int | None) -> str:
    return PaymentRequest(recipient=_address(recipient, "recipient"), chain_id=chain_id,
                          amount=amount_wei).to_uri()


def erc20_uri(token: str, recipient: str, chain_id: int, amount: int | None) -> str:
    return PaymentRequest(recipient=_address(recipient, "recipient"), chain_id=chain_id,
                          amount=amount, token=_address(token, "token")).to_uri()


def payment_request(network: Network, asset: str, recipient: str,
                    ledger_units: int | None) -> PaymentRequest:
    """The request for ``ledger_units`` of ``asset`` (ledger scale, as on the intent) to a
    deposit address on ``network``; the base-unit conversion is exact (``assets.to_onchain``)."""
    get_asset(asset)
    token = network.token_address(asset)  # 400 if the network does not carry the asset
    amount = int(to_onchain(ledger_units, asset)) if ledger_units is not None else None
    return PaymentRequest(recipient=_address(recipient, "recipient"), chain_id=network.chain_id,
                          amount=amount, token=token)


def parse_number(text: str, *, param: str) -> int:
    """An EIP-681 number as an exact non-negative integer (``2.014e18`` → 2014000000000000000)."""
    if not text or not _NUMBER_RE.match(text) or not re.search(r"[0-9]", text.split("e")[0].split("E")[0]):
        raise InvalidPaymentUri(f"{param} is not a number", param=param)
    mantissa, _, exponent = text.lower().partition("e")
    if len(exponent) > 3:  # 1e999 is far past uint256 already; refuse before computing
        raise InvalidPaymentUri(f"{param} is out of range", param=param)
    try:
        with localcontext() as ctx:
            ctx.prec = 200
            value = Decimal(mantissa) * (Decimal(10) ** int(exponent or "0"))
    except (InvalidOperation, ValueError):
        raise InvalidPaymentUri(f"{param} is not a number", param=param) from None
    if value != value.to_integral_value():
        raise InvalidPaymentUri(f"{param} is not a whole number of base units", param=param)
    amount = int(value)
    if not 0 <= amount <= UINT256_MAX:
        raise InvalidPaymentUri(f"{param} is out of range", param=param)
    return amount


def parse_uri(uri: str) -> PaymentRequest:
    """Read an EIP-681 payment request (native transfer or ERC-20 ``transfer``); 400
    ``invalid_payment_uri`` for anything else (other functions, ENS names, bad numbers)."""
    if not isinstance(uri, str):
        raise InvalidPaymentUri("not an EIP-681 URI", param="uri")
    match = _URI_RE.match(uri.strip())
    if not match:
        raise InvalidPaymentUri("not an EIP-681 payment URI (ethereum:<address>[@chain]…)",
                                param="uri")
    target = _address(match["target"], "uri")
    chain_id = int(match["chain"]) if match["chain"] else None
    if chain_id is not None and chain_id <= 0:
        raise InvalidPaymentUri("chain id must be positive", param="uri")
    params: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(match["query"] or "", keep_blank_values=True,
                                             strict_parsing=bool(match["query"])):
        if key in params:
            raise InvalidPaymentUri(f"parameter {key} repeated", param="uri")
        params[key] = value
    function = match["function"]
    if function is None:
        unknown = set(params) - {"value", "gas", "gasLimit", "gasPrice"}
        if unknown:
            raise InvalidPaymentUri(f"unexpected parameters {sorted(unknown)}", param="uri")
        amount = parse_number(params["value"], param="value") if "value" in params else None
        return PaymentRequest(recipient=target, chain_id=chain_id, amount=amount)
    if function != "transfer":
        raise InvalidPaymentUri(f"function {function} is not a payment", param="uri")
    if "address" not in params:
        raise InvalidPaymentUri("an ERC-20 transfer needs address=<recipient>", param="uri")
    if params.get("value") not in (None, "0"):
        raise InvalidPaymentUri("an ERC-20 transfer sends no ether (value)", param="uri")
    unknown = set(params) - {"address", "uint256", "value", "gas", "gasLimit", "gasPrice"}
    if unknown:
        raise InvalidPaymentUri(f"unexpected parameters {sorted(unknown)}", param="uri")
    amount = parse_number(params["uint256"], param="uint256") if "uint256" in params else None
    return PaymentRequest(recipient=_address(params["address"], "address"), chain_id=chain_id,
                          amount=amount, token=target)


def _address(value: str, param: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidPaymentUri(f"{param} is not an address", param=param)
    if value != value.lower() and value[2:] != value[2:].upper() and to_checksum_address(value) != value:
        raise InvalidPaymentUri(f"{param} has a wrong EIP-55 checksum", param=param)
    return to_checksum_address(value)
