"""Decentralized identifiers: syntax, did:key and did:pkh, DID documents, and linking a DID the
user controls to their verified phone number.

* Syntax (W3C DID Core 1.0, §3.1): ``did = "did:" method-name ":" method-specific-id``,
  ``method-name = 1*(%x61-7A / DIGIT)``, ``method-specific-id = *( *idchar ":" ) 1*idchar``,
  ``idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded``.
* ``did:key`` (W3C CCG did:key v0.7): ``z`` + base58btc(multicodec varint || raw public key);
  we accept Ed25519 (0xed → ``ed 01``, 32 bytes), secp256k1 (0xe7 → ``e7 01``, 33-byte
  compressed) and P-256 (0x1200 → ``80 24``, 33-byte compressed), and check the point.
* ``did:pkh`` (W3C CCG did:pkh): the method-specific id is a CAIP-10 account id
  ``namespace:reference:address``; for ``eip155`` the reference is a decimal chain id and the
  address a 20-byte hex address (lower case or a correct EIP-55 checksum; stored checksummed).
  Every linked wallet yields ``did:pkh:eip155:{chainId}:{address}``.

Linking (``user_dids`` docs ``{id, user_id, did, phone, method, created_at}``, handle
``did:{did}`` so a DID belongs to one user) needs a verified phone and proof of control:
a did:pkh must name a wallet already linked by SIWE; a did:key must sign a single-use challenge
(``did_challenges``, 10 min) with its private key.

Resolution (``GET /v1/auth/dids/{did}``) is deterministic for both methods (the document is
derived from the DID itself) and reveals nothing about Payloom accounts.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from eth_utils import to_checksum_address
from google.cloud import firestore

from shared.identity.users import directory
from shared.identity.web3 import wallet_links
from shared.identity.resources import DID_LINKED, DID_UNLINKED, Did
from shared.identity.responses import DidChallenge, DidDocument
from shared.platform.clock import rfc3339
from shared.platform.errors import Conflict, InvalidRequest, NotFound
from shared.platform.ids import derived_id
from shared.platform.pagination import ListResponse

DIDS = "user_dids"
CHALLENGES = "did_challenges"
MAX_DID_LENGTH = 512
CHALLENGE_TTL_SECONDS = 600
MAX_DIDS_PER_USER = 50

DID_RE = re.compile(r"^did:(?P<method>[a-z0-9]+):(?P<msid>(?:(?:[A-Za-z0-9._\-]|%[0-9A-Fa-f]{2})*:)*"
                    r"(?:[A-Za-z0-9._\-]|%[0-9A-Fa-f]{2})+)$")
# CAIP-2 / CAIP-10
CAIP10_RE = re.compile(r"^(?P<ns>[-a-z0-9]{3,8}):(?P<ref>[-_a-zA-Z0-9]{1,32}):(?P<addr>[-.%a-zA-Z0-9]{1,128})$")
EIP155_REF_RE = re.compile(r"^(?:0|[1-9][0-9]{0,31})$")
EIP155_ADDR_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}

# multicodec code -> (name, public key length, verification method type for documents)
KEY_CODECS: dict[int, tuple[str, int]] = {
    0xED: ("ed25519-pub", 32),
    0xE7: ("secp256k1-pub", 33),
    0x1200: ("p256-pub", 33),
}


class DidError(ValueError):
    pass


# --- encodings ----------------------------------------------------------------------------------

def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        if c not in _B58_INDEX:
            raise DidError(f"'{c}' is not a base58btc character")
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def varint_encode(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_decode(data: bytes) -> tuple[int, int]:
    value = shift = 0
    for i, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise DidError("non-minimal varint")
            return value, i + 1
        shift += 7
    raise DidError("bad varint")


# --- parsing ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ParsedDid:
    did: str                 # canonical form
    method: str
    msid: str
    key_codec: str | None = None
    public_key: bytes | None = None
    multibase: str | None = None
    caip10: str | None = None
    chain_id: int | None = None
    address: str | None = None


def parse_did_syntax(did: str) -> tuple[str, str]:
    if not isinstance(did, str) or not did:
        raise DidError("a DID is required")
    if len(did) > MAX_DID_LENGTH:
        raise DidError("the DID is too long")
    m = DID_RE.match(did)
    if not m:
        raise DidError("not a DID: expected did:<method>:<method-specific-id> (W3C DID Core §3.1)")
    return m["method"], m["msid"]


def parse_did_key(did: str, msid: str) -> ParsedDid:
    if ":" in msid or not msid.startswith("z"):
        raise DidError("did:key ids are multibase base58btc ('z...')")
    raw = b58decode(msid[1:])
    code, used = varint_decode(raw)
    if code not in KEY_CODECS:
        raise DidError(f"unsupported did:key key type (multicodec 0x{code:x})")
    name, length = KEY_CODECS[code]
    key = raw[used:]
    if len(key) != length:
        raise DidError(f"{name} keys are {length} bytes")
    try:
        if name == "ed25519-pub":
            ed25519.Ed25519PublicKey.from_public_bytes(key)
        elif name == "secp256k1-pub":
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), key)
        else:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError:
        raise DidError(f"the {name} key is not a valid point") from None
    return ParsedDid(did=did, method="key", msid=msid, key_codec=name, public_key=key, multibase=msid)


def parse_did_pkh(did: str, msid: str) -> ParsedDid:
    m = CAIP10_RE.match(msid)
    if not m:
        raise DidError("did:pkh ids are CAIP-10 account ids: namespace:reference:address")
    if m["ns"] != "eip155":
        return ParsedDid(did=did, method="pkh", msid=msid, caip10=msid)
    if not EIP155_REF_RE.match(m["ref"]):
        raise DidError("eip155 chain ids are decimal numbers")
    addr = m["addr"]
    if not EIP155_ADDR_RE.match(addr):
        raise DidError("eip155 addresses are 0x + 40 hex digits")
    checksummed = to_checksum_address(addr)
    if addr != addr.lower() and addr != checksummed:
        raise DidError("the address has a wrong EIP-55 checksum")
    caip10 = f"eip155:{m['ref']}:{checksummed}"
    return ParsedDid(did=f"did:pkh:{caip10}", method="pkh", msid=caip10, caip10=caip10,
                     chain_id=int(m["ref"]), address=checksummed)


def parse_did(did: str) -> ParsedDid:
    """Validate ``did`` (syntax, then the method's own rules); canonical form in ``.did``."""
    method, msid = parse_did_syntax(did)
    if method == "key":
        return parse_did_key(did, msid)
    if method == "pkh":
        return parse_did_pkh(did, msid)
    return ParsedDid(did=did, method=method, msid=msid)


def did_key_from_ed25519(public_key: bytes) -> str:
    return "did:key:z" + b58encode(varint_encode(0xED) + public_key)


def did_key_from_public_key(codec: int, public_key: bytes) -> str:
    return "did:key:z" + b58encode(varint_encode(codec) + public_key)


def _bad(exc: DidError, param: str = "did") -> InvalidRequest:
    return InvalidRequest(f"Invalid DID: {exc}.", code="did_invalid", param=param)


# --- documents ----------------------------------------------------------------------------------

def did_document(did: str) -> DidDocument:
    """Resolve a did:key or eip155 did:pkh to its DID document (``id`` is the DID as given)."""
    try:
        parsed = parse_did(did)
    except DidError as exc:
        raise _bad(exc) from None
    if parsed.method == "key":
        vm_id = f"{did}#{parsed.multibase}"
        vm = {"id": vm_id, "type": "Multikey", "controller": did,
              "publicKeyMultibase": parsed.multibase}
        return DidDocument.model_validate({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": did, "verificationMethod": [vm], "authentication": [vm_id],
            "assertionMethod": [vm_id], "capabilityInvocation": [vm_id],
            "capabilityDelegation": [vm_id]})
    if parsed.method == "pkh" and parsed.address:
        vm_id = f"{did}#blockchainAccountId"
        vm = {"id": vm_id, "type": "EcdsaSecp256k1RecoveryMethod2020", "controller": did,
              "blockchainAccountId": did[len("did:pkh:"):]}
        return DidDocument.model_validate({
            "@context": ["https://www.w3.org/ns/did/v1", {
                "blockchainAccountId": "https://w3id.org/security#blockchainAccountId",
                "EcdsaSecp256k1RecoveryMethod2020":
                    "https://identity.foundation/EcdsaSecp256k1RecoverySignature2020#EcdsaSecp256k1RecoveryMethod2020"}],
            "id": did, "verificationMethod": [vm], "authentication": [vm_id],
            "assertionMethod": [vm_id]})
    raise NotFound(f"DIDs of method '{parsed.method}'" +
                   (f" (namespace {parsed.msid.split(':')[0]})" if parsed.method == "pkh" else "") +
                   " are not resolved here.", code="did_method_unsupported", param="did")


# --- proof of control for did:key ----------------------------------------------------------------

def challenge_message(did: str, user_id: str, nonce: str, issued_at: dt.datetime) -> str:
    return (f"Payloom: link {did} to account {user_id}.\n"
            f"Nonce: {nonce}\nIssued At: {rfc3339(issued_at)}")


def verify_key_signature(parsed: ParsedDid, message: bytes, signature: bytes) -> bool:
    """Ed25519: the 64-byte signature. secp256k1 / P-256: ECDSA over SHA-256, r||s (64 bytes)."""
    try:
        if parsed.key_codec == "ed25519-pub":
            ed25519.Ed25519PublicKey.from_public_bytes(parsed.public_key).verify(signature, message)
            return True
        if len(signature) != 64:
            return False
        curve = ec.SECP256K1() if parsed.key_codec == "secp256k1-pub" else ec.SECP256R1()
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, parsed.public_key)
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _b64url_decode(value: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+=*", value) or len(value) > 400:
        raise InvalidRequest("The signature must be base64url.", code="parameter_invalid",
                             param="signature")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise InvalidRequest("The signature must be base64url.", code="parameter_invalid",
                             param="signature") from None


def create_challenge(uow, *, user_id: str, did: str) -> DidChallenge:
    try:
        parsed = parse_did(did)
    except DidError as exc:
        raise _bad(exc) from None
    if parsed.method != "key":
        raise InvalidRequest("Only did:key needs a challenge; a did:pkh is proven by linking its "
                             "wallet with Sign-In with Ethereum.", code="did_challenge_not_needed",
                             param="did")
    now = uow.now
    nonce = secrets.token_urlsafe(24)
    message = challenge_message(parsed.did, user_id, nonce, now)
    expires = now + dt.timedelta(seconds=CHALLENGE_TTL_SECONDS)
    challenge_id = "dch_" + secrets.token_hex(12)
    uow.create(uow.db.collection(CHALLENGES).document(challenge_id), {
        "id": challenge_id, "user_id": user_id, "did": parsed.did, "message": message,
        "created_at": now, "expires_at": expires, "used_at": None,
        "purge_at": expires + dt.timedelta(days=1)})
    return DidChallenge(id=challenge_id, did=parsed.did, message=message,
                        expires_at=rfc3339(expires), expires_in=CHALLENGE_TTL_SECONDS,
                        signature_format="base64url: Ed25519 signature, or ECDSA-SHA256 r||s "
                                         "for secp256k1/P-256, over the UTF-8 bytes of message")


# --- linking ------------------------------------------------------------------------------------

def did_resource(doc: dict[str, Any]) -> Did:
    created = doc.get("created_at")
    return Did(id=doc["id"], did=doc["did"], method=doc["method"], phone=doc.get("phone"),
               source=doc.get("source", "registered"),
               created=rfc3339(created) if isinstance(created, dt.datetime) else None)


def _did_ref(db, did: str):
    return db.collection(DIDS).document(derived_id("did", did))


def dids_query(db, user_id: str):
    """The user's registered DIDs (callers add their own ``limit``)."""
    return db.collection(DIDS).where(filter=firestore.FieldFilter("user_id", "==", user_id))


def user_dids(uow, user_id: str) -> list:
    """The user's registered DIDs, read in ``uow`` (snapshots)."""
    return uow.query(dids_query(uow.db, user_id).limit(100))


def drop_wallet_dids(uow, dids, address: str) -> None:
    """Unlinking a wallet takes its did:pkh DIDs (of any chain) with it, in ``uow``;
    ``dids`` are the user's DID snapshots read earlier in the unit (``user_dids``)."""
    suffix = ":" + address.lower()
    for snap in dids:
        did = snap.get("did") or ""
        if did.startswith("did:pkh:eip155:") and did.lower().endswith(suffix):
            directory.release_handle(uow.db, uow, "did", did)
            uow.delete(snap.reference)


def register_did(uow, *, user_id: str, did: str, challenge_id: str | None = None,
                 signature: str | None = None) -> tuple[Did, bool]:
    """Link a DID the user controls to their verified phone number; (resource, created)."""
    try:
        parsed = parse_did(did)
    except DidError as exc:
        raise _bad(exc) from None
    if parsed.method not in ("key", "pkh") or (parsed.method == "pkh" and parsed.address is None):
        raise InvalidRequest("Only did:key and did:pkh (eip155) DIDs can be linked.",
                             code="did_method_unsupported", param="did")
    db, now = uow.db, uow.now
    sig = None
    if parsed.method == "key":
        if not challenge_id or not signature:
            raise InvalidRequest("Linking a did:key needs challenge_id and signature "
                                 "(POST /v1/me/dids/challenge).", code="parameter_missing",
                                 param="signature")
        sig = _b64url_decode(signature)
    cref = db.collection(CHALLENGES).document(challenge_id) if challenge_id else None
    ref = _did_ref(db, parsed.did)
    handle = directory.handle_ref(db, "did", parsed.did)
    uref = directory.user_ref(db, user_id)
    wref = wallet_links.wallet_ref(db, parsed.address) if parsed.method == "pkh" else None
    snaps = uow.get_all([r for r in (uref, handle, cref, wref, ref) if r is not None])
    usnap, held = snaps[uref.path], snaps[handle.path]
    challenge = snaps[cref.path] if cref is not None else None
    wallet = snaps[wref.path].to_dict() if wref is not None and snaps[wref.path].exists else None
    mine = uow.query(dids_query(db, user_id).limit(MAX_DIDS_PER_USER))
    if not usnap.exists:
        raise NotFound("No such user.")
    user = usnap.to_dict()
    if not (user.get("phone") and user.get("phone_verified")):
        raise Conflict("Verify a phone number first; a DID is linked to your verified phone.",
                       code="phone_not_verified")

    def fail(message: str, code: str, param: str = "challenge_id"):
        raise InvalidRequest(message, code=code, param=param)

    if parsed.method == "key":
        if challenge is None or not challenge.exists or challenge.get("user_id") != user_id \
                or challenge.get("did") != parsed.did:
            fail("Unknown challenge for this DID.", "did_challenge_invalid")
        if challenge.get("used_at") is not None:
            fail("The challenge was already used.", "did_challenge_invalid")
        uow.update(cref, {"used_at": now})
        uow.keep_writes_on_error = True  # the challenge is spent whatever follows
        if challenge.get("expires_at") <= now:
            fail("The challenge has expired.", "did_challenge_expired")
        if not verify_key_signature(parsed, challenge.get("message").encode(), sig):
            fail("The signature does not verify with the DID's key.", "did_signature_invalid",
                 "signature")
        uow.keep_writes_on_error = False
    else:
        if wallet is None or wallet.get("user_id") != user_id:
            raise Conflict("Link this wallet with Sign-In with Ethereum first; its did:pkh "
                           "then proves control.", code="wallet_not_linked", param="did")
        if wallet.get("kind") == "contract" and wallet.get("chain_id") != parsed.chain_id:
            raise Conflict("This contract wallet was proven on another chain.",
                           code="wallet_chain_mismatch", param="did")
    if held.exists:
        if held.get("user_id") != user_id:
            raise Conflict("This DID is linked to another account.", code="did_linked_elsewhere",
                           param="did")
        return did_resource(snaps[ref.path].to_dict()), False
    if len(mine) >= MAX_DIDS_PER_USER:
        raise Conflict("Too many DIDs.", code="too_many_dids")
    doc = {"id": ref.id, "user_id": user_id, "did": parsed.did, "method": parsed.method,
           "phone": user["phone"], "source": "registered", "created_at": now}
    directory.claim_handle(db, uow, "did", parsed.did, user_id, now)
    uow.create(ref, doc)
    uow.emit(DID_LINKED.name, tenant=user_id, data={"object": did_resource(doc).model_dump(mode="json")})
    return did_resource(doc), True


def list_dids(deps, user_id: str) -> ListResponse[Did]:
    """Registered DIDs plus the did:pkh each linked wallet yields (``source: "wallet"``)."""
    db = deps.db
    registered = [s.to_dict() for s in dids_query(db, user_id).limit(MAX_DIDS_PER_USER).stream()]
    seen = {d["did"] for d in registered}
    wallets = [s.to_dict() for s in wallet_links.wallets_query(db, user_id).limit(50).stream()]
    derived = [{"id": w["id"], "did": w["did"], "method": "pkh", "phone": None, "source": "wallet",
                "created_at": w["created_at"]} for w in wallets if w.get("did") and w["did"] not in seen]
    docs = sorted(registered + derived, key=lambda d: d["created_at"])
    return ListResponse[Did](data=[did_resource(d) for d in docs], has_more=False,
                             url="/v1/me/dids")


def unlink_did(uow, *, user_id: str, did: str) -> None:
    try:
        parsed = parse_did(did)
    except DidError as exc:
        raise _bad(exc) from None
    ref = _did_ref(uow.db, parsed.did)
    snap = uow.get(ref)
    if not snap.exists or snap.get("user_id") != user_id:
        raise NotFound("This DID is not linked to your account.", param="did")
    doc = snap.to_dict()
    directory.release_handle(uow.db, uow, "did", parsed.did)
    uow.delete(ref)
    uow.emit(DID_UNLINKED.name, tenant=user_id, data={"object": did_resource(doc).model_dump(mode="json")})
