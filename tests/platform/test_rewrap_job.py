"""The scheduled rewrap (functions/secrets_rewrap, shared/platform/rewrap_job.py, ADR 0004).

Through functions-framework's client with the real Firestore emulator: records sealed under an
old KEK version are moved to the primary one by one call, a second call changes nothing, and
records stay readable before, during and after (rotation without downtime).
"""
from __future__ import annotations

import pytest

from shared.adapters.kms import KmsUnavailable, LocalKms
from shared.platform import secrets_at_rest as sar

SEEDS = {f"usr_r{i}": f"JBSWY3DPEHPK3PX{i}" for i in range(3)}


def ctx(uid: str) -> str:
    return sar.context("user_mfa", uid, "totp")


@pytest.fixture
def kms(deps):
    kms = LocalKms.generate()
    deps.extras["platform.kms"] = kms
    return kms


@pytest.fixture
def client(function_client):
    return function_client("secrets_rewrap")


def _seed(deps):
    env = sar.envelope(deps)
    col = deps.db.collection("user_mfa")
    for uid, seed in SEEDS.items():
        col.document(uid).set({"user_id": uid, "totp_secret": env.seal(seed, context=ctx(uid)),
                               "pending_secret": None})
    # written before sealing existed: the job seals it
    col.document("usr_legacy").set({"user_id": "usr_legacy", "totp_secret": "LEGACYSEEDLEGACY"})
    col.document("usr_nomfa").set({"user_id": "usr_nomfa", "totp_secret": None})
    return col


def test_one_run_moves_every_record_to_the_primary_version_and_a_second_changes_nothing(
        deps, kms, client, service_headers):
    col = _seed(deps)
    env = sar.envelope(deps)
    before = {uid: col.document(uid).get().to_dict()["totp_secret"] for uid in SEEDS}
    assert {s["kek"] for s in before.values()} == {"local-1"}

    assert kms.rotate() == "local-2"
    for uid, seed in SEEDS.items():  # still readable after the rotation, before any rewrap
        assert env.open_text(before[uid], context=ctx(uid)) == seed

    # Cloud Scheduler posts exactly this body (terraform/modules/scheduler_job)
    r = client.post("/", data="{}", headers={**service_headers, "Content-Type": "application/json"})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["object"] == "secrets_rewrap" and body["primary_version"] == "local-2"
    assert (body["rewrapped"], body["migrated"], body["failed"]) == (3, 1, 0)
    assert body["collections"]["user_mfa"] == {"scanned": 5, "rewrapped": 3, "migrated": 1,
                                               "skipped_concurrent": 0, "failed": 0}

    after = {}
    for uid, seed in SEEDS.items():
        snap = col.document(uid).get()
        stored = snap.to_dict()["totp_secret"]
        after[uid] = snap.update_time
        assert stored["kek"] == "local-2" and stored["dek"] != before[uid]["dek"]
        assert (stored["iv"], stored["ct"]) == (before[uid]["iv"], before[uid]["ct"])  # no re-encryption
        assert env.open_text(stored, context=ctx(uid)) == seed
    legacy = col.document("usr_legacy").get()
    assert sar.is_sealed(legacy.get("totp_secret")) and legacy.get("totp_secret")["kek"] == "local-2"
    assert env.reveal(legacy.get("totp_secret"), context=ctx("usr_legacy")) == "LEGACYSEEDLEGACY"
    after["usr_legacy"] = legacy.update_time

    # the old version can now go: every record opens without it
    kms.destroy("local-1")
    fresh = sar.Envelope(kms, dek_cache_seconds=0)  # no cached data keys from before
    for uid, seed in SEEDS.items():
        assert fresh.open_text(col.document(uid).get().get("totp_secret"), context=ctx(uid)) == seed

    again = client.post("/", headers=service_headers)
    assert again.status_code == 200
    assert (again.get_json()["rewrapped"], again.get_json()["migrated"]) == (0, 0)
    assert again.get_json()["collections"]["user_mfa"]["scanned"] == 5
    for uid, when in after.items():
        assert col.document(uid).get().update_time == when, f"{uid} was written again"


def test_a_kms_outage_is_a_retryable_503_and_changes_nothing(deps, kms, client, service_headers):
    col = _seed(deps)
    kms.rotate()
    snapshot = {d.id: (d.update_time, d.to_dict()) for d in col.stream()}

    class Down:
        def primary_version(self):
            return kms.primary_version()

        def wrap(self, dek):
            raise KmsUnavailable("Cloud KMS encrypt unavailable: ServiceUnavailable")

        def unwrap(self, version, wrapped):
            raise KmsUnavailable("Cloud KMS decrypt unavailable: ServiceUnavailable")

    deps.extras["platform.envelope"] = sar.Envelope(Down(), dek_cache_seconds=0)
    r = client.post("/", headers=service_headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "60"
    assert r.get_json()["error"]["code"] == "kms_unavailable"
    assert set(r.get_json()["error"]) == {"type", "code", "message", "param"}
    assert {d.id: (d.update_time, d.to_dict()) for d in col.stream()} == snapshot

    deps.extras.pop("platform.envelope")  # KMS is back: the next run catches up
    r = client.post("/", headers=service_headers)
    assert r.status_code == 200 and r.get_json()["rewrapped"] == 3


def test_a_record_that_does_not_open_is_reported_and_the_rest_still_move(deps, kms, client, service_headers):
    col = _seed(deps)
    kms.rotate()
    broken = col.document("usr_r0").get().to_dict()["totp_secret"]
    col.document("usr_r0").update({"totp_secret": {**broken, "kek": "local-9"}})  # unknown version
    r = client.post("/", headers=service_headers)
    assert r.status_code == 200
    assert (r.get_json()["rewrapped"], r.get_json()["failed"]) == (2, 1)
    assert col.document("usr_r0").get().to_dict()["totp_secret"]["kek"] == "local-9"  # left alone


def test_only_service_callers_and_only_post_with_an_empty_body(deps, kms, client, service_headers):
    _seed(deps)
    kms.rotate()
    for headers in ({}, {"Authorization": "Bearer guess"}):
        r = client.post("/", headers=headers)
        assert r.status_code == 401 and set(r.get_json()) == {"error"}
    r = client.get("/", headers=service_headers)
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"
    r = client.post("/", json={"job": "secrets-rewrap"}, headers=service_headers)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "unexpected_body"
    r = client.post("/", data="[" * 5000, headers={**service_headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.get_json()) == {"error"}
    # none of the refused calls rewrapped anything
    stored = deps.db.collection("user_mfa").document("usr_r1").get().to_dict()["totp_secret"]
    assert stored["kek"] == "local-1"


def test_sealed_values_inside_a_list_of_maps_are_rewrapped_in_place(deps, kms):
    """Webhook endpoints keep their signing secrets as ``secrets[].sealed`` (one per rotation)."""
    sar.register_sealed_field("rewrap_list_test", "secrets[].sealed", "secret")
    env = sar.envelope(deps)
    col = deps.db.collection("rewrap_list_test")
    items = [{"id": f"s{i}", "sealed": env.seal(f"whsec_{i}", context=f"c{i}")} for i in range(2)]
    col.document("we_1").set({"secrets": items + [{"id": "plain", "sealed": None}]})
    kms.rotate()
    report = sar.rewrap_collection(deps.db, env, "rewrap_list_test")
    assert report.rewrapped == 1 and report.failed == 0
    stored = col.document("we_1").get().to_dict()["secrets"]
    assert [s["sealed"]["kek"] for s in stored[:2]] == ["local-2", "local-2"]
    assert stored[2] == {"id": "plain", "sealed": None}
    assert [env.open_text(s["sealed"], context=f"c{i}") for i, s in enumerate(stored[:2])] == \
        ["whsec_0", "whsec_1"]
    assert sar.rewrap_collection(deps.db, env, "rewrap_list_test").rewrapped == 0


def test_the_rewrap_function_knows_every_sealed_collection_without_importing_capabilities():
    """The deployed rewrap function imports only its own modules: a field registered by some
    capability's module at import time would never be rewrapped there."""
    import subprocess
    import sys

    from shared.platform.manifest import REPO_ROOT
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
             "from shared.platform.secrets_at_rest import SEALED_FIELDS; "
             "print(sorted({f.collection + '.' + f.field for f in SEALED_FIELDS}))")
    out = subprocess.run([sys.executable, "-c", probe,
                          str(REPO_ROOT / "functions" / "secrets_rewrap" / "main.py")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "PAYLOOM_ENV": "test"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "webhook_endpoints.secrets[].sealed" in out.stdout
    assert "user_mfa.totp_secret" in out.stdout


def test_the_custodial_seed_is_rewrapped_and_still_derives_the_same_addresses(
        deps, kms, client, service_headers):
    """The custodial HD seed is the most valuable sealed value: after a key rotation the job
    moves it to the new version, and once the old version is destroyed the same tree loads."""
    from shared.chain import hd
    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    assert kms.rotate() == "local-2"
    r = client.post("/", data="{}", headers={**service_headers, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.get_json()["collections"]["chain_custody"]["rewrapped"] == 1
    stored = deps.db.collection("chain_custody").document("hd_seed_test").get().to_dict()["entropy"]
    assert stored["kek"] == "local-2"
    kms.destroy("local-1")
    deps.extras["platform.envelope"] = sar.Envelope(kms, dek_cache_seconds=0)
    assert hd.load_custodial_seed(deps, livemode=False).tree().address(7) == seed.tree().address(7)
