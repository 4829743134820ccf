"""Wallet links proven with Sign-In with Ethereum (ERC-4361), and sign-in with a linked wallet.

Nonces (``siwe_nonces/{nonce}``): 20 random letters/digits (~119 bits), single use, expiring
after ``nonce_ttl_seconds`` (10 min). A *link* nonce is bound to the signed-in user who asked for
it; a *sign-in* nonce is bound to no one. A nonce is consumed as soon as a message naming it is
presented (whatever the outcome), so a message can never be replayed.

Checks on ``POST /v1/me/wallets`` (``link_wallet``), in order:
1. the message parses strictly (``shared.identity.web3.siwe``; EIP-55 address, RFC 3339 times, ...);
2. domain == configured domain; an explicit scheme must be allowed; URI prefix if configured;
   chain id allowed if a list is configured;
3. times: Issued At not in the future and not before the nonce was made; Expiration Time not
   passed; Not Before reached — each with ``clock_skew_seconds``;
4. the nonce exists, is a link nonce of this user, unused and unexpired (consumed here);
5. the signature: EIP-191 recovery for EOAs, else ERC-1271 on the message's chain;
6. the handle ``wallet:{address_lower}`` is claimed in the same transaction as the
   ``user_wallets`` doc: one address belongs to one user (another user's address is a 409).
"""
from __future__ import annotations

import datetime as dt
import secrets
import string

from eth_utils import is_hex_address, to_checksum_address

from shared.identity.resources import WalletLink
from shared.identity.responses import MfaChallenge, SiweNonce, WalletSignIn
from shared.identity.sessions.signin import finish_sign_in
from shared.identity.users import directory
from shared.identity.users.ways_in import ways_in
from shared.identity.web3 import did
from shared.identity.web3.siwe import (SiweMessage, SiweParseError, SiweSettings, decode_signature,
                                       parse_message, siwe_settings, verify_signature)
from shared.identity.web3.wallet_links import (pkh_did, wallet_ref, wallet_resource,  # noqa: F401
                                               wallets_query)
from shared.identity.resources import WALLET_LINKED, WALLET_UNLINKED
from shared.platform.clock import rfc3339
from shared.platform.errors import (AuthenticationError, Conflict, InvalidRequest, NotFound,
                                    PermissionDenied)
from shared.platform.pagination import ListResponse
from shared.platform.uow import run_unit

NONCES = "siwe_nonces"
NONCE_LENGTH = 20
_ALPHANUM = string.ascii_letters + string.digits
MAX_WALLETS_PER_USER = 20


def new_nonce() -> str:
    return "".join(secrets.choice(_ALPHANUM) for _ in range(NONCE_LENGTH))


def create_nonce(uow, *, user_id: str | None, purpose: str = "link") -> SiweNonce:
    cfg = siwe_settings(uow.deps)
    now = uow.now
    nonce = new_nonce()
    expires = now + dt.timedelta(seconds=cfg.nonce_ttl_seconds)
    uow.create(uow.db.collection(NONCES).document(nonce), {
        "user_id": user_id, "purpose": purpose, "created_at": now, "expires_at": expires,
        "used_at": None, "purge_at": expires + dt.timedelta(days=1)})
    return SiweNonce(nonce=nonce, domain=cfg.domain, expires_at=rfc3339(expires),
                     expires_in=cfg.nonce_ttl_seconds, issued_at=rfc3339(now),
                     chain_ids=list(cfg.chain_ids) or None)


def _reject(message: str, code: str, param: str = "message") -> InvalidRequest:
    return InvalidRequest(message, code=code, param=param)


def check_message(deps, text: str, cfg: SiweSettings) -> SiweMessage:
    """Steps 1–3 (no I/O): parse, origin, chain and times."""
    try:
        msg = parse_message(text)
    except SiweParseError as exc:
        raise _reject(f"The message is not a valid EIP-4361 message: {exc}.", "siwe_malformed") from None
    if msg.domain.lower() != cfg.domain.lower():
        raise _reject(f"The message is for '{msg.domain}', not '{cfg.domain}'.", "siwe_domain_mismatch")
    if msg.scheme is not None and msg.scheme.lower() not in [s.lower() for s in cfg.allowed_schemes]:
        raise _reject(f"The scheme '{msg.scheme}' is not allowed.", "siwe_domain_mismatch")
    if cfg.allowed_uri_prefixes and not any(msg.uri.startswith(p) for p in cfg.allowed_uri_prefixes):
        raise _reject("The message URI is not ours.", "siwe_uri_mismatch")
    if cfg.chain_ids and msg.chain_id not in cfg.chain_ids:
        raise _reject(f"Chain {msg.chain_id} is not supported.", "siwe_chain_unsupported")
    now, skew = deps.clock.now(), dt.timedelta(seconds=cfg.clock_skew_seconds)
    if msg.issued_at_dt > now + skew:
        raise _reject("The message is issued in the future.", "siwe_not_yet_valid")
    if msg.expiration_dt is not None and msg.expiration_dt <= now - skew:
        raise _reject("The message has expired.", "siwe_expired")
    if msg.not_before_dt is not None and msg.not_before_dt > now + skew:
        raise _reject("The message is not valid yet (Not Before).", "siwe_not_yet_valid")
    return msg


def consume_nonce(deps, msg: SiweMessage, *, user_id: str | None, purpose: str,
                  cfg: SiweSettings) -> None:
    """Step 4: the nonce must be ours for this user and purpose; it is used up either way, in
    its own commit, before the signature check may call a chain."""
    if len(msg.nonce) > 64:  # ours are 20 characters; a longer one cannot name a document
        raise _reject("The nonce is not one we issued to you.", "siwe_nonce_invalid")
    ref = deps.db.collection(NONCES).document(msg.nonce)
    skew = dt.timedelta(seconds=cfg.clock_skew_seconds)

    def run(uow) -> str:
        snap = uow.get(ref)
        if not snap.exists:
            return "unknown"
        doc = snap.to_dict()
        if doc.get("user_id") != user_id or doc.get("purpose") != purpose:
            return "unknown"  # someone else's nonce: same answer as a made-up one
        if doc.get("used_at") is not None:
            return "used"
        uow.update(ref, {"used_at": uow.now})
        if doc["expires_at"] <= uow.now:
            return "expired"
        if msg.issued_at_dt < doc["created_at"] - skew:
            return "early"
        return "ok"

    outcome = run_unit(deps, run)
    errors = {"unknown": ("The nonce is not one we issued to you.", "siwe_nonce_invalid"),
              "used": ("The nonce was already used; request a new one.", "siwe_nonce_used"),
              "expired": ("The nonce has expired; request a new one.", "siwe_nonce_expired"),
              "early": ("The message was issued before its nonce.", "siwe_nonce_invalid")}
    if outcome != "ok":
        raise _reject(*errors[outcome])


def link_wallet(uow, *, user_id: str, message: str, signature: str) -> tuple[WalletLink, bool]:
    """Verify the SIWE message and link its address; returns (wallet link, created).

    The nonce is spent in its own commit and the signature may call a chain (ERC-1271), so the
    route is not re-run on contention (``atomic=False``); the link itself commits in ``uow``.
    """
    deps = uow.deps
    cfg = siwe_settings(deps)
    sig = decode_signature(signature)
    msg = check_message(deps, message, cfg)
    consume_nonce(deps, msg, user_id=user_id, purpose="link", cfg=cfg)
    kind = verify_signature(deps, msg, message, sig, cfg)

    db, now = uow.db, uow.now
    address = msg.address
    handle = directory.handle_ref(db, "wallet", address)
    ref = wallet_ref(db, address)
    snaps = uow.get_all([handle, ref])
    held = snaps[handle.path]
    if held.exists:
        if held.get("user_id") != user_id:
            raise Conflict("This wallet is linked to another account.",
                           code="wallet_linked_elsewhere", param="message")
        return wallet_resource(snaps[ref.path].to_dict()), False
    count = len(uow.query(wallets_query(db, user_id).limit(MAX_WALLETS_PER_USER)))
    if count >= MAX_WALLETS_PER_USER:
        raise Conflict("Too many linked wallets.", code="too_many_wallets")
    doc = {"id": ref.id, "user_id": user_id, "address": address, "chain_id": msg.chain_id,
           "did": pkh_did(msg.chain_id, address), "kind": kind, "created_at": now}
    directory.claim_handle(db, uow, "wallet", address, user_id, now)
    uow.create(ref, doc)
    uow.emit(WALLET_LINKED.name, tenant=user_id, data={"object": wallet_resource(doc).model_dump(mode="json")})
    return wallet_resource(doc), True


def list_wallets(deps, user_id: str) -> ListResponse[WalletLink]:
    q = wallets_query(deps.db, user_id)
    docs = sorted((s.to_dict() for s in q.limit(MAX_WALLETS_PER_USER).stream()),
                  key=lambda d: d["created_at"])
    return ListResponse[WalletLink](data=[wallet_resource(d) for d in docs], has_more=False,
                                    url="/v1/me/wallets")


def normalise_address(address: str, param: str = "address") -> str:
    if not isinstance(address, str) or not is_hex_address(address):
        raise InvalidRequest("Not an Ethereum address.", code="parameter_invalid", param=param)
    return to_checksum_address(address)


def unlink_wallet(uow, *, user_id: str, address: str) -> None:
    """Unlink (any letter case accepted); its did:pkh DIDs go with it. Refuses (409) to remove
    the user's last way in."""
    address = normalise_address(address)
    db = uow.db
    ref = wallet_ref(db, address)
    snap = uow.get(ref)
    if not snap.exists or snap.get("user_id") != user_id:
        raise NotFound(f"No linked wallet {address}.", param="address")
    counts = ways_in(uow, user_id)
    dids = did.user_dids(uow, user_id)
    if counts["password"] + counts["phone"] + counts["identities"] + counts["wallets"] - 1 <= 0:
        raise Conflict("This wallet is your only way to sign in. Add another method first.",
                       code="last_sign_in_method")
    doc = snap.to_dict()
    directory.release_handle(db, uow, "wallet", address)
    uow.delete(ref)
    did.drop_wallet_dids(uow, dids, address)
    uow.emit(WALLET_UNLINKED.name, tenant=user_id, data={"object": wallet_resource(doc).model_dump(mode="json")})


def sign_in_with_wallet(uow, *, message: str, signature: str, ip: str | None,
                        user_agent: str | None) -> WalletSignIn | MfaChallenge:
    """SIWE sign-in for a wallet already linked to an account (no sign-up by wallet): tokens,
    or an MFA challenge when the account has a second factor on."""
    deps = uow.deps
    cfg = siwe_settings(deps)
    sig = decode_signature(signature)
    msg = check_message(deps, message, cfg)
    consume_nonce(deps, msg, user_id=None, purpose="signin", cfg=cfg)
    verify_signature(deps, msg, message, sig, cfg)
    held = uow.get(directory.handle_ref(uow.db, "wallet", msg.address))
    if not held.exists:
        raise AuthenticationError("This wallet is not linked to an account. Sign in another way "
                                  "and link it first.", code="wallet_not_linked")
    usnap = uow.get(directory.user_ref(uow.db, held.get("user_id")))
    if not usnap.exists:
        raise PermissionDenied("This account is disabled.", code="account_disabled")
    user = usnap.to_dict()
    answer = finish_sign_in(uow, user, amr=["swk"], ip=ip, user_agent=user_agent)
    if isinstance(answer, MfaChallenge):  # a second factor is on: no tokens yet
        return answer
    return WalletSignIn(**dict(answer), user_id=user["id"], address=msg.address)
