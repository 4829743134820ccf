"""Sign-In with Ethereum (ERC-4361): a strict parser and the relying-party checks.

The parser follows the ERC's ABNF exactly (no tolerance for extra whitespace, CRLF, a trailing
newline, reordered or unknown fields); sub-grammars come from RFC 3986 (authority, URI, pchar),
RFC 3339 (date-time) and EIP-55 (address checksum — a non-checksummed address is rejected).
``SiweMessage.prepare()`` rebuilds the exact text, and parsing asserts the round trip.

Verification (``verify_signature``): an EIP-191 ``personal_sign`` signature that recovers to the
address proves an externally owned account; otherwise, if the address has code on the message's
chain, ERC-1271 ``isValidSignature(eip191_hash, signature)`` must return ``0x1626ba7e``.
The service-level checks (domain, scheme, chain, nonce ownership and single use, times with a
small skew) live in ``shared.identity.web3.wallets``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from typing import Any

from eth_utils import keccak, to_checksum_address
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.adapters.evm import ChainUnavailable, evm_client
from shared.platform.safe_imports import pinned_recursion_limit
from shared.platform.errors import InvalidRequest, ServiceUnavailable

SETTINGS_KEY = "identity.siwe_settings"
HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
MAX_MESSAGE_CHARS = 16_384
MAX_SIGNATURE_BYTES = 4096


class SiweSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_SIWE_", extra="ignore")

    # The RFC 3986 authority our app serves sign-in from (host[:port]); messages must name it.
    domain: str = "app.payloom.dev"
    # Allowed explicit schemes in the message ("https://app.payloom.dev wants you ...").
    allowed_schemes: list[str] = Field(default_factory=lambda: ["https"])
    # If set, the message URI must start with one of these.
    allowed_uri_prefixes: list[str] = Field(default_factory=list)
    # Empty = any chain id. Contract wallets need an RPC URL for their chain.
    chain_ids: list[int] = Field(default_factory=list)
    rpc_urls: dict[int, str] = Field(default_factory=dict)
    rpc_timeout_seconds: float = 10.0
    nonce_ttl_seconds: int = Field(600, ge=60, le=3600)
    clock_skew_seconds: int = Field(60, ge=0, le=300)


def siwe_settings(deps) -> SiweSettings:
    return deps.get(SETTINGS_KEY, SiweSettings)


class SiweParseError(ValueError):
    pass


# --- RFC 3986 / RFC 3339 pieces as regular expressions --------------------------------------

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_IP_LITERAL = r"\[[^\[\]/?#@\s]+\]"          # checked further with ipaddress / IPvFuture
_HOST = rf"(?:{_IP_LITERAL}|{_REG_NAME})"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_PATH_ABEMPTY = rf"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = rf"{_SEGMENT_NZ}(?:/{_SEGMENT})*"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_HIER = rf"(?://(?P<auth>{_AUTHORITY}){_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|)"
URI_RE = re.compile(rf"^{_SCHEME}:{_HIER}(?:\?{_QUERY})?(?:#{_QUERY})?$")
AUTHORITY_RE = re.compile(rf"^{_AUTHORITY}$")
SCHEME_RE = re.compile(rf"^{_SCHEME}$")
PCHARS_RE = re.compile(rf"^{_PCHAR}*$")
# statement = *( reserved / unreserved / " " )
STATEMENT_RE = re.compile(rf"^[{_UNRESERVED}:/?#\[\]@{_SUB_DELIMS} ]*$")
ADDRESS_RE = re.compile(r"^0x[0-9A-Fa-f]{40}$")
NONCE_RE = re.compile(r"^[A-Za-z0-9]{8,}$")
CHAIN_ID_RE = re.compile(r"^[0-9]{1,78}$")
DATE_TIME_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?P<frac>\.\d+)?(?P<off>[Zz]|[+\-]\d{2}:\d{2})$")
_IPV_FUTURE_RE = re.compile(rf"^v[0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+$", re.IGNORECASE)


def _host_ok(authority: str) -> bool:
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        literal = host[1:host.index("]")]
        if _IPV_FUTURE_RE.match(literal):
            return True
        try:
            ipaddress.IPv6Address(literal)
            return True
        except ValueError:
            return False
    return True


def is_uri(value: str) -> bool:
    m = URI_RE.match(value)
    return bool(m) and (m.group("auth") is None or _host_ok(m.group("auth")))


def is_authority(value: str) -> bool:
    return bool(value) and bool(AUTHORITY_RE.match(value)) and _host_ok(value)


def parse_datetime(value: str) -> dt.datetime:
    """RFC 3339 ``date-time`` (``T``/``Z`` in either case, any fraction, leap second 60)."""
    m = DATE_TIME_RE.match(value)
    if not m:
        raise SiweParseError(f"not an RFC 3339 date-time: {value!r}")
    second = int(m["s"])
    if second > 60:
        raise SiweParseError(f"not an RFC 3339 date-time: {value!r}")
    frac = (m["frac"] or ".0")[1:7].ljust(6, "0")
    off = m["off"]
    if off in ("Z", "z"):
        tz = dt.timezone.utc
    else:
        hours, minutes = int(off[1:3]), int(off[4:6])
        if hours > 23 or minutes > 59:
            raise SiweParseError(f"bad UTC offset in {value!r}")
        delta = dt.timedelta(hours=hours, minutes=minutes)
        tz = dt.timezone(delta if off[0] == "+" else -delta)
    try:
        when = dt.datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]),
                           min(second, 59), int(frac), tzinfo=tz)
    except ValueError:
        raise SiweParseError(f"not a calendar date-time: {value!r}") from None
    if second == 60:  # a leap second: the instant just after :59
        when += dt.timedelta(seconds=1) - dt.timedelta(microseconds=int(frac))
    return when.astimezone(dt.timezone.utc)


# --- the message ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    scheme: str | None = None
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None
    _chain_id_text: str | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def issued_at_dt(self) -> dt.datetime:
        return parse_datetime(self.issued_at)

    @property
    def expiration_dt(self) -> dt.datetime | None:
        return parse_datetime(self.expiration_time) if self.expiration_time is not None else None

    @property
    def not_before_dt(self) -> dt.datetime | None:
        return parse_datetime(self.not_before) if self.not_before is not None else None

    def prepare(self) -> str:
        """The exact EIP-4361 text of this message."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [origin + HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += ["", f"URI: {self.uri}", f"Version: {self.version}",
                  f"Chain ID: {self._chain_id_text or self.chain_id}", f"Nonce: {self.nonce}",
                  f"Issued At: {self.issued_at}"]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources is not None:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)

    def to_public(self) -> dict[str, Any]:
        return {"domain": self.domain, "scheme": self.scheme, "address": self.address,
                "statement": self.statement, "uri": self.uri, "version": self.version,
                "chain_id": self.chain_id, "nonce": self.nonce, "issued_at": self.issued_at,
                "expiration_time": self.expiration_time, "not_before": self.not_before,
                "request_id": self.request_id,
                "resources": list(self.resources) if self.resources is not None else None}


def _field(lines: list[str], i: int, tag: str) -> str:
    if i >= len(lines) or not lines[i].startswith(tag):
        raise SiweParseError(f"line {i + 1}: expected '{tag.strip()}'")
    return lines[i][len(tag):]


def parse_message(text: str) -> SiweMessage:
    """Parse ``text`` strictly per the ERC-4361 ABNF; ``SiweParseError`` says what is wrong."""
    if not isinstance(text, str) or not text:
        raise SiweParseError("empty message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise SiweParseError("message too long")
    if "\r" in text:
        raise SiweParseError("lines end with LF only (no CR)")
    lines = text.split("\n")
    # 1. [ scheme "://" ] domain " wants you to sign in with your Ethereum account:"
    if not lines[0].endswith(HEADER_SUFFIX):
        raise SiweParseError("line 1: expected '<domain> wants you to sign in with your Ethereum account:'")
    origin = lines[0][:-len(HEADER_SUFFIX)]
    scheme = None
    if "://" in origin:
        scheme, origin = origin.split("://", 1)
        if not SCHEME_RE.match(scheme):
            raise SiweParseError("line 1: invalid scheme")
    if not is_authority(origin):
        raise SiweParseError("line 1: the domain is not an RFC 3986 authority")
    # 2. address (EIP-55)
    if len(lines) < 2 or not ADDRESS_RE.match(lines[1]):
        raise SiweParseError("line 2: expected a 0x-prefixed 40-hex-digit address")
    address = lines[1]
    if to_checksum_address(address) != address:
        raise SiweParseError("line 2: the address is not EIP-55 checksummed")
    # 3. blank, optional statement, blank
    if len(lines) < 5 or lines[2] != "":
        raise SiweParseError("line 3: expected an empty line")
    if lines[3] == "" and lines[4] != "":
        statement, i = None, 4
    else:
        statement = lines[3]
        if len(lines) < 6 or lines[4] != "":
            raise SiweParseError("line 5: expected an empty line after the statement")
        if not STATEMENT_RE.match(statement):
            raise SiweParseError("line 4: the statement has characters outside RFC 3986 reserved/unreserved/space")
        i = 5
    # 4. required fields, in order
    uri = _field(lines, i, "URI: ")
    if not is_uri(uri):
        raise SiweParseError(f"line {i + 1}: URI is not an RFC 3986 URI")
    version = _field(lines, i + 1, "Version: ")
    if version != "1":
        raise SiweParseError(f"line {i + 2}: Version must be 1")
    chain_text = _field(lines, i + 2, "Chain ID: ")
    if not CHAIN_ID_RE.match(chain_text):
        raise SiweParseError(f"line {i + 3}: Chain ID must be digits")
    nonce = _field(lines, i + 3, "Nonce: ")
    if not NONCE_RE.match(nonce):
        raise SiweParseError(f"line {i + 4}: Nonce must be at least 8 letters or digits")
    issued_at = _field(lines, i + 4, "Issued At: ")
    parse_datetime(issued_at)
    i += 5
    # 5. optional fields, in order
    optional: dict[str, str | None] = {"expiration_time": None, "not_before": None, "request_id": None}
    for key, tag in (("expiration_time", "Expiration Time: "), ("not_before", "Not Before: "),
                     ("request_id", "Request ID: ")):
        if i < len(lines) and lines[i].startswith(tag):
            optional[key] = lines[i][len(tag):]
            if key == "request_id":
                if not PCHARS_RE.match(optional[key]):
                    raise SiweParseError(f"line {i + 1}: Request ID must be RFC 3986 pchars")
            else:
                parse_datetime(optional[key])
            i += 1
    resources: tuple[str, ...] | None = None
    if i < len(lines) and lines[i] == "Resources:":
        items = []
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            resource = lines[i][2:]
            if not is_uri(resource):
                raise SiweParseError(f"line {i + 1}: resource is not an RFC 3986 URI")
            items.append(resource)
            i += 1
        resources = tuple(items)
    if i != len(lines):
        raise SiweParseError(f"line {i + 1}: unexpected content")
    msg = SiweMessage(domain=origin, address=address, uri=uri, version=version,
                      chain_id=int(chain_text), nonce=nonce, issued_at=issued_at, scheme=scheme,
                      statement=statement, resources=resources, _chain_id_text=chain_text,
                      **optional)
    if msg.prepare() != text:  # the grammar is unambiguous: parsing must round-trip
        raise SiweParseError("message does not round-trip")
    return msg


# --- signatures -------------------------------------------------------------------------------

def eip191_hash(message: str) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message) — personal_sign."""
    data = message.encode("utf-8")
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


def decode_signature(signature: str) -> bytes:
    if not isinstance(signature, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{2})+", signature):
        raise InvalidRequest("The signature must be 0x-prefixed hex.", code="parameter_invalid",
                             param="signature")
    raw = bytes.fromhex(signature[2:])
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise InvalidRequest("The signature is too long.", code="parameter_invalid", param="signature")
    return raw


def recover_eoa(message: str, signature: bytes) -> str | None:
    # Imported here: eth_account costs ~0.6 s of every auth/accounts cold start, and only a
    # wallet sign-in needs it.
    with pinned_recursion_limit():
        from eth_account import Account
        from eth_account.messages import encode_defunct

    if len(signature) != 65:
        return None
    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # noqa: BLE001 — any malformed signature simply does not recover
        return None


def verify_signature(deps, msg: SiweMessage, message: str, signature: bytes,
                     cfg: SiweSettings) -> str:
    """Prove that ``msg.address`` signed ``message``; returns "eoa" or "contract"."""
    recovered = recover_eoa(message, signature)
    if recovered is not None and recovered.lower() == msg.address.lower():
        return "eoa"
    rpc = cfg.rpc_urls.get(msg.chain_id)
    if rpc is None:
        raise InvalidRequest("The signature does not match the address.",
                             code="siwe_signature_invalid", param="signature")
    client = evm_client(deps, msg.chain_id, rpc, timeout=cfg.rpc_timeout_seconds)
    try:
        if not client.get_code(msg.address):
            raise InvalidRequest("The signature does not match the address.",
                                 code="siwe_signature_invalid", param="signature")
        ok = client.is_valid_signature_1271(msg.address, eip191_hash(message), signature)
    except ChainUnavailable:
        raise ServiceUnavailable("The chain could not be reached to check a contract wallet.",
                                 code="chain_unavailable") from None
    if not ok:
        raise InvalidRequest("The contract wallet did not accept the signature (ERC-1271).",
                             code="siwe_signature_invalid", param="signature")
    return "contract"
