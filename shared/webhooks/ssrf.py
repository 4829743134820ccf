"""Where a webhook may be sent: the URL policy and a transport that cannot be rebound.

Why: a merchant chooses the URL, so without a guard a webhook is a request from inside our
network to wherever they like (the metadata server, a private service). Three layers:

* ``check_url`` (pure syntax): https only (plain http only to loopback when loopback is allowed,
  i.e. outside production: a name is then resolved and must reach loopback only), no userinfo,
  no fragment, a host, at most 2048 characters.
* ``resolve_public``: every address the host resolves to must be global unicast. One bad address
  refuses the whole host, since a client may connect to any of them.
* ``post_pinned``: resolves and checks AGAIN at delivery (a name that was public at creation can
  be re-pointed at 10.0.0.1: DNS rebinding) and connects to the very address it checked, with TLS
  still verified against the host name (SNI and certificate), never following a redirect, never
  retrying, within one wall-clock deadline, reading a bounded part of the answer.

Cost: one DNS lookup per attempt (the system resolver caches); no extra round trip.
"""
from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable

import certifi
import idna
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from shared.platform.errors import InvalidRequest

MAX_URL_LENGTH = 2048
USER_AGENT = "Payloom-Webhooks/1"
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog"})
METADATA_IPS = frozenset({ipaddress.ip_address("169.254.169.254"),
                          ipaddress.ip_address("fd00:ec2::254")})
CGNAT = ipaddress.ip_network("100.64.0.0/10")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)

# A resolver answers the addresses of ``host`` (for ``port``); it raises OSError when the name
# does not resolve. Tests inject one to play DNS (rebinding, private answers).
Resolver = Callable[[str, int], list[str]]


class UnsafeDestination(Exception):
    """The destination is not a public address; ``reason`` is a short code (``private``,
    ``loopback``, ``link_local``, ``metadata``, ``multicast``, ``unspecified``, ``reserved``,
    ``cgnat``, ``broadcast``, ``not_global``, ``plain_http``: http to a non-loopback address,
    ``url_invalid``: at delivery, a stored URL the current policy refuses)."""

    def __init__(self, reason: str, address: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.address = address


class TransportError(Exception):
    """The request did not produce an answer: ``kind`` is ``timeout``, ``connection_error`` or
    ``tls_error`` (a name that does not resolve is a ``connection_error``: see ``Unresolvable``)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class Unresolvable(TransportError):
    """The host name does not resolve (``temporary`` when the resolver itself failed)."""

    def __init__(self, detail: str = "the host name does not resolve", *, temporary: bool = False):
        super().__init__("connection_error", detail)
        self.temporary = temporary


@dataclasses.dataclass(frozen=True)
class ParsedUrl:
    scheme: str          # https | http
    host: str            # ASCII (IDNA) lower-case name or the IP literal without brackets
    port: int
    target: str          # path and query, what goes on the request line
    ip_literal: bool

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def normalized(self) -> str:
        """The URL in one canonical spelling (duplicate endpoints compare this)."""
        return f"{self.scheme}://{self.host_header}{self.target}"


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]      # lower-case names
    body_excerpt: bytes          # at most the first ``max_body_bytes`` of the body
    latency_ms: float            # connect to the excerpt read


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="url_invalid", param="url")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    ip = _ip(host)
    return ip.is_loopback if ip is not None else host.rstrip(".").lower() == "localhost"


def check_url(url: str, *, allow_loopback: bool) -> ParsedUrl:
    """Parse and check a webhook URL's syntax (no DNS). ``InvalidRequest(code="url_invalid")``."""
    if not isinstance(url, str) or not url:
        raise _invalid("A URL is required.")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if _CONTROL.search(url):
        raise _invalid("The URL contains spaces, control characters or backslashes.")
    if "#" in url:
        raise _invalid("The URL must not contain a fragment (#...).")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid("The URL is malformed (host or port).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _invalid("The URL must start with https://.")
    if "@" in parts.netloc:
        raise _invalid("The URL must not contain a user name or password.")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise _invalid("The URL has no host.")
    host, ip_literal = _canonical_host(raw_host)
    if scheme == "http" and not (allow_loopback and (is_loopback_host(host) or not ip_literal)):
        # A name is allowed here only to be resolved: plain http must reach loopback (resolve).
        raise _invalid("The URL must use https:// (plain http is only allowed to loopback in test mode).")
    port = port if port is not None else (443 if scheme == "https" else 80)
    if port == 0:
        raise _invalid("The URL's port must be between 1 and 65535.")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return ParsedUrl(scheme, host, port, target, ip_literal)


def _canonical_host(raw: str) -> tuple[str, bool]:
    """The host as we connect to it: an IP literal, or the ASCII (IDNA 2008, UTS 46) name."""
    ip = _ip(raw)
    if ip is not None:
        if ip.version == 6 and ip.scope_id:
            raise _invalid("The URL's IPv6 address must not carry a zone (%...).")
        return str(ip), True
    try:  # the root's trailing dot names the same host; SNI and duplicates want it without
        host = idna.encode(raw.rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        raise _invalid("The URL's host is not a valid domain name.") from None
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):  # 2130706433, 0x7f.1, 10.1: IPv4 in disguise
        raise _invalid("The URL's host is a numeric address in a non-standard form.")
    return host, False


def refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool) -> str | None:
    """Why ``ip`` may not receive a webhook, or None for a global unicast address."""
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return refusal(embedded, allow_loopback=allow_loopback)
        if ip in ipaddress.ip_network("2001::/32"):  # Teredo: the client address is hidden
            return "reserved"
    if ip in METADATA_IPS:
        return "metadata"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    if ip.is_unspecified or (ip.version == 4 and ip in THIS_NETWORK):
        return "unspecified"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    if ip.version == 4 and ip in CGNAT:
        return "cgnat"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not_global"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really reaches: mapped, compatible, NAT64, 6to4."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (``getaddrinfo``), addresses in its preference order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_public(host: str, port: int, *, allow_loopback: bool,
                   resolver: Resolver | None = None) -> list[str]:
    """The addresses of ``host``, every one checked; ``UnsafeDestination`` if any is refused,
    ``Unresolvable`` if there are none."""
    name = host.rstrip(".").lower()
    if name in METADATA_NAMES:
        raise UnsafeDestination("metadata")
    literal = _ip(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list((resolver or system_resolver)(host, port))
        except socket.gaierror as exc:
            temporary = exc.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", None))
            raise Unresolvable(temporary=temporary) from None
        except (OSError, UnicodeError):
            raise Unresolvable() from None
    if not addresses:
        raise Unresolvable()
    checked = []
    for text in addresses:
        ip = _ip(text)
        if ip is None:
            raise UnsafeDestination("not_global", text)
        reason = refusal(ip, allow_loopback=allow_loopback)
        if reason is not None:
            raise UnsafeDestination(reason, text)
        checked.append(str(ip))
    return checked


def resolve(parsed: ParsedUrl, *, allow_loopback: bool, resolver: Resolver | None = None) -> list[str]:
    """``resolve_public`` for a checked URL: plain http must, besides, reach loopback only
    (test mode's receivers); a name resolving elsewhere is refused as ``plain_http``."""
    addresses = resolve_public(parsed.host, parsed.port, allow_loopback=allow_loopback,
                               resolver=resolver)
    if parsed.scheme == "http":
        for address in addresses:
            if not ipaddress.ip_address(address).is_loopback:
                raise UnsafeDestination("plain_http", address)
    return addresses


def post_pinned(url: str, *, headers: dict[str, str], body: bytes, timeout: float,
                allow_loopback: bool, resolver: Resolver | None = None,
                max_body_bytes: int = 2048, ca_certs: str | None = None) -> Answer:
    """POST ``body`` to ``url`` at an address checked just now; the answer or ``TransportError``.

    Redirects are answers (a 302 comes back as 302); nothing is retried here (a retry is a new
    attempt, scheduled by the caller). ``timeout`` bounds the whole exchange, connect to excerpt.
    ``UnsafeDestination`` when the host now resolves somewhere refused (DNS rebinding).
    ``ca_certs``: the trusted roots (default: certifi's public roots; tests pass their own CA)."""
    try:
        parsed = check_url(url, allow_loopback=allow_loopback)
    except InvalidRequest:  # stored under another policy (e.g. http loopback from a test stack)
        raise UnsafeDestination("url_invalid") from None
    deadline = time.monotonic() + timeout
    addresses = resolve(parsed, allow_loopback=allow_loopback, resolver=resolver)
    request_headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    if not any(k.lower() == "user-agent" for k in request_headers):
        request_headers["User-Agent"] = USER_AGENT
    request_headers["Host"] = parsed.host_header  # the name, while we connect to the address
    last: TransportError | None = None
    for address in addresses:  # the next address only when this one refused the connection
        try:
            return _exchange(parsed, address, request_headers, body, deadline, max_body_bytes,
                             ca_certs or certifi.where())
        except TransportError as exc:
            if exc.kind != "connection_error" or exc.detail != "connect":
                raise
            last = exc
    assert last is not None
    raise last


def _exchange(parsed: ParsedUrl, address: str, headers: dict[str, str], body: bytes,
              deadline: float, max_body_bytes: int, ca_certs: str) -> Answer:
    started = time.monotonic()
    remaining = deadline - started
    if remaining <= 0:
        raise TransportError("timeout", "no time left")
    if parsed.scheme == "https":
        conn: HTTPConnection = HTTPSConnection(
            address, parsed.port, timeout=remaining, server_hostname=parsed.host,
            assert_hostname=parsed.host, cert_reqs=ssl.CERT_REQUIRED, ca_certs=ca_certs)
    else:
        conn = HTTPConnection(address, parsed.port, timeout=remaining)
    expired = threading.Event()
    connected: list[socket.socket] = []  # the socket (http.client drops conn.sock on close)

    def abort() -> None:  # the wall clock ran out: unblock whatever read is waiting
        expired.set()
        for sock in connected:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(remaining, abort)
    watchdog.daemon = True
    watchdog.start()
    stage, response = "connect", None
    try:
        conn.connect()
        connected.append(conn.sock)
        if expired.is_set():
            abort()
        stage = "exchange"
        # Never preload: the receiver chooses the body's size; we read a bounded excerpt.
        conn.request("POST", parsed.target, body=body, headers=headers, preload_content=False,
                     decode_content=False, enforce_content_length=False)
        response = conn.getresponse()
        excerpt = response.read(max_body_bytes, decode_content=False) if max_body_bytes > 0 else b""
        if expired.is_set():
            raise TransportError("timeout", "the receiver did not answer in time")
        answer_headers: dict[str, str] = {}
        for name, value in response.headers.items():
            answer_headers.setdefault(name.lower(), value)
        return Answer(response.status, answer_headers, bytes(excerpt[:max_body_bytes]),
                      round((time.monotonic() - started) * 1000, 1))
    except TransportError:
        raise
    except urllib3.exceptions.NewConnectionError:  # refused or unreachable (before any byte)
        if expired.is_set():
            raise TransportError("timeout", "the receiver did not answer in time") from None
        raise TransportError("connection_error", "connect") from None
    except (TimeoutError, urllib3.exceptions.TimeoutError):
        raise TransportError("timeout", "the receiver did not answer in time") from None
    except (ssl.SSLError, CertificateError, urllib3.exceptions.SSLError) as exc:
        if expired.is_set():
            raise TransportError("timeout", "the receiver did not answer in time") from None
        raise TransportError("tls_error", type(exc).__name__) from None
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
        if expired.is_set():
            raise TransportError("timeout", "the receiver did not answer in time") from None
        raise TransportError("connection_error", f"{stage}: {type(exc).__name__}") from None
    finally:
        watchdog.cancel()
        if response is not None:
            response.close()  # without draining: the rest of the body is not ours to read
        conn.close()
