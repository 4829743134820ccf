"""Envelope encryption of secrets at rest (shared.platform.secrets_at_rest, ADR 0004).

The crypto tests need no emulator. The Cloud KMS adapter is exercised through the real
google-cloud-kms client over gRPC against a loopback fake KeyManagementService (the client is
pointed at it with an insecure channel), so the requests it builds and the checksums it checks
are the library's own wire messages. The bulk rewrap runs against the Firestore emulator.
"""
from __future__ import annotations

import base64
import json
import os
import threading
from concurrent import futures

import google_crc32c
import grpc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.adapters.kms import CloudKms, KmsError, KmsUnavailable, LocalKms
from shared.platform import secrets_at_rest as sar
from shared.platform.secrets_at_rest import Envelope, SecretIntegrityError

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CTX = sar.context("user_mfa", "usr_alice", "totp")


@pytest.fixture
def kms():
    return LocalKms.generate()


@pytest.fixture
def env(kms):
    return Envelope(kms, dek_cache_seconds=0)


def test_round_trip_and_each_secret_has_its_own_key(env):
    a = env.seal(SECRET, context=CTX)
    b = env.seal(SECRET, context=CTX)
    assert env.open_text(a, context=CTX) == SECRET
    assert env.open_text(b, context=CTX) == SECRET
    assert a["dek"] != b["dek"] and a["iv"] != b["iv"] and a["ct"] != b["ct"]
    assert set(a) == {"v", "alg", "kek", "dek", "iv", "ct"} and a["kek"] == "local-1"
    assert json.loads(json.dumps(a)) == a  # JSON/Firestore-safe


def test_the_stored_form_holds_no_plaintext(env):
    sealed = env.seal(SECRET, context=CTX)
    blob = json.dumps(sealed)
    assert SECRET not in blob and SECRET.lower() not in blob.lower()
    for value in sealed.values():
        if isinstance(value, str) and value not in ("A256GCM",) and not value.startswith("local"):
            assert SECRET.encode() not in base64.b64decode(value)


@pytest.mark.parametrize("field", ["ct", "iv", "dek"])
def test_tampering_is_detected(env, field):
    sealed = env.seal(SECRET, context=CTX)
    raw = bytearray(base64.b64decode(sealed[field]))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(SecretIntegrityError):
        env.open(dict(sealed, **{field: base64.b64encode(bytes(raw)).decode()}), context=CTX)


def test_malformed_values_are_refused(env):
    sealed = env.seal(SECRET, context=CTX)
    for bad in (None, "plain", {}, dict(sealed, v=2), dict(sealed, ct="not base64!!"),
                dict(sealed, kek="local-99"), dict(sealed, iv="")):
        with pytest.raises(SecretIntegrityError):
            env.open(bad, context=CTX)


def test_a_value_copied_to_another_owner_does_not_open(env):
    sealed = env.seal(SECRET, context=CTX)
    for other in (sar.context("user_mfa", "usr_mallory", "totp"),
                  sar.context("user_mfa", "usr_alice", "webhook_secret"),
                  sar.context("webhook_endpoints", "usr_alice", "totp")):
        with pytest.raises(SecretIntegrityError):
            env.open(sealed, context=other)
    with pytest.raises(ValueError):
        sar.context("user_mfa", "a|b", "totp")


def test_rotation_keeps_old_records_readable_and_rewrap_moves_them(kms, env):
    old = env.seal(SECRET, context=CTX)
    assert not env.needs_rewrap(old) and env.rewrap(old) is None
    new_version = kms.rotate()
    assert new_version == "local-2" and kms.primary_version() == "local-2"
    assert env.open_text(old, context=CTX) == SECRET       # old version still unwraps
    assert env.seal("x", context=CTX)["kek"] == "local-2"  # new secrets use the new primary
    assert env.needs_rewrap(old)
    moved = env.rewrap(old)
    assert moved["kek"] == "local-2" and moved["dek"] != old["dek"]
    assert (moved["iv"], moved["ct"]) == (old["iv"], old["ct"])  # data untouched
    kms.destroy("local-1")
    assert env.open_text(moved, context=CTX) == SECRET
    with pytest.raises(SecretIntegrityError):
        env.open(old, context=CTX)


def test_decrypt_or_migrate_reads(env):
    assert env.reveal(None, context=CTX) is None
    assert env.reveal(SECRET, context=CTX) == SECRET  # legacy plaintext record
    sealed = env.ensure_sealed(SECRET, context=CTX)
    assert sar.is_sealed(sealed) and env.ensure_sealed(sealed, context=CTX) is sealed
    assert env.reveal(sealed, context=CTX) == SECRET


def test_dek_cache_and_shared_keys_save_kms_calls(kms):
    calls = {"wrap": 0, "unwrap": 0}

    class Counting:
        def wrap(self, dek):
            calls["wrap"] += 1
            return kms.wrap(dek)

        def unwrap(self, version, wrapped):
            calls["unwrap"] += 1
            return kms.unwrap(version, wrapped)

        def primary_version(self):
            return kms.primary_version()

    env = Envelope(Counting(), dek_cache_seconds=60)
    sealed = [env.seal(f"m{i}", context=CTX, reuse_key=True) for i in range(20)]
    assert calls["wrap"] == 1 and len({s["dek"] for s in sealed}) == 1
    assert len({s["iv"] for s in sealed}) == 20
    cold = Envelope(Counting(), dek_cache_seconds=60)
    assert [cold.open_text(s, context=CTX) for s in sealed] == [f"m{i}" for i in range(20)]
    assert calls["unwrap"] == 1
    env.seal("own", context=CTX)  # the default: a key of its own
    assert calls["wrap"] == 2


def test_local_keyring_serialises_and_rejects_garbage(kms):
    kms.rotate()
    copy = LocalKms.from_json(kms.to_json())
    version, wrapped = kms.wrap(os.urandom(32))
    assert copy.unwrap(version, wrapped) and copy.primary_version() == "local-2"
    with pytest.raises(KmsError):
        copy.unwrap(version, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    for bad in ("", "{}", '{"primary": "x", "keys": {}}', '{"primary": "a", "keys": {"a": "AAAA"}}'):
        with pytest.raises(ValueError):
            LocalKms.from_json(bad)


def test_build_kms_by_environment(tmp_path):
    with pytest.raises(RuntimeError):
        sar.build_kms(sar.KmsSettings(), env="prod")
    assert isinstance(sar.build_kms(sar.KmsSettings(), env="test"), LocalKms)
    path = tmp_path / "keys.json"
    first = sar.build_kms(sar.KmsSettings(local_keys_file=str(path)), env="local")
    again = sar.build_kms(sar.KmsSettings(local_keys_file=str(path)), env="local")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    version, wrapped = first.wrap(b"k" * 32)
    assert again.unwrap(version, wrapped) == b"k" * 32  # the generated file is reused
    given = LocalKms.generate()
    from_setting = sar.build_kms(sar.KmsSettings(local_keys=given.to_json()), env="local")
    assert from_setting.unwrap(*given.wrap(b"z" * 32)) == b"z" * 32
    assert given.to_json() not in repr(sar.KmsSettings(local_keys=given.to_json()))


# --- Cloud KMS adapter against a loopback fake KeyManagementService (gRPC) -------------------

KEY = "projects/demo-p/locations/europe-west1/keyRings/payloom/cryptoKeys/secrets"


class FakeKms:
    """Encrypt/Decrypt/GetCryptoKey of one symmetric key with versions, like Cloud KMS: the
    ciphertext names its version, Decrypt takes the CryptoKey name."""

    def __init__(self):
        from google.cloud import kms_v1
        self.kms_v1 = kms_v1
        self.keys = {1: os.urandom(32)}
        self.primary = 1
        self.requests: list[tuple[str, object]] = []
        self.unavailable = False
        self.corrupt_response = False

    def _version(self, n):
        return f"{KEY}/cryptoKeyVersions/{n}"

    def encrypt(self, request, context):
        self.requests.append(("encrypt", request))
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        if request.name != KEY:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such key")
        verified = request.plaintext_crc32c == google_crc32c.value(request.plaintext)
        nonce = os.urandom(12)
        ct = bytes([self.primary]) + nonce + AESGCM(self.keys[self.primary]).encrypt(
            nonce, request.plaintext, None)
        crc = google_crc32c.value(ct) ^ (1 if self.corrupt_response else 0)
        return self.kms_v1.EncryptResponse(name=self._version(self.primary), ciphertext=ct,
                                           ciphertext_crc32c=crc, verified_plaintext_crc32c=verified)

    def decrypt(self, request, context):
        self.requests.append(("decrypt", request))
        if request.name != KEY:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "decrypt takes the CryptoKey name")
        if request.ciphertext_crc32c != google_crc32c.value(request.ciphertext):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "checksum")
        ct = request.ciphertext
        try:
            plain = AESGCM(self.keys[ct[0]]).decrypt(ct[1:13], ct[13:], None)
        except Exception:  # noqa: BLE001
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Decryption failed")
        return self.kms_v1.DecryptResponse(plaintext=plain,
                                           plaintext_crc32c=google_crc32c.value(plain))

    def get_crypto_key(self, request, context):
        self.requests.append(("get", request))
        return self.kms_v1.CryptoKey(name=KEY, primary=self.kms_v1.CryptoKeyVersion(
            name=self._version(self.primary)))

    def rotate(self):
        self.primary += 1
        self.keys[self.primary] = os.urandom(32)


@pytest.fixture
def cloud_kms():
    from google.cloud import kms_v1
    from google.cloud.kms_v1.services.key_management_service.transports import (
        KeyManagementServiceGrpcTransport)

    fake = FakeKms()

    def handler(fn, req, resp):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.deserialize, response_serializer=resp.serialize)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "google.cloud.kms.v1.KeyManagementService", {
            "Encrypt": handler(fake.encrypt, kms_v1.EncryptRequest, kms_v1.EncryptResponse),
            "Decrypt": handler(fake.decrypt, kms_v1.DecryptRequest, kms_v1.DecryptResponse),
            "GetCryptoKey": handler(fake.get_crypto_key, kms_v1.GetCryptoKeyRequest,
                                    kms_v1.CryptoKey)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = kms_v1.KeyManagementServiceClient(
        transport=KeyManagementServiceGrpcTransport(channel=channel))
    yield fake, CloudKms(KEY, client=client, primary_cache_seconds=0, timeout=0.5)
    channel.close()
    server.stop(0)


def test_cloud_kms_adapter_builds_the_requests_kms_expects(cloud_kms):
    fake, kms = cloud_kms
    env = Envelope(kms, dek_cache_seconds=0)
    sealed = env.seal(SECRET, context=CTX)
    assert sealed["kek"] == f"{KEY}/cryptoKeyVersions/1"
    op, req = fake.requests[-1]
    assert op == "encrypt" and req.name == KEY and len(req.plaintext) == 32
    assert req.plaintext_crc32c == google_crc32c.value(req.plaintext)
    assert env.open_text(sealed, context=CTX) == SECRET
    op, req = fake.requests[-1]
    assert op == "decrypt" and req.name == KEY  # the CryptoKey, not the version
    assert req.ciphertext_crc32c == google_crc32c.value(req.ciphertext)


def test_cloud_kms_rotation_and_rewrap(cloud_kms):
    fake, kms = cloud_kms
    env = Envelope(kms, dek_cache_seconds=0)
    old = env.seal(SECRET, context=CTX)
    assert not env.needs_rewrap(old)
    fake.rotate()
    assert env.needs_rewrap(old) and env.open_text(old, context=CTX) == SECRET
    moved = env.rewrap(old)
    assert moved["kek"].endswith("/cryptoKeyVersions/2") and moved["ct"] == old["ct"]
    assert env.open_text(moved, context=CTX) == SECRET


def test_cloud_kms_failures(cloud_kms):
    fake, kms = cloud_kms
    env = Envelope(kms, dek_cache_seconds=0)
    sealed = env.seal(SECRET, context=CTX)
    with pytest.raises(SecretIntegrityError):  # a version of another key is refused locally
        env.open(dict(sealed, kek=sealed["kek"].replace("secrets", "other")), context=CTX)
    fake.corrupt_response = True
    with pytest.raises(KmsError):
        kms.wrap(os.urandom(32))
    fake.corrupt_response = False
    fake.unavailable = True
    with pytest.raises(KmsUnavailable):
        env.seal(SECRET, context=CTX)
    with pytest.raises(ValueError):
        CloudKms("projects/p/keyRings/r", client=object())


# --- bulk rewrap on Firestore (emulator) -----------------------------------------------------

def test_rewrap_collection_moves_records_and_migrates_plaintext(deps, kms):
    env = Envelope(kms, dek_cache_seconds=0)
    col = deps.db.collection("user_mfa")
    sealed_ids = [f"usr_s{i}" for i in range(5)]
    for uid in sealed_ids:
        col.document(uid).set({"totp_secret": env.seal(SECRET + uid[-1],
                                                       context=sar.context("user_mfa", uid, "totp"))})
    col.document("usr_legacy").set({"totp_secret": SECRET, "pending_secret": None})
    col.document("usr_none").set({"totp_secret": None})
    kms.rotate()
    report = sar.rewrap_collection(deps.db, env, "user_mfa", page_size=2)
    assert (report.scanned, report.rewrapped, report.migrated, report.failed) == (7, 5, 1, 0)
    for uid in sealed_ids + ["usr_legacy"]:
        stored = col.document(uid).get().to_dict()["totp_secret"]
        assert sar.is_sealed(stored) and stored["kek"] == "local-2"
        assert env.reveal(stored, context=sar.context("user_mfa", uid, "totp")).startswith(SECRET)
    again = sar.rewrap_collection(deps.db, env, "user_mfa")
    assert (again.rewrapped, again.migrated) == (0, 0)


def test_rewrap_yields_to_a_concurrent_writer(deps, kms):
    env = Envelope(kms, dek_cache_seconds=0)
    ref = deps.db.collection("user_mfa").document("usr_busy")
    ctx = sar.context("user_mfa", "usr_busy", "totp")
    ref.set({"totp_secret": env.seal("old", context=ctx)})
    kms.rotate()
    seen = threading.Event()
    real_rewrap = env.rewrap

    def rewrap_while_someone_writes(sealed):
        out = real_rewrap(sealed)
        if not seen.is_set():
            seen.set()
            ref.set({"totp_secret": env.seal("new", context=ctx)})  # lands between read and write
        return out

    env.rewrap = rewrap_while_someone_writes
    report = sar.rewrap_collection(deps.db, env, "user_mfa")
    assert report.skipped_concurrent == 1 and report.rewrapped == 0
    assert env.open_text(ref.get().to_dict()["totp_secret"], context=ctx) == "new"


# --- the first user: TOTP seeds (shared/identity/factors/mfa.py) -------------------------------------

def test_totp_seeds_are_sealed_and_legacy_plaintext_still_verifies(deps, kms):
    import pyotp

    from shared.identity.factors import mfa
    from shared.identity.users import directory
    from shared.platform.uow import run_unit  # identity services run in a unit of work
    deps.extras["platform.kms"] = kms
    db = deps.db
    directory.user_ref(db, "usr_totp").set({"id": "usr_totp", "email": "t@example.com"})
    enrol = run_unit(deps, lambda uow: mfa.begin_totp(uow, "usr_totp"))
    stored = db.collection("user_mfa").document("usr_totp").get().to_dict()
    assert sar.is_sealed(stored["pending_secret"]) and enrol.secret not in json.dumps(stored, default=str)
    run_unit(deps, lambda uow: mfa.confirm_totp(uow, "usr_totp", pyotp.TOTP(enrol.secret).now()))
    stored = db.collection("user_mfa").document("usr_totp").get().to_dict()
    assert sar.is_sealed(stored["totp_secret"]) and stored["pending_secret"] is None
    assert enrol.secret not in json.dumps(stored, default=str)
    # the sealed seed copied onto another user's record does not verify there
    directory.user_ref(db, "usr_copy").set({"id": "usr_copy"})
    db.collection("user_mfa").document("usr_copy").set({"user_id": "usr_copy",
                                                         "totp_secret": stored["totp_secret"]})
    with pytest.raises(SecretIntegrityError):
        run_unit(deps, lambda uow: mfa.regenerate_backup_codes(uow, "usr_copy", "000000"))

    # a record written before sealing existed (plaintext) still verifies, and the job seals it
    legacy = pyotp.random_base32()
    directory.user_ref(db, "usr_old").set({"id": "usr_old"})
    db.collection("user_mfa").document("usr_old").set({"user_id": "usr_old", "totp_secret": legacy,
                                                        "backup_codes": []})
    out = run_unit(deps, lambda uow: mfa.regenerate_backup_codes(uow, "usr_old", pyotp.TOTP(legacy).now()))
    assert out.totp_enabled is True
    report = sar.rewrap_collection(db, sar.envelope(deps), "user_mfa")
    assert report.migrated == 1
    sealed = db.collection("user_mfa").document("usr_old").get().to_dict()["totp_secret"]
    assert sar.is_sealed(sealed)
    assert sar.envelope(deps).reveal(sealed, context=sar.context("user_mfa", "usr_old", "totp")) == legacy
