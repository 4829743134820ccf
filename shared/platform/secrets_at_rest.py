"""Reversible secrets stored in Firestore, envelope-encrypted through a KMS port (ADR 0004).

Why: a Firestore export, a backup or a read-only bug must not hand out TOTP seeds, webhook
signing secrets, provider tokens or HD seeds. Each secret gets its own random AES-256-GCM data
key (DEK); the DEK is stored wrapped by a key-encryption key (KEK) that never leaves KMS.

Stored form (a small map, JSON-safe)::

    {"v": 1, "alg": "A256GCM", "kek": "<KEK version>", "dek": b64(wrapped DEK),
     "iv": b64(12-byte nonce), "ct": b64(ciphertext + tag)}

The associated data is ``payloom.sealed.v1|<context>`` where the context names the owner
(``context("user_mfa", "usr_1", "totp")``), so a sealed value copied onto another record or
field fails to open. The KEK version is not in the associated data: rotation re-wraps the DEK
and leaves ``iv``/``ct`` untouched.

Rotation without downtime: KMS makes a new KEK version primary; old versions keep unwrapping, so
every record stays readable; ``rewrap`` moves one record to the primary version and
``rewrap_collection`` does it in bulk (and migrates legacy plaintext values) for the fields
registered with ``register_sealed_field``. Old KEK versions may be disabled once a bulk run
reports nothing left on them.
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import os
import pathlib
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.platform.logs import get_logger, log

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FORMAT_VERSION = 1
ALG = "A256GCM"
_AAD_PREFIX = b"payloom.sealed.v1|"
_log = get_logger(__name__)


class Kms(Protocol):
    """The KMS port (adapters in ``shared.adapters.kms``)."""

    def wrap(self, dek: bytes) -> tuple[str, bytes]: ...
    def unwrap(self, key_version: str, wrapped: bytes) -> bytes: ...
    def primary_version(self) -> str: ...


class SecretIntegrityError(Exception):
    """The sealed value was altered, belongs to another owner, or is not a sealed value."""


def context(collection: str, doc_id: str, purpose: str) -> str:
    """The owner a sealed value is bound to: one document and one purpose in it."""
    if not (collection and doc_id and purpose) or any("|" in p for p in (collection, doc_id, purpose)):
        raise ValueError("context parts must be non-empty and contain no '|'")
    return f"{collection}/{doc_id}#{purpose}"


def is_sealed(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("v") == FORMAT_VERSION and value.get("alg") == ALG
            and all(isinstance(value.get(k), str) for k in ("kek", "dek", "iv", "ct")))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SecretIntegrityError("the sealed value is malformed") from None


class Envelope:
    """Seal and open secrets with per-secret data keys wrapped by ``kms``.

    ``dek_cache_seconds`` keeps unwrapped DEKs in process memory briefly, so a hot read (a TOTP
    check at login) costs no KMS call each time; ``reuse_key=True`` on ``seal`` lets short-lived,
    high-volume values (queued messages) share one DEK for that long instead of one KMS call each.
    """

    def __init__(self, kms: Kms, *, dek_cache_seconds: float = 300.0, cache_size: int = 1024):
        self.kms = kms
        self._ttl = dek_cache_seconds
        self._size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._shared: tuple[float, str, str, bytes] | None = None  # (at, kek, wrapped b64, dek)
        self._lock = threading.Lock()

    # --- caches ----------------------------------------------------------------------------
    def _cached(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < self._ttl:
                self._cache.move_to_end(key)
                return hit[1]
            self._cache.pop(key, None)
            return None

    def _remember(self, key: tuple[str, str], dek: bytes) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (time.monotonic(), dek)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def _new_dek(self, reuse_key: bool) -> tuple[str, str, bytes]:
        if reuse_key and self._ttl > 0:
            with self._lock:
                shared = self._shared
            if shared and time.monotonic() - shared[0] < self._ttl:
                return shared[1], shared[2], shared[3]
        dek = AESGCM.generate_key(bit_length=256)
        kek, wrapped = self.kms.wrap(dek)
        wrapped_b64 = _b64(wrapped)
        self._remember((kek, wrapped_b64), dek)
        if reuse_key:
            with self._lock:
                self._shared = (time.monotonic(), kek, wrapped_b64, dek)
        return kek, wrapped_b64, dek

    def _dek(self, sealed: dict[str, Any]) -> bytes:
        key = (sealed["kek"], sealed["dek"])
        dek = self._cached(key)
        if dek is None:
            from shared.adapters.kms import KmsError
            try:
                dek = self.kms.unwrap(sealed["kek"], _unb64(sealed["dek"]))
            except KmsError as exc:
                if type(exc) is not KmsError:  # KmsUnavailable: retryable, not tampering
                    raise
                raise SecretIntegrityError(f"the data key does not unwrap: {exc}") from None
            self._remember(key, dek)
        return dek

    # --- the API ---------------------------------------------------------------------------
    def seal(self, plaintext: str | bytes, *, context: str, reuse_key: bool = False) -> dict[str, str | int]:
        data = plaintext.encode() if isinstance(plaintext, str) else bytes(plaintext)
        kek, wrapped_b64, dek = self._new_dek(reuse_key)
        nonce = os.urandom(12)
        ct = AESGCM(dek).encrypt(nonce, data, _AAD_PREFIX + context.encode())
        return {"v": FORMAT_VERSION, "alg": ALG, "kek": kek, "dek": wrapped_b64,
                "iv": _b64(nonce), "ct": _b64(ct)}

    def open(self, sealed: Any, *, context: str) -> bytes:
        if not is_sealed(sealed):
            raise SecretIntegrityError("not a sealed value")
        try:
            return AESGCM(self._dek(sealed)).decrypt(
                _unb64(sealed["iv"]), _unb64(sealed["ct"]), _AAD_PREFIX + context.encode())
        except (InvalidTag, ValueError):
            raise SecretIntegrityError("the sealed value was altered or belongs elsewhere") from None

    def open_text(self, sealed: Any, *, context: str) -> str:
        return self.open(sealed, context=context).decode()

    def reveal(self, value: Any, *, context: str) -> str | None:
        """Decrypt-or-migrate reads: a sealed value is opened, a legacy plaintext string (stored
        before sealing existed) is returned as it is, ``None`` stays ``None``."""
        if value is None or isinstance(value, str):
            return value
        return self.open_text(value, context=context)

    def ensure_sealed(self, value: Any, *, context: str) -> Any:
        """The value to store: a plaintext string is sealed, a sealed value or None is kept."""
        if isinstance(value, str) and value:
            return self.seal(value, context=context)
        return value

    def needs_rewrap(self, sealed: Any) -> bool:
        return is_sealed(sealed) and sealed["kek"] != self.kms.primary_version()

    def rewrap(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        """The same secret with its DEK wrapped by the primary KEK version (``None`` if it already
        is). The ciphertext is untouched, so no context is needed and nothing is decrypted."""
        if not is_sealed(sealed):
            raise SecretIntegrityError("not a sealed value")
        if not self.needs_rewrap(sealed):
            return None
        kek, wrapped = self.kms.wrap(self._dek(sealed))
        return {**sealed, "kek": kek, "dek": _b64(wrapped)}


# --- which fields hold sealed values, and the bulk job ---------------------------------------

@dataclasses.dataclass(frozen=True)
class SealedField:
    collection: str
    field: str
    purpose: str  # the context purpose (several fields may hold the same secret over time)


SEALED_FIELDS: list[SealedField] = []


def register_sealed_field(collection: str, field: str, purpose: str | None = None) -> SealedField:
    """``field`` is a top-level field, or ``list[].key`` for a list of maps that each hold a
    sealed value under ``key`` (rewrapped in place; legacy plaintext is not migrated there)."""
    entry = SealedField(collection, field, purpose or field)
    if entry not in SEALED_FIELDS:
        SEALED_FIELDS.append(entry)
    return entry


# The TOTP seed moves from pending_secret to totp_secret on confirmation: one purpose for both.
register_sealed_field("user_mfa", "pending_secret", "totp")
register_sealed_field("user_mfa", "totp_secret", "totp")
# Webhook endpoints keep one signing secret per rotation (shared/webhooks/endpoints.py). Listed
# here, not registered by that module, so the rewrap function covers them without importing it.
register_sealed_field("webhook_endpoints", "secrets[].sealed", "secret")
# Payment intents' client secrets kept for the hosted pages of invoices and payment links.
register_sealed_field("invoices", "intent_client_secret")
register_sealed_field("payment_link_checkouts", "client_secret")
# The custodial HD seed of each mode (shared/chain/hd.py, ADR 0032).
register_sealed_field("chain_custody", "entropy", "bip39_entropy")
# Relay clients' callback signing secrets, one per rotation (shared/relay/callbacks.py, ADR 0044).
register_sealed_field("relay_callback_secrets", "secrets[].sealed", "secret")


@dataclasses.dataclass
class RewrapReport:
    scanned: int = 0
    rewrapped: int = 0
    migrated: int = 0
    skipped_concurrent: int = 0
    failed: int = 0


def rewrap_collection(db, env: Envelope, collection: str, *, fields: list[SealedField] | None = None,
                      page_size: int = 200, report: RewrapReport | None = None) -> RewrapReport:
    """Move every sealed value in ``collection`` to the primary KEK and seal legacy plaintext.

    Each document is updated with a precondition on the ``update_time`` it was read at, so a
    concurrent writer wins and its value (written with the primary KEK) is left alone.
    """
    from google.api_core import exceptions as gexc

    fields = [f for f in (fields or SEALED_FIELDS) if f.collection == collection]
    report = report or RewrapReport()
    if not fields:
        return report
    query = db.collection(collection).order_by("__name__").limit(page_size)
    last = None
    while True:
        page = list((query.start_after(last) if last is not None else query).stream())
        for snap in page:
            report.scanned += 1
            doc = snap.to_dict() or {}
            update: dict[str, Any] = {}
            migrated = False
            try:
                for f in fields:
                    if "[]." in f.field:  # a list of maps, each holding one sealed value
                        items = _rewrapped_items(env, doc, f.field)
                        if items is not None:
                            update[f.field.split("[].", 1)[0]] = items
                        continue
                    value = doc.get(f.field)
                    if is_sealed(value):
                        new = env.rewrap(value)
                        if new is not None:
                            update[f.field] = new
                    elif isinstance(value, str) and value:
                        update[f.field] = env.seal(value, context=context(collection, snap.id, f.purpose))
                        migrated = True
            except SecretIntegrityError:
                report.failed += 1
                log(_log, logging.ERROR, "sealed value does not open; left as it is",
                    collection=collection, doc_id=snap.id)
                continue
            if not update:
                continue
            try:
                snap.reference.update(update, option=db.write_option(last_update_time=snap.update_time))
            except (gexc.FailedPrecondition, gexc.NotFound):
                report.skipped_concurrent += 1
                continue
            report.migrated += migrated
            report.rewrapped += not migrated
        if len(page) < page_size:
            break
        last = page[-1]
    return report


def _rewrapped_items(env: Envelope, doc: dict[str, Any], path: str) -> list | None:
    """For ``secrets[].sealed``: the list with each item's sealed value moved to the primary
    KEK (the ciphertext is untouched, so no context is needed), or None if nothing moved."""
    list_field, item_field = path.split("[].", 1)
    items = doc.get(list_field)
    if not isinstance(items, list):
        return None
    out, moved = [], False
    for item in items:
        value = item.get(item_field) if isinstance(item, dict) else None
        new = env.rewrap(value) if is_sealed(value) else None
        moved = moved or new is not None
        out.append({**item, item_field: new} if new is not None else item)
    return out if moved else None


def rewrap_all(db, env: Envelope) -> dict[str, RewrapReport]:
    """The ops/scheduled job: every registered collection."""
    return {c: rewrap_collection(db, env, c) for c in dict.fromkeys(f.collection for f in SEALED_FIELDS)}


# --- wiring ------------------------------------------------------------------------------------

class KmsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYLOOM_KMS_", extra="ignore")

    # Production: the Cloud KMS CryptoKey (symmetric, ENCRYPT_DECRYPT) that wraps data keys.
    key_name: str = ""
    # Local/test: a keyring JSON ({"primary", "keys": {version: b64}}) given directly, else read
    # from (or generated into) this git-ignored file, relative to the repository root.
    local_keys: str = Field("", repr=False)
    local_keys_file: str = ".local/secrets/kms-local-keys.json"
    dek_cache_seconds: float = 300.0


_file_lock = threading.Lock()


def _local_keyring(path: pathlib.Path):
    from shared.adapters.kms import LocalKms
    with _file_lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kms-keys.")
            with os.fdopen(fd, "w") as fh:
                fh.write(LocalKms.generate().to_json())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # exclusive: another process may have created it first
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        return LocalKms.from_json(path.read_text())


def build_kms(settings: KmsSettings, *, env: str) -> Kms:
    from shared.adapters.kms import CloudKms, LocalKms
    if settings.key_name:
        return CloudKms(settings.key_name)
    if env in ("staging", "prod"):
        raise RuntimeError("PAYLOOM_KMS_KEY_NAME is not configured; secrets cannot be sealed")
    if settings.local_keys.strip():
        return LocalKms.from_json(settings.local_keys)
    if env == "test":
        return LocalKms.generate()  # per process: tests never depend on a file
    path = pathlib.Path(settings.local_keys_file)
    return _local_keyring(path if path.is_absolute() else REPO_ROOT / path)


def kms_settings(deps) -> KmsSettings:
    return deps.get("platform.kms_settings", KmsSettings)


def get_kms(deps) -> Kms:
    settings = kms_settings(deps)
    return deps.get("platform.kms", lambda: build_kms(settings, env=deps.settings.env))


def envelope(deps) -> Envelope:
    """The process's envelope for these deps (tests inject ``deps.extras["platform.kms"]``)."""
    settings = kms_settings(deps)
    kms = get_kms(deps)
    return deps.get("platform.envelope",
                    lambda: Envelope(kms, dek_cache_seconds=settings.dek_cache_seconds))
