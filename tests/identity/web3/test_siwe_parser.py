"""ERC-4361 parser: the specification's example messages and invalid variants."""
from __future__ import annotations

import pytest

from shared.identity.web3.siwe import SiweMessage, SiweParseError, parse_datetime, parse_message

ADDR = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
RESOURCES = ("- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
             "- https://example.com/my-web2-claim.json")
BODY = (f"{ADDR}\n\nI accept the ExampleOrg Terms of Service: https://example.com/tos\n\n"
        "URI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\n"
        f"Issued At: 2021-09-30T16:25:24Z\nResources:\n{RESOURCES}")
HEADER = " wants you to sign in with your Ethereum account:\n"

# The three examples of the ERC-4361 text (implicit scheme, explicit port, explicit scheme).
SPEC_EXAMPLES = {
    "implicit scheme": "example.com" + HEADER + BODY,
    "implicit scheme, explicit port": "example.com:3388" + HEADER + BODY,
    "explicit scheme": "https://example.com" + HEADER + BODY,
}


@pytest.mark.parametrize("name", SPEC_EXAMPLES)
def test_spec_examples_parse(name):
    msg = parse_message(SPEC_EXAMPLES[name])
    assert msg.address == ADDR and msg.chain_id == 1 and msg.nonce == "32891756"
    assert msg.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert msg.uri == "https://example.com/login" and msg.version == "1"
    assert msg.resources == ("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
                             "https://example.com/my-web2-claim.json")
    assert msg.issued_at == "2021-09-30T16:25:24Z"
    assert msg.prepare() == SPEC_EXAMPLES[name]
    if name == "explicit scheme":
        assert (msg.scheme, msg.domain) == ("https", "example.com")
    elif name == "implicit scheme, explicit port":
        assert (msg.scheme, msg.domain) == (None, "example.com:3388")


def _minimal(**kw) -> str:
    fields = dict(domain="service.org", address=ADDR, uri="https://service.org/login", version="1",
                  chain_id=1, nonce="abcdef12", issued_at="2021-09-30T16:25:24.000Z")
    fields.update(kw)
    return SiweMessage(**fields).prepare()


VALID = {
    "no statement": _minimal(),
    "empty statement": _minimal(statement=""),
    "all optional fields": _minimal(statement="Sign in to Payloom.", expiration_time="2021-10-01T00:00:00Z",
                                    not_before="2021-09-30T16:00:00+07:00", request_id="req-1;a=b",
                                    resources=("urn:payloom:wallet", "https://payloom.dev/x?y=1#z")),
    "empty resources list": _minimal(resources=()),
    "empty request id": _minimal(request_id=""),
    "lower-case t and z, fraction": _minimal(issued_at="2021-09-30t16:25:24.123456789z"),
    "offset time": _minimal(issued_at="2021-09-30T23:25:24+07:00"),
    "ipv6 authority": _minimal(domain="[::1]:8080"),
    "userinfo authority": _minimal(domain="alice@example.com"),
    "localhost": _minimal(domain="localhost:3000", scheme="http"),
    "long chain id": _minimal(chain_id=11155111),
    "leap second": _minimal(issued_at="2016-12-31T23:59:60Z"),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_variants(name):
    msg = parse_message(VALID[name])
    assert msg.prepare() == VALID[name]


def test_statement_absent_and_empty_are_different_messages():
    assert parse_message(VALID["no statement"]).statement is None
    assert parse_message(VALID["empty statement"]).statement == ""
    assert VALID["no statement"].count("\n") + 1 == VALID["empty statement"].count("\n")


BASE = SPEC_EXAMPLES["implicit scheme"]
INVALID = {
    "lower-case (non-checksummed) address": BASE.replace(ADDR, ADDR.lower()),
    "wrong checksum": BASE.replace(ADDR, ADDR[:-1] + "c"),
    "upper-case 0X": BASE.replace(ADDR, "0X" + ADDR[2:]),
    "short address": BASE.replace(ADDR, ADDR[:-2]),
    "CRLF line endings": BASE.replace("\n", "\r\n"),
    "trailing newline": BASE + "\n",
    "leading space": " " + BASE,
    "missing blank line after address": BASE.replace(f"{ADDR}\n\n", f"{ADDR}\n", 1),
    "missing blank line after statement": BASE.replace("tos\n\nURI", "tos\nURI"),
    "version 2": BASE.replace("Version: 1", "Version: 2"),
    "nonce too short": BASE.replace("Nonce: 32891756", "Nonce: 3289175"),
    "nonce with symbols": BASE.replace("Nonce: 32891756", "Nonce: 3289-1756"),
    "issued at without offset": BASE.replace("16:25:24Z", "16:25:24"),
    "issued at with space": BASE.replace("2021-09-30T16", "2021-09-30 16"),
    "impossible date": BASE.replace("2021-09-30", "2021-02-30"),
    "hour 24": BASE.replace("T16:25", "T24:25"),
    "chain id not a number": BASE.replace("Chain ID: 1", "Chain ID: one"),
    "empty chain id": BASE.replace("Chain ID: 1", "Chain ID: "),
    "URI not a URI": BASE.replace("URI: https://example.com/login", "URI: example com"),
    "URI with space": BASE.replace("URI: https://example.com/login", "URI: https://example.com/a b"),
    "missing URI": BASE.replace("URI: https://example.com/login\n", ""),
    "lower-case field name": BASE.replace("Nonce:", "nonce:"),
    "double space after field": BASE.replace("URI: ", "URI:  "),
    "unknown field": BASE.replace("Resources:", "Foo: bar\nResources:"),
    "fields out of order": _minimal(expiration_time="2021-10-01T00:00:00Z", not_before="2021-09-30T00:00:00Z")
        .replace("Expiration Time: 2021-10-01T00:00:00Z\nNot Before: 2021-09-30T00:00:00Z",
                 "Not Before: 2021-09-30T00:00:00Z\nExpiration Time: 2021-10-01T00:00:00Z"),
    "resource without dash": BASE.replace("- https://example.com/my-web2", "https://example.com/my-web2"),
    "resource not a URI": BASE.replace("- https://example.com/my-web2-claim.json", "- not a uri"),
    "statement with non-ASCII": BASE.replace("I accept", "J'accepte é"),
    "statement with percent": BASE.replace("I accept", "100% accept"),
    "statement with quote": BASE.replace("I accept", 'I "accept"'),
    "header typo": BASE.replace("Ethereum account:", "ethereum account:"),
    "domain with space": BASE.replace("example.com wants", "example .com wants"),
    "empty domain": BASE.replace("example.com wants", " wants", 1),
    "bad scheme": BASE.replace("example.com wants", "1https://example.com wants"),
    "bad ipv6": BASE.replace("example.com wants", "[::zz]:80 wants"),
    "request id with space": _minimal(request_id="a b"),
    "expiration not a date": _minimal(expiration_time="tomorrow"),
    "empty message": "",
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_variants(name):
    with pytest.raises(SiweParseError):
        parse_message(INVALID[name])


def test_rfc3339_parsing():
    assert parse_datetime("2021-09-30T23:25:24+07:00") == parse_datetime("2021-09-30T16:25:24Z")
    assert parse_datetime("2021-09-30T16:25:24.5Z").microsecond == 500000
    for bad in ("2021-09-30", "2021-09-30T16:25Z", "2021-13-01T00:00:00Z", "2021-09-30T16:25:24+7:00",
                "2021-09-30T16:25:61Z", "2021-09-30T16:25:24+24:00"):
        with pytest.raises(SiweParseError):
            parse_datetime(bad)
