"""JWT signing keys: a key set with ``kid``s, loaded from a JSON secret, rotated with overlap.

The secret is a JSON list of ``{"kid", "alg", "private_pem", "created", "verify_until"?}``:

* ``alg`` is ``EdDSA`` (Ed25519) or ``ES256`` (P-256); each key verifies only its own alg.
* The newest key (by ``created``) that is not retired signs; every key verifies until its
  ``verify_until`` (set when a rotation retires it: the moment it stopped signing plus the
  longest access-token lifetime), after which it is dropped.
* ``kid`` is the RFC 7638 JWK thumbprint (first 16 chars), so it is stable and never collides
  between algorithms.

Production: the Secret Manager secret ``jwt-signing-keys`` (env ``JWT_SIGNING_KEYS`` or
``PAYLOOM_IDENTITY_JWT_KEYS``); a missing or empty value fails closed. Local/test: when unset,
a key is generated once and persisted to ``.local/secrets/jwt-keys.json`` (gitignored) so the
gateway and test processes share it. Tests inject a ``KeySet`` with
``deps.extras["identity.keyset"] = keyset``.

Operators rotate with ``python -m shared.identity.sessions.keys rotate < current.json > next.json`` and
add the output as a new secret version (see ADR 0010).
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import pathlib
import sys
import tempfile
import threading
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from shared.identity.config import IdentitySettings, identity_settings
from shared.identity.responses import JwkSet
from shared.platform.clock import UTC, rfc3339

SUPPORTED_ALGS = ("EdDSA", "ES256")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
_file_lock = threading.Lock()


class KeyConfigError(RuntimeError):
    """The key secret is missing or malformed (fail closed, never sign with a guess)."""


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: Any
    created: dt.datetime
    verify_until: dt.datetime | None = None  # set once retired from signing

    @property
    def public_key(self):
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return {**_public_jwk_members(self.public_key), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def private_pem(self) -> str:
        return self.private_key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def to_json(self) -> dict[str, Any]:
        out = {"kid": self.kid, "alg": self.alg, "private_pem": self.private_pem(),
               "created": rfc3339(self.created)}
        if self.verify_until:
            out["verify_until"] = rfc3339(self.verify_until)
        return out


def _public_jwk_members(public_key) -> dict[str, str]:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64u(raw)}
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        nums = public_key.public_numbers()
        return {"crv": "P-256", "kty": "EC", "x": _b64u(nums.x.to_bytes(32, "big")),
                "y": _b64u(nums.y.to_bytes(32, "big"))}
    raise KeyConfigError("unsupported public key type")


def thumbprint_kid(public_key) -> str:
    """RFC 7638 thumbprint (required members, sorted, no spaces), shortened to 16 chars."""
    members = _public_jwk_members(public_key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return _b64u(hashlib.sha256(canonical).digest())[:16]


def _check_alg(alg: str, private_key) -> None:
    if alg == "EdDSA" and isinstance(private_key, ed25519.Ed25519PrivateKey):
        return
    if (alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey)
            and isinstance(private_key.curve, ec.SECP256R1)):
        return
    raise KeyConfigError(f"key type does not match alg {alg!r}")


def generate_key(alg: str = "EdDSA", *, now: dt.datetime | None = None) -> SigningKey:
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise KeyConfigError(f"unsupported alg {alg!r}; use one of {SUPPORTED_ALGS}")
    return SigningKey(thumbprint_kid(private.public_key()), alg, private,
                      (now or dt.datetime.now(UTC)).replace(microsecond=0))


@dataclasses.dataclass(frozen=True)
class KeySet:
    keys: tuple[SigningKey, ...]

    def active(self, now: dt.datetime) -> list[SigningKey]:
        """Keys that still verify at ``now``, newest first."""
        live = [k for k in self.keys if k.verify_until is None or k.verify_until > now]
        return sorted(live, key=lambda k: k.created, reverse=True)

    def signing_key(self, now: dt.datetime) -> SigningKey:
        for key in self.active(now):
            if key.verify_until is None:
                return key
        raise KeyConfigError("the key set has no key that may sign")

    def verification_key(self, kid: str, now: dt.datetime) -> SigningKey | None:
        for key in self.active(now):
            if key.kid == kid:
                return key
        return None

    def jwks(self, now: dt.datetime) -> JwkSet:
        """The public keys that verify tokens at ``now`` (RFC 7517), for /.well-known/jwks.json."""
        return JwkSet.model_validate({"keys": [k.public_jwk() for k in self.active(now)]})

    def to_json(self) -> str:
        return json.dumps([k.to_json() for k in sorted(self.keys, key=lambda k: k.created,
                                                      reverse=True)], indent=1)


def load_keyset(text: str) -> KeySet:
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise KeyConfigError("the JWT key secret is not valid JSON") from exc
    if isinstance(entries, dict) and "keys" in entries:
        entries = entries["keys"]
    if not isinstance(entries, list) or not entries:
        raise KeyConfigError("the JWT key secret must be a non-empty JSON list")
    keys, kids = [], set()
    for entry in entries:
        try:
            alg = entry["alg"]
            if alg not in SUPPORTED_ALGS:
                raise KeyConfigError(f"unsupported alg {alg!r}")
            private = serialization.load_pem_private_key(entry["private_pem"].encode(), None)
            _check_alg(alg, private)
            kid = entry.get("kid") or thumbprint_kid(private.public_key())
            created = _parse_time(entry.get("created")) or dt.datetime(1970, 1, 1, tzinfo=UTC)
            verify_until = _parse_time(entry.get("verify_until"))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyConfigError(f"malformed JWT key entry: {type(exc).__name__}") from None
        if kid in kids:
            raise KeyConfigError(f"duplicate kid {kid!r}")
        kids.add(kid)
        keys.append(SigningKey(kid, alg, private, created, verify_until))
    return KeySet(tuple(keys))


def rotate(keyset: KeySet, *, now: dt.datetime | None = None, alg: str | None = None,
           overlap_seconds: int | None = None) -> KeySet:
    """Add a new signing key; the previous signers keep verifying until their tokens expire.

    ``overlap_seconds`` defaults to the access-token lifetime plus the clock skew, the longest
    a token signed by the old key can still be valid. Keys already past ``verify_until`` drop.
    """
    now = now or dt.datetime.now(UTC)
    settings = IdentitySettings()
    overlap = dt.timedelta(seconds=overlap_seconds if overlap_seconds is not None
                           else settings.access_token_ttl_seconds + settings.clock_skew_seconds)
    newest = max(keyset.keys, key=lambda k: k.created) if keyset.keys else None
    new = generate_key(alg or (newest.alg if newest else "EdDSA"), now=now)
    if newest and new.created <= newest.created:  # keep "newest signs" unambiguous
        new = dataclasses.replace(new, created=newest.created + dt.timedelta(seconds=1))
    kept = []
    for key in keyset.keys:
        if key.verify_until is not None and key.verify_until <= now:
            continue
        kept.append(key if key.verify_until else dataclasses.replace(key, verify_until=now + overlap))
    return KeySet((new, *kept))


# --- where the key set comes from -----------------------------------------------------------

def _local_file(settings: IdentitySettings) -> pathlib.Path:
    path = pathlib.Path(settings.jwt_keys_file)
    return path if path.is_absolute() else REPO_ROOT / path


def _load_or_create_local(path: pathlib.Path, alg: str) -> KeySet:
    with _file_lock:
        if path.exists():
            return load_keyset(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        keyset = KeySet((generate_key(alg),))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-keys.")
        with os.fdopen(fd, "w") as fh:
            fh.write(keyset.to_json())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic and exclusive: another process may have won the race
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return load_keyset(path.read_text())


def keyset_from_settings(settings: IdentitySettings, *, production: bool) -> KeySet:
    if settings.jwt_keys.strip():
        return load_keyset(settings.jwt_keys)
    if production:
        raise KeyConfigError("JWT signing keys are not configured (secret jwt-signing-keys)")
    return _load_or_create_local(_local_file(settings), settings.jwt_alg)


def get_keyset(deps) -> KeySet:
    """The key set for these deps: injected (tests), else from settings, built once."""
    # Resolve the settings first: Deps builds lazily under a non-reentrant lock, so a factory
    # must not call deps.get itself.
    settings = identity_settings(deps)
    return deps.get("identity.keyset", lambda: keyset_from_settings(
        settings, production=deps.settings.is_production))


def main(argv: list[str] | None = None) -> int:
    """``generate [EdDSA|ES256]`` prints a new key set; ``rotate`` reads one on stdin."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("generate", "rotate", "jwks"):
        print("usage: python -m shared.identity.sessions.keys generate [alg] | rotate [alg] | jwks  "
              "(rotate and jwks read the current set on stdin)", file=sys.stderr)
        return 2
    alg = args[1] if len(args) > 1 else None
    if args[0] == "generate":
        print(KeySet((generate_key(alg or "EdDSA"),)).to_json())
    elif args[0] == "rotate":
        print(rotate(load_keyset(sys.stdin.read()), alg=alg).to_json())
    else:
        print(load_keyset(sys.stdin.read()).jwks(dt.datetime.now(UTC)).model_dump_json(indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
