"""SSRF guard: URL syntax, address classes, DNS rebinding, and the pinned transport over real
loopback HTTP (a DNS resolver is injected; nothing else is faked)."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from shared.platform.errors import InvalidRequest
from shared.webhooks import ssrf

PUBLIC_V4, PUBLIC_V6 = "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"


# --- check_url -------------------------------------------------------------------------------

@pytest.mark.parametrize("url,host,port,target", [
    ("https://hooks.example.com/payloom", "hooks.example.com", 443, "/payloom"),
    ("https://Hooks.Example.COM:8443/a/b?x=1&y=2", "hooks.example.com", 8443, "/a/b?x=1&y=2"),
    ("https://example.com", "example.com", 443, "/"),
    ("https://bücher.example/in", "xn--bcher-kva.example", 443, "/in"),
    ("https://[2606:2800:220:1:248:1893:25c8:1946]/h", PUBLIC_V6, 443, "/h"),
    ("https://93.184.216.34:1/h", PUBLIC_V4, 1, "/h"),
])
def test_check_url_accepts(url, host, port, target):
    parsed = ssrf.check_url(url, allow_loopback=False)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.target) == ("https", host, port, target)


def test_plain_http_only_to_loopback_when_allowed():
    for url in ("http://127.0.0.1:8080/in", "http://localhost:9/x", "http://[::1]:81/"):
        assert ssrf.check_url(url, allow_loopback=True).scheme == "http"
        with pytest.raises(InvalidRequest) as exc:
            ssrf.check_url(url, allow_loopback=False)
        assert exc.value.code == "url_invalid" and exc.value.param == "url"
    with pytest.raises(InvalidRequest):  # an http IP literal must be loopback
        ssrf.check_url("http://93.184.216.34/", allow_loopback=True)
    # an http name passes the syntax in test mode only to be resolved: it must reach loopback
    parsed = ssrf.check_url("http://hooks.example.com/", allow_loopback=True)
    with pytest.raises(ssrf.UnsafeDestination) as unsafe:
        ssrf.resolve(parsed, allow_loopback=True, resolver=fixed("127.0.0.1", PUBLIC_V4))
    assert unsafe.value.reason == "plain_http"
    assert ssrf.resolve(parsed, allow_loopback=True, resolver=fixed("127.0.0.1")) == ["127.0.0.1"]
    with pytest.raises(InvalidRequest):
        ssrf.check_url("http://hooks.example.com/", allow_loopback=False)
    assert ssrf.check_url("http://localhost:9/x", allow_loopback=True).host_header == "localhost:9"
    assert ssrf.check_url("http://[::1]:81/", allow_loopback=True).host_header == "[::1]:81"


@pytest.mark.parametrize("url", [
    "", "hooks.example.com/x", "ftp://example.com/", "file:///etc/passwd", "gopher://example.com/",
    "javascript:alert(1)", "https://", "https:///path", "https://user:pw@example.com/",
    "https://user@example.com/", "https://example.com/#frag", "https://example.com:99999/",
    "https://example.com:0/", "https://example.com:port/", "https://exa mple.com/",
    "https://example.com/a b", "https://example.com\\@evil.test/", "https://example.com/\n",
    "https://[::1/", "https://2130706433/", "https://0x7f.1/", "https://10.1/",
    "https://[fe80::1%25eth0]/", "https://xn--/", "https://-bad-.example/",
    "https://example.com/" + "a" * 2048,
])
def test_check_url_refuses(url):
    with pytest.raises(InvalidRequest) as exc:
        ssrf.check_url(url, allow_loopback=True)
    assert exc.value.code == "url_invalid" and exc.value.param == "url" and exc.value.message


# --- address classes ---------------------------------------------------------------------------

def fixed(*addresses):
    calls = []

    def resolve(host, port):
        calls.append((host, port))
        return list(addresses)
    resolve.calls = calls
    return resolve


@pytest.mark.parametrize("address,reason", [
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.1.1", "link_local"), ("fe80::1", "link_local"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"),
    ("100.64.0.1", "cgnat"), ("100.127.255.254", "cgnat"),
    ("::ffff:10.0.0.1", "private"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"), ("::10.0.0.1", "private"),
    ("64:ff9b::a00:1", "private"), ("2002:a00:1::1", "private"), ("2001:0:4136:e378::1", "reserved"),
    ("192.0.2.10", None), ("198.18.0.1", None), ("2001:db8::1", None),
])
def test_refused_address_classes(address, reason):
    resolve = fixed(address)
    with pytest.raises(ssrf.UnsafeDestination) as exc:
        ssrf.resolve_public("hooks.example.com", 443, allow_loopback=False, resolver=resolve)
    if reason is not None:
        assert exc.value.reason == reason
    assert exc.value.address is not None
    # an IP literal in the URL is checked the same way, without asking DNS
    with pytest.raises(ssrf.UnsafeDestination):
        ssrf.resolve_public(address, 443, allow_loopback=False, resolver=fixed())


@pytest.mark.parametrize("name", ["metadata.google.internal", "METADATA.Google.Internal.",
                                  "metadata", "metadata.goog"])
def test_metadata_names_are_refused_before_any_lookup(name):
    resolve = fixed(PUBLIC_V4)
    with pytest.raises(ssrf.UnsafeDestination) as exc:
        ssrf.resolve_public(name, 80, allow_loopback=True, resolver=resolve)
    assert exc.value.reason == "metadata" and resolve.calls == []


def test_public_addresses_pass_and_one_bad_address_refuses_the_host():
    assert ssrf.resolve_public("hooks.example.com", 443, allow_loopback=False,
                               resolver=fixed(PUBLIC_V4, PUBLIC_V6)) == [PUBLIC_V4, PUBLIC_V6]
    assert ssrf.resolve_public("x.test", 443, allow_loopback=False,
                               resolver=fixed("::ffff:" + PUBLIC_V4)) == ["::ffff:5db8:d822"]
    with pytest.raises(ssrf.UnsafeDestination) as exc:
        ssrf.resolve_public("hooks.example.com", 443, allow_loopback=False,
                            resolver=fixed(PUBLIC_V4, "10.1.2.3"))
    assert exc.value.reason == "private"


def test_loopback_only_when_allowed_and_never_the_rest():
    assert ssrf.resolve_public("localhost", 80, allow_loopback=True,
                               resolver=fixed("127.0.0.1", "::1")) == ["127.0.0.1", "::1"]
    for address in ("10.0.0.1", "169.254.169.254", "0.0.0.0"):
        with pytest.raises(ssrf.UnsafeDestination):
            ssrf.resolve_public("localhost", 80, allow_loopback=True, resolver=fixed(address))


def test_names_that_do_not_resolve():
    def nxdomain(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def servfail(host, port):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(ssrf.Unresolvable) as exc:
        ssrf.resolve_public("nope.invalid", 443, allow_loopback=False, resolver=nxdomain)
    assert not exc.value.temporary and exc.value.kind == "connection_error"
    with pytest.raises(ssrf.Unresolvable) as exc:
        ssrf.resolve_public("nope.invalid", 443, allow_loopback=False, resolver=servfail)
    assert exc.value.temporary
    with pytest.raises(ssrf.Unresolvable):
        ssrf.resolve_public("empty.test", 443, allow_loopback=False, resolver=fixed())
    with pytest.raises(ssrf.UnsafeDestination):  # a resolver answering garbage is not trusted
        ssrf.resolve_public("odd.test", 443, allow_loopback=False, resolver=fixed("not-an-ip"))


# --- the pinned transport over real loopback HTTP ---------------------------------------------

class Receiver(http.server.ThreadingHTTPServer):
    """A loopback receiver recording what it got; the path picks the answer."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.hang = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request, client_address):
        pass  # the transport hangs up mid-answer on purpose (timeouts, bounded reads)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append({"path": self.path, "host": self.headers["Host"],
                                     "headers": dict(self.headers), "body": body,
                                     "peer": self.client_address[0]})
        if self.path.startswith("/redirect"):
            self._answer(302, b"moved", Location=f"http://127.0.0.1:{self.server.port}/followed")
        elif self.path.startswith("/big"):
            self._answer(500, b"x" * 1_000_000)
        elif self.path.startswith("/hang"):
            self.server.hang.wait(10)
        elif self.path.startswith("/trickle"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                if self.server.hang.wait(0.2):
                    return
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:  # the client gave up, as it should
                    return
        else:
            self._answer(200, b'{"ok":true}', **{"Retry-After": "7"})

    def _answer(self, status, body, **headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.hang.set()
    server.shutdown()
    server.server_close()


def test_connects_to_the_checked_address_and_names_the_host(receiver):
    resolve = fixed("127.0.0.1")
    answer = ssrf.post_pinned(f"http://receiver.test:{receiver.port}/in?x=1",
                              headers={"webhook-id": "evt_1", "content-type": "application/json"},
                              body=b'{"a":1}', timeout=5, allow_loopback=True, resolver=resolve)
    assert answer.status == 200 and answer.body_excerpt == b'{"ok":true}'
    assert answer.headers["retry-after"] == "7" and answer.latency_ms >= 0
    assert resolve.calls == [("receiver.test", receiver.port)]
    [got] = receiver.requests
    # receiver.test exists in no DNS: the request reached the address the resolver gave
    assert got["host"] == f"receiver.test:{receiver.port}" and got["path"] == "/in?x=1"
    assert got["body"] == b'{"a":1}' and got["headers"]["webhook-id"] == "evt_1"
    assert got["headers"]["User-Agent"] == ssrf.USER_AGENT


def test_callers_user_agent_wins_and_host_cannot_be_forged(receiver):
    ssrf.post_pinned(f"http://receiver.test:{receiver.port}/in",
                     headers={"user-agent": "Payloom-Webhooks/1 (test)", "Host": "evil.test"},
                     body=b"{}", timeout=5, allow_loopback=True, resolver=fixed("127.0.0.1"))
    [got] = receiver.requests
    assert got["host"] == f"receiver.test:{receiver.port}"
    assert [v for k, v in got["headers"].items() if k.lower() == "user-agent"] == ["Payloom-Webhooks/1 (test)"]


def test_dns_rebinding_is_refused_at_delivery(receiver):
    """Public when the endpoint was created, private (or loopback) when delivering."""
    for rebound in ("10.0.0.1", "127.0.0.1", "169.254.169.254"):
        answers = iter([[PUBLIC_V4], [rebound]])

        def rebinding(host, port, answers=answers):
            return next(answers)
        url = f"https://hooks.example.com:{receiver.port}/in"
        assert ssrf.resolve_public("hooks.example.com", receiver.port, allow_loopback=False,
                                   resolver=rebinding) == [PUBLIC_V4]  # at creation
        with pytest.raises(ssrf.UnsafeDestination):
            ssrf.post_pinned(url, headers={}, body=b"{}", timeout=2, allow_loopback=False,
                             resolver=rebinding)
    assert receiver.requests == []


def test_refuses_unsafe_urls_before_resolving(receiver):
    resolve = fixed("127.0.0.1")
    with pytest.raises(ssrf.UnsafeDestination) as exc:  # stored in test mode, delivered in prod
        ssrf.post_pinned(f"http://receiver.test:{receiver.port}/in", headers={}, body=b"",
                         timeout=2, allow_loopback=False, resolver=resolve)
    assert exc.value.reason == "url_invalid"
    with pytest.raises(ssrf.UnsafeDestination):
        ssrf.post_pinned(f"https://127.0.0.1:{receiver.port}/in", headers={}, body=b"",
                         timeout=2, allow_loopback=False, resolver=resolve)
    assert receiver.requests == [] and resolve.calls == []


def test_redirects_are_answers_not_followed(receiver):
    answer = ssrf.post_pinned(f"http://127.0.0.1:{receiver.port}/redirect", headers={}, body=b"{}",
                              timeout=5, allow_loopback=True)
    assert answer.status == 302 and answer.headers["location"].endswith("/followed")
    assert answer.body_excerpt == b"moved"
    assert [r["path"] for r in receiver.requests] == ["/redirect"]


def test_reads_a_bounded_excerpt(receiver):
    started = time.monotonic()
    answer = ssrf.post_pinned(f"http://127.0.0.1:{receiver.port}/big", headers={}, body=b"{}",
                              timeout=5, allow_loopback=True, max_body_bytes=100)
    assert answer.status == 500 and answer.body_excerpt == b"x" * 100
    assert time.monotonic() - started < 2


def test_timeouts_bound_the_whole_exchange(receiver):
    for path in ("/hang", "/trickle"):  # no answer at all / an answer that never ends
        started = time.monotonic()
        with pytest.raises(ssrf.TransportError) as exc:
            ssrf.post_pinned(f"http://127.0.0.1:{receiver.port}{path}", headers={}, body=b"{}",
                             timeout=0.6, allow_loopback=True)
        assert exc.value.kind == "timeout", path
        assert time.monotonic() - started < 1.5, path


def test_connection_and_tls_errors(receiver):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ssrf.TransportError) as exc:
        ssrf.post_pinned(f"http://127.0.0.1:{closed}/", headers={}, body=b"", timeout=2,
                         allow_loopback=True)
    assert exc.value.kind == "connection_error"
    # the next address is tried when one refuses the connection
    answer = ssrf.post_pinned(f"http://dual.test:{receiver.port}/in", headers={}, body=b"",
                              timeout=2, allow_loopback=True, resolver=fixed("::1", "127.0.0.1"))
    assert answer.status == 200
    # https to a server that does not speak TLS
    with pytest.raises(ssrf.TransportError) as exc:
        ssrf.post_pinned(f"https://localhost:{receiver.port}/in", headers={}, body=b"", timeout=2,
                         allow_loopback=True, resolver=fixed("127.0.0.1"))
    assert exc.value.kind == "tls_error"


# --- TLS: the address is pinned, the certificate is still checked against the host name -----

def _tls_files(tmp_path, name: str):
    """A throw-away CA and a certificate for ``name`` signed by it (PEM files)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(subject, issuer, key, signer, *, ca, sans=()):
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(s) for s in sans]), critical=False)
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "payloom test CA")])
    ca_cert = cert(ca_name, ca_name, ca_key, ca_key, ca=True)
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, leaf_key,
                ca_key, ca=False, sans=[name])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.key")


@pytest.fixture
def tls_receiver(tmp_path):
    import ssl

    ca, certfile, keyfile = _tls_files(tmp_path, "receiver.test")
    server = Receiver()
    server.sni: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    context.sni_callback = lambda sock, name, ctx: server.sni.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield server, ca
    server.hang.set()
    server.shutdown()
    server.server_close()


def test_https_is_pinned_and_verified_against_the_host_name(tls_receiver):
    server, ca = tls_receiver
    answer = ssrf.post_pinned(f"https://receiver.test:{server.port}/in", headers={}, body=b"{}",
                              timeout=5, allow_loopback=True, resolver=fixed("127.0.0.1"),
                              ca_certs=ca)
    assert answer.status == 200
    assert server.sni == ["receiver.test"]
    assert [r["host"] for r in server.requests] == [f"receiver.test:{server.port}"]
    # the same address under another name: the certificate does not match it
    with pytest.raises(ssrf.TransportError) as exc:
        ssrf.post_pinned(f"https://impostor.test:{server.port}/in", headers={}, body=b"{}",
                         timeout=5, allow_loopback=True, resolver=fixed("127.0.0.1"), ca_certs=ca)
    assert exc.value.kind == "tls_error"
    # a certificate from a CA outside the public roots is refused by default
    with pytest.raises(ssrf.TransportError) as exc:
        ssrf.post_pinned(f"https://receiver.test:{server.port}/in", headers={}, body=b"{}",
                         timeout=5, allow_loopback=True, resolver=fixed("127.0.0.1"))
    assert exc.value.kind == "tls_error"
    assert len(server.requests) == 1
