"""Key-encryption keys behind one small port: Cloud KMS in production, a local keyring elsewhere.

The port (``shared.platform.secrets_at_rest.Kms``) only wraps and unwraps data keys:

* ``wrap(dek) -> (key_version, wrapped)``: encrypt a 32-byte data key under the *primary* KEK
  version; ``key_version`` names the version that did it.
* ``unwrap(key_version, wrapped) -> dek``: any version that is still enabled unwraps, so a
  rotation never makes an old record unreadable.
* ``primary_version()``: the version ``wrap`` uses now, so a rewrap job knows what is stale.

``CloudKms`` calls Cloud KMS's ``Encrypt``/``Decrypt`` on one symmetric CryptoKey, with the
CRC32C integrity fields Google asks clients to send and check. Rotation is KMS's own: a new
primary version (by schedule or by hand); ``Decrypt`` picks the version out of the ciphertext.

``LocalKms`` is a keyring of AES-256 keys (``{"primary": "v2", "keys": {"v1": b64, ...}}``)
from a generated, git-ignored file or a setting; it exists so the local stack and the tests run
the same envelope code offline. Neither adapter reads settings: callers pass what they need.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any

import google_crc32c
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEK_BYTES = 32


class KmsError(Exception):
    """The KEK could not wrap or unwrap (unknown version, integrity failure, refused)."""


class KmsUnavailable(KmsError):
    """KMS could not be reached or throttled us: retry later."""


def _crc(data: bytes) -> int:
    return google_crc32c.value(data)


# --- Cloud KMS ---------------------------------------------------------------------------------

class CloudKms:
    """One symmetric ENCRYPT_DECRYPT CryptoKey:
    ``projects/P/locations/L/keyRings/R/cryptoKeys/K``."""

    def __init__(self, key_name: str, *, client: Any = None, primary_cache_seconds: float = 300.0,
                 timeout: float = 10.0):
        parts = key_name.split("/")
        if len(parts) != 8 or parts[0::2] != ["projects", "locations", "keyRings", "cryptoKeys"]:
            raise ValueError("key_name must be projects/P/locations/L/keyRings/R/cryptoKeys/K")
        if client is None:  # imported here: only production pays for the client's import
            from google.cloud import kms_v1
            client = kms_v1.KeyManagementServiceClient()
        self.key_name = key_name
        self._client = client
        self._timeout = timeout
        self._primary_cache_seconds = primary_cache_seconds
        self._primary: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def _call(self, method: str, **kwargs: Any) -> Any:
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry
        # Transient errors are retried within this call's own deadline, not the client's
        # default 60 s: a request waiting on KMS should fail fast and be retried by its caller.
        retry = gretry.Retry(predicate=gretry.if_transient_error, initial=0.05, maximum=1.0,
                             multiplier=2.0, timeout=self._timeout)
        try:
            return getattr(self._client, method)(**kwargs, retry=retry, timeout=self._timeout)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.TooManyRequests,
                gexc.InternalServerError, gexc.RetryError) as exc:
            raise KmsUnavailable(f"Cloud KMS {method} unavailable: {type(exc).__name__}") from exc
        except gexc.GoogleAPICallError as exc:
            raise KmsError(f"Cloud KMS {method} refused: {type(exc).__name__}") from exc

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        resp = self._call("encrypt", request={"name": self.key_name, "plaintext": dek,
                                              "plaintext_crc32c": _crc(dek)})
        if not resp.verified_plaintext_crc32c:
            raise KmsError("Cloud KMS did not verify the plaintext checksum (corrupted request)")
        if resp.ciphertext_crc32c != _crc(resp.ciphertext):
            raise KmsError("Cloud KMS ciphertext checksum mismatch (corrupted response)")
        if not resp.name.startswith(self.key_name + "/cryptoKeyVersions/"):
            raise KmsError("Cloud KMS answered with a version of another key")
        return resp.name, bytes(resp.ciphertext)

    def unwrap(self, key_version: str, wrapped: bytes) -> bytes:
        if not key_version.startswith(self.key_name + "/cryptoKeyVersions/"):
            raise KmsError("the data key was wrapped by another key")
        resp = self._call("decrypt", request={"name": self.key_name, "ciphertext": wrapped,
                                              "ciphertext_crc32c": _crc(wrapped)})
        if resp.plaintext_crc32c != _crc(resp.plaintext):
            raise KmsError("Cloud KMS plaintext checksum mismatch (corrupted response)")
        return bytes(resp.plaintext)

    def primary_version(self) -> str:
        """The primary version's name, cached briefly (a rotation shows up within the TTL)."""
        with self._lock:
            cached = self._primary
        if cached and time.monotonic() - cached[0] < self._primary_cache_seconds:
            return cached[1]
        key = self._call("get_crypto_key", request={"name": self.key_name})
        name = key.primary.name
        if not name:
            raise KmsError("the CryptoKey has no primary version (not ENCRYPT_DECRYPT?)")
        with self._lock:
            self._primary = (time.monotonic(), name)
        return name


# --- local keyring -----------------------------------------------------------------------------

_LOCAL_AAD = b"payloom-local-kek:"


class LocalKms:
    """AES-256-GCM KEKs held in process memory, versions named by the keyring."""

    def __init__(self, keys: dict[str, bytes], primary: str):
        if primary not in keys:
            raise ValueError("the primary version is not in the keyring")
        if any(len(k) != 32 for k in keys.values()):
            raise ValueError("local KEKs must be 32 bytes")
        self._keys = dict(keys)
        self._primary = primary
        self._lock = threading.Lock()

    @classmethod
    def generate(cls) -> "LocalKms":
        return cls({"local-1": os.urandom(32)}, "local-1")

    @classmethod
    def from_json(cls, text: str) -> "LocalKms":
        try:
            doc = json.loads(text)
            keys = {str(v): base64.b64decode(k, validate=True) for v, k in doc["keys"].items()}
            return cls(keys, str(doc["primary"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed local keyring: {type(exc).__name__}") from None

    def to_json(self) -> str:
        with self._lock:
            return json.dumps({"primary": self._primary, "keys": {
                v: base64.b64encode(k).decode() for v, k in self._keys.items()}}, indent=1)

    def rotate(self) -> str:
        """Add a new version and make it primary (old versions keep unwrapping)."""
        with self._lock:
            n = 1 + max((int(v.rsplit("-", 1)[-1]) for v in self._keys
                         if v.rsplit("-", 1)[-1].isdigit()), default=0)
            version = f"local-{n}"
            self._keys[version] = os.urandom(32)
            self._primary = version
            return version

    def destroy(self, version: str) -> None:
        """Forget a version (as KMS does after destruction): its records become unreadable."""
        with self._lock:
            if version == self._primary:
                raise ValueError("cannot destroy the primary version")
            self._keys.pop(version, None)

    def primary_version(self) -> str:
        with self._lock:
            return self._primary

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        with self._lock:
            version, kek = self._primary, self._keys[self._primary]
        nonce = os.urandom(12)
        return version, nonce + AESGCM(kek).encrypt(nonce, dek, _LOCAL_AAD + version.encode())

    def unwrap(self, key_version: str, wrapped: bytes) -> bytes:
        with self._lock:
            kek = self._keys.get(key_version)
        if kek is None:
            raise KmsError("unknown or destroyed key version")
        try:
            return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _LOCAL_AAD + key_version.encode())
        except Exception:  # noqa: BLE001 - InvalidTag or a truncated blob: the same answer
            raise KmsError("the wrapped data key failed its integrity check") from None
