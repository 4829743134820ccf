"""The crypto payment method: a deposit address per intent, the amount due on chain, the EIP-681
request and its QR code.

``POST /v1/payment_intents/{id}/crypto`` {network, asset} (the payer with the client secret, or
the merchant) chooses crypto for an intent. Once: asking again with the same network and asset
answers the same address and amount (asking for another one is a 409 ``crypto_already_chosen``:
an address is watched for the intent's whole late window, and two open addresses per intent
would double the ways it can be overpaid).

Amount due, in the asset's on-chain base units (exact integers, never floats):

- the intent is in the same asset: ``amount × 10^(decimals − scale)`` (``assets.to_onchain``);
- another currency (USD, KHR, another token): ``shared.rates.service.convert`` rounds UP the
  amount the payer must send, and the rate is LOCKED on the intent (``crypto.rate``) for its
  lifetime: what arrives is judged against that amount, never re-quoted;
- an intent without amount (a top-up) has no amount due; any amount pays it.

What is credited per confirmed transfer (``received_units``), and the dust rule: a transfer's
base units are turned into the intent currency's minor units ROUNDED DOWN, transfer by
transfer. For the same asset the remainder below the ledger scale (e.g. sub-gwei wei) is dust:
it is recorded exactly on the transfer record and summed on the intent (``crypto.dust``, base
units), never credited to the merchant and never dropped (it stays on the deposit address and is
swept with the rest). Per-transfer rounding keeps each transfer's credit independent of the
others, so a reorg reverses exactly what that transfer added. Cross-currency: ``units =
base × amount // amount_due`` so paying exactly ``amount_due`` credits exactly ``amount``.

The chain and rate calls happen OUTSIDE the unit of work (the route is not atomic): the unit
only reads the intent, the counter and the candidate watch document, and writes them together.
"""
from __future__ import annotations

import datetime as dt
import hmac
from decimal import Decimal
from typing import Any, Literal

import flask
from pydantic import BaseModel, Field

from shared.ledger import assets
from shared.payments import deposit
from shared.platform import auth as auth_mod
from shared.platform.errors import (AuthenticationError, Conflict, InvalidRequest, NotFound,
                                    PermissionDenied)
from shared.platform.models import RequestModel
from shared.platform.uow import run_unit

# Watch a little past the late window: a payment after it is still SEEN and recorded on the
# intent as unmatched (never lost), instead of only being found by balance reconciliation.
TRAILING_WATCH = dt.timedelta(days=1)
DEFAULT_LATE_WINDOW = dt.timedelta(days=1)
CRYPTO = "crypto"


class ChooseCrypto(RequestModel):
    network: str = Field(..., min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]{1,31}$")
    asset: str = Field(..., min_length=2, max_length=10, pattern=r"^[A-Z0-9]{2,10}$")
    client_secret: str | None = Field(None, min_length=10, max_length=200,
                                      description="The payer's client secret (hosted page, "
                                                  "apps); merchants authenticate instead.")


class QrQuery(RequestModel):
    client_secret: str | None = Field(None, min_length=10, max_length=200)


class CryptoDetails(BaseModel):
    """The intent's ``crypto`` field (shown on the intent)."""
    network: str
    chain_id: int
    asset: str
    token: str | None
    address: str
    amount_due: str | None = Field(description="On-chain base units (decimal string); None for "
                                               "a top-up")
    amount_due_decimal: str | None = None
    uri: str
    expires_at: int
    rate: dict[str, Any] | None = None
    received: str = "0"
    confirmed: str = "0"
    dust: str = "0"


# ---- pure rules ------------------------------------------------------------------------------

def amount_due_base(amount: int | None, currency: str, asset: str,
                    converted_units: int | None = None) -> int | None:
    """What the payer must send, in ``asset``'s on-chain base units (exact).

    ``converted_units``: for another currency, ``convert(amount, currency → asset).amount`` in
    the asset's ledger units (the rate service rounds it up)."""
    if amount is None:
        return None
    target = assets.get_asset(asset)
    if target.onchain_decimals is None:
        raise InvalidRequest(f"{asset} is not an on-chain asset.", code="asset_not_onchain",
                             param="asset")
    if currency == asset:
        return int(assets.to_onchain(amount, target))
    if converted_units is None:
        raise ValueError("a conversion is needed for another currency")
    if converted_units <= 0:
        raise InvalidRequest("The amount converts to nothing in this asset.",
                             code="amount_too_small", param="asset")
    return int(assets.to_onchain(converted_units, target))


def received_units(amount_base: int, *, asset: str, currency: str, amount: int | None,
                   amount_due: int | None, rate: str | None = None) -> tuple[int, int]:
    """(minor units of the intent currency credited, dust in base units) for ONE transfer of
    ``amount_base`` (see the module doc: rounded down per transfer; the dust is recorded)."""
    if amount_base < 0:
        raise ValueError("amounts are not negative")
    a = assets.get_asset(asset)
    if currency == asset:
        units, dust = divmod(amount_base, a.dust_factor)
        return units, dust
    if amount is not None and amount_due:
        units = amount_base * amount // amount_due
        return units, 0
    if rate is None:
        raise ValueError("a top-up in another currency needs the locked rate")
    # rate: units of `currency` per 1 `asset` (decimal string from the rate service)
    c = assets.get_asset(currency)
    value = Decimal(amount_base) * Decimal(rate) * (Decimal(10) ** c.scale) \
        / (Decimal(10) ** a.onchain_decimals)
    return int(value.to_integral_value(rounding="ROUND_FLOOR")), 0


def decimal_base(amount_base: int | None, asset: str) -> str | None:
    """Base units as a human decimal ("1.5" ETH) for display."""
    if amount_base is None:
        return None
    decimals = assets.get_asset(asset).onchain_decimals or 0
    q, r = divmod(int(amount_base), 10 ** decimals)
    frac = str(r).rjust(decimals, "0").rstrip("0")
    return f"{q}.{frac}" if frac else str(q)


def same_choice(existing: dict[str, Any], network: str, asset: str) -> bool:
    return existing.get("network") == network and existing.get("asset") == asset


def secret_matches(doc: dict[str, Any], client_secret: str | None) -> bool:
    """Constant-time check of a client secret against the stored SHA-256 (and its intent)."""
    from shared.identity.opaque import token_hash
    stored = doc.get("client_secret_hash")
    if not client_secret or not stored or not client_secret.startswith(f"{doc['id']}_secret_"):
        return False
    return hmac.compare_digest(token_hash(client_secret), stored)


# ---- authorisation -----------------------------------------------------------------------------

def _load_plain(deps, intent_id: str) -> dict[str, Any]:
    from shared.payments import intents
    from shared.platform.models import is_doc_id
    if not is_doc_id(intent_id) or not intent_id.startswith("pi_"):
        raise NotFound("No such payment intent.", code="resource_missing")
    snap = intents.intent_ref(deps.db, intent_id).get()
    if not snap.exists:
        raise NotFound("No such payment intent.", code="resource_missing")
    return snap.to_dict()


def authorize(ctx, doc: dict[str, Any], client_secret: str | None, *, write: bool,
              function: str = "payments") -> str:
    """Who may see or choose the crypto details of ``doc``: the payer with the client secret,
    or the merchant (its API key with payments:read/write, or a member: viewer+ to read,
    developer+ to choose). Anything else is the same 404 as a missing intent (no probing).
    Returns "payer" or "merchant"."""
    from shared.merchants import roles
    from shared.payments import intents
    if client_secret is not None:
        intents.check_client_secret(doc, client_secret)
        return "payer"
    headers = ctx.request.headers
    if auth_mod.bearer_token(headers, forwarded=ctx.deps.settings.is_production) is None:
        raise AuthenticationError("Give the intent's client_secret, or authenticate as the "
                                  "merchant.", code="missing_credentials")
    principal = auth_mod.authenticate(headers, ctx.deps.settings, ip=ctx.ip)
    principal = auth_mod.resolve(principal, headers, ctx.deps.settings, function)
    if principal.kind not in ("user", "api_key"):
        raise PermissionDenied("This credential type cannot call this endpoint.",
                               code="principal_not_allowed")
    principal.require_scopes(["payments:write" if write else "payments:read"])
    if doc.get("tenant") != principal.tenant_id or doc.get("livemode") != principal.livemode:
        raise NotFound("No such payment intent.", code="resource_missing")
    roles.require(principal, "create_payments" if write else "read")
    return "merchant"


# ---- choosing crypto ---------------------------------------------------------------------------

def merchant_settings(deps, merchant_id: str):
    """The merchant's settings (helper M), or None when the merchant has no document."""
    from shared.merchants.settings import get_settings
    try:
        return get_settings(deps.db, merchant_id)
    except LookupError:
        return None


def _xpub_of(settings) -> str | None:
    return (getattr(settings, "xpub", None) or None) if settings is not None else None


def _accepted_assets(settings) -> tuple[str, ...] | None:
    value = getattr(settings, "accepted_assets", None) if settings is not None else None
    return tuple(value) if value else None


def deriver(deps, *, xpub: str | None, livemode: bool):
    """index → checksum address for the tree in use. Both trees derive from a PUBLIC account
    key: the merchant's xpub, or the custodial tree's xpub recorded next to its sealed seed
    (no key is unsealed to hand out an address; only sweeping unseals the seed). A missing
    custodial seed is a 503 (the platform is not provisioned), never a 500."""
    from shared.chain import hd
    from shared.platform.errors import ServiceUnavailable
    if not xpub:
        try:
            xpub = hd.custodial_xpub(deps, livemode=livemode)
        except hd.CustodySeedMissing:
            raise ServiceUnavailable("Crypto deposit addresses are not available yet.",
                                     code="custody_unavailable") from None
    return lambda index: hd.derive_address(xpub, index)


def build_uri(network, address: str, token: str | None, amount_due: int | None) -> str:
    """The EIP-681 request a wallet pays from (C1's ``payment_uri``)."""
    from shared.chain import payment_uri
    if token is None:
        return payment_uri.native_uri(address, network.chain_id, amount_due)
    return payment_uri.erc20_uri(token, address, network.chain_id, amount_due)


def _validate_choice(deps, doc: dict[str, Any], body: ChooseCrypto, now: dt.datetime,
                     settings=None):
    from shared.chain.networks import get_network
    from shared.payments import intents, states
    if CRYPTO not in (doc.get("payment_method_types") or []):
        raise InvalidRequest("This payment intent does not accept crypto payments.",
                             code="payment_method_not_accepted", param="payment_method_types")
    if doc["status"] != states.REQUIRES_PAYMENT_METHOD or now >= doc["expires_at"]:
        status = doc["status"] if doc["status"] != states.REQUIRES_PAYMENT_METHOD else states.EXPIRED
        raise intents.IntentNotPayable(f"This payment intent is {status} and cannot be paid.")
    network = get_network(deps, body.network)
    if network.livemode != doc["livemode"]:
        raise InvalidRequest(f"Network {network.name} is a {'live' if network.livemode else 'test'}"
                             f" network; this intent is in {'live' if doc['livemode'] else 'test'}"
                             " mode.", code="network_mode_mismatch", param="network")
    asset = assets.get_asset(body.asset)
    token = network.token_address(asset.code)        # 400 when not payable there
    accepted = _accepted_assets(settings)
    if accepted is not None and asset.code not in accepted and asset.code != doc["currency"]:
        raise InvalidRequest(f"This merchant does not accept {asset.code}.",
                             code="asset_not_accepted", param="asset")
    return network, asset, token


def _lock_rate(deps, doc: dict[str, Any], asset: str) -> tuple[int | None, dict[str, Any] | None]:
    """(converted ledger units of ``asset`` or None, the locked rate record). Outside any unit:
    the rate service may call the price feed."""
    if doc["currency"] == asset:
        return None, None
    from shared.rates import service as rates
    if doc.get("amount") is None:
        quote = rates.quote(deps, asset, doc["currency"])
        return None, {"base": asset, "quote": doc["currency"], "rate": str(quote.rate),
                      "as_of": _unix(quote.as_of), "source": getattr(quote, "source", None)}
    conv = rates.convert(deps, doc["amount"], doc["currency"], asset)
    return int(conv.amount), {"base": doc["currency"], "quote": asset, "rate": str(conv.rate),
                              "as_of": _unix(conv.as_of),
                              "expires_at": _unix(getattr(conv, "expires_at", None)),
                              "amount": int(conv.amount)}


def _unix(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return int(value) if isinstance(value, (int, float)) else None


def choose(ctx, intent_id: str, body: ChooseCrypto) -> dict[str, Any]:
    """Allocate the intent's deposit address once and return the intent document.

    Cost in the common case: one plain read (authorisation), then one unit: a ``get_all`` of the
    intent + counter, one read of the candidate watch document, one commit."""
    from shared.payments import intents
    deps = ctx.deps
    doc = _load_plain(deps, intent_id)
    authorize(ctx, doc, body.client_secret, write=True)
    existing = doc.get("crypto")
    if existing:
        if same_choice(existing, body.network, body.asset):
            return doc
        raise Conflict("Crypto was already chosen for this payment intent with another network "
                       "or asset.", code="crypto_already_chosen")
    now = deps.clock.now()
    settings = merchant_settings(deps, doc["tenant"])
    network, asset, token = _validate_choice(deps, doc, body, now, settings)
    converted, rate = _lock_rate(deps, doc, asset.code)
    due = amount_due_base(doc.get("amount"), doc["currency"], asset.code, converted)
    xpub = _xpub_of(settings)
    derive = deriver(deps, xpub=xpub, livemode=doc["livemode"])
    tree = deposit.choose_tree(doc["tenant"], has_xpub=bool(xpub), intent_id=doc["id"])

    def unit(uow) -> dict[str, Any]:
        ref, fresh = intents.load_for_update(uow, intent_id)
        uow.get(deposit.counter_ref(uow.db, tree, network.name, fresh["livemode"]))
        current = fresh.get("crypto")
        if current:                      # a concurrent choice won
            if same_choice(current, body.network, body.asset):
                return fresh
            raise Conflict("Crypto was already chosen for this payment intent with another "
                           "network or asset.", code="crypto_already_chosen")
        _validate_choice(deps, fresh, body, uow.now, settings)
        alloc = deposit.allocate(uow, tree=tree, network=network.name,
                                 livemode=fresh["livemode"], derive=derive, now=uow.now)
        late_until = fresh.get("late_until") or fresh["expires_at"] + DEFAULT_LATE_WINDOW
        watch = deposit.watch_document(
            network=network.name, chain_id=network.chain_id, address=alloc.address,
            asset=asset.code, token=token, tenant=fresh["tenant"], livemode=fresh["livemode"],
            intent_id=fresh["id"], required_confirmations=int(fresh["required_confirmations"]),
            watch_until=late_until + TRAILING_WATCH, now=uow.now, index=alloc.index, tree=tree)
        uow.create(deposit.watch_ref(uow.db, network.name, alloc.address), watch)
        crypto = CryptoDetails(
            network=network.name, chain_id=network.chain_id, asset=asset.code, token=token,
            address=alloc.address, amount_due=None if due is None else str(due),
            amount_due_decimal=decimal_base(due, asset.code),
            uri=build_uri(network, alloc.address, token, due),
            expires_at=int(fresh["expires_at"].timestamp()), rate=rate).model_dump()
        crypto["derivation"] = {"tree": tree.kind, "index": alloc.index}
        fields = {"crypto": crypto, "updated_at": uow.now}
        uow.update(ref, fields)
        return {**fresh, **fields}

    return run_unit(deps, unit)


def qr_image(ctx, intent_id: str, query: QrQuery, kind: Literal["png", "svg"]) -> tuple[bytes, str]:
    """The QR code of the intent's EIP-681 URI and its media type."""
    from shared.chain import qr
    doc = _load_plain(ctx.deps, intent_id)
    authorize(ctx, doc, query.client_secret if query else None, write=False)
    crypto = doc.get("crypto")
    if not crypto:
        raise NotFound("Crypto has not been chosen for this payment intent.",
                       code="crypto_not_chosen")
    if kind == "png":
        return qr.qr_png(crypto["uri"]), "image/png"
    return qr.qr_svg(crypto["uri"]).encode(), "image/svg+xml"


NO_STORE = {"Cache-Control": "no-store"}  # a QR code names a live payment: never cached


# ---- routes (registered on the payments router by shared/payments/http.py) ------------------------

def register(api) -> None:
    """Add the crypto routes to the payments router (``/v1/payment_intents``). Public routes:
    the caller is the payer (client_secret) or the merchant (authenticated in ``authorize``)."""
    from shared.payments import intents
    from shared.payments.models import PaymentIntent
    from shared.platform.router import PUBLIC

    if any(r.path == "/{intent_id}/crypto" for r in api.routes):
        return                                   # registered already (idempotent)

    @api.post("/{intent_id}/crypto", body=ChooseCrypto, response=PaymentIntent, auth=PUBLIC,
              atomic=False, summary="Pay with crypto: allocate the intent's deposit address")
    def choose_crypto(ctx, intent_id: str):
        return intents.resource(choose(ctx, intent_id, ctx.body))

    @api.get("/{intent_id}/crypto/qr.png", query=QrQuery, auth=PUBLIC,
             summary="The QR code (PNG) of the intent's EIP-681 payment request")
    def crypto_qr_png(ctx, intent_id: str):
        body, mimetype = qr_image(ctx, intent_id, ctx.query, "png")
        return flask.Response(body, mimetype=mimetype, headers=NO_STORE)

    @api.get("/{intent_id}/crypto/qr.svg", query=QrQuery, auth=PUBLIC,
             summary="The QR code (SVG) of the intent's EIP-681 payment request")
    def crypto_qr_svg(ctx, intent_id: str):
        body, mimetype = qr_image(ctx, intent_id, ctx.query, "svg")
        return flask.Response(body, mimetype=mimetype, headers=NO_STORE)
