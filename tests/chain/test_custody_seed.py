"""The custodial seed sealed through the KMS port in Firestore (emulator): provisioned once,
unsealed only by the right key and document, restorable from its mnemonic backup."""
from __future__ import annotations

import pytest

from shared.adapters.kms import LocalKms
from shared.chain import hd
from shared.platform.errors import InvalidRequest
from shared.platform.secrets_at_rest import SecretIntegrityError


@pytest.fixture
def kms(deps):
    kms = LocalKms.generate()
    deps.extras["platform.kms"] = kms
    return kms


def test_provisioning_is_once_and_the_stored_form_holds_no_key_material(deps, kms):
    seed, created = hd.provision_custodial_seed(deps, livemode=False)
    assert created
    again, created_again = hd.provision_custodial_seed(deps, livemode=False)   # a retried bootstrap
    assert not created_again and again.entropy == seed.entropy
    other, _ = hd.provision_custodial_seed(deps, livemode=True)                  # modes are apart
    assert other.entropy != seed.entropy
    doc = deps.db.collection(hd.CUSTODY_COLLECTION).document("hd_seed_test").get().to_dict()
    stored = repr(doc)
    assert seed.entropy.hex() not in stored and seed.mnemonic().split()[0] + " " not in stored
    assert doc["xpub"] == seed.tree().xpub() and doc["entropy"]["alg"] == "A256GCM"
    assert hd.custodial_xpub(deps) == doc["xpub"]


def test_load_unseals_the_same_tree_and_watch_only_agrees(deps, kms):
    seed, _ = hd.provision_custodial_seed(deps)
    loaded = hd.load_custodial_seed(deps)
    assert loaded.entropy == seed.entropy
    xpub = hd.custodial_xpub(deps)
    for i in (0, 1, 99):
        assert hd.derive_address(xpub, i) == hd.custodial_address(loaded.seed(), i)


def test_restoring_the_backup_gives_the_same_addresses_and_is_refused_over_a_live_seed(deps, kms):
    seed, _ = hd.provision_custodial_seed(deps)
    backup = seed.mnemonic()
    addresses = [hd.custodial_address(seed.seed(), i) for i in range(5)]
    # disaster: the Firestore document is gone; restore the paper backup into it
    deps.db.collection(hd.CUSTODY_COLLECTION).document("hd_seed_test").delete()
    _, created = hd.provision_custodial_seed(deps, seed=hd.parse_mnemonic(backup))
    assert created
    assert [hd.custodial_address(hd.load_custodial_seed(deps).seed(), i) for i in range(5)] == addresses
    # a restore over an existing seed never replaces it
    stranger, created = hd.provision_custodial_seed(deps, seed=hd.CustodialSeed.generate())
    assert not created and stranger.entropy == seed.entropy


def test_missing_wrong_kek_or_swapped_blob_fail_loudly(deps, kms):
    with pytest.raises(hd.CustodySeedMissing):
        hd.load_custodial_seed(deps)
    with pytest.raises(hd.CustodySeedMissing):
        hd.custodial_xpub(deps, livemode=True)
    hd.provision_custodial_seed(deps, livemode=False)
    hd.provision_custodial_seed(deps, livemode=True)
    coll = deps.db.collection(hd.CUSTODY_COLLECTION)
    live = coll.document("hd_seed_live").get().to_dict()
    coll.document("hd_seed_test").update({"entropy": live["entropy"]})   # copied across modes
    with pytest.raises(SecretIntegrityError):
        hd.load_custodial_seed(deps, livemode=False)
    coll.document("hd_seed_test").update({"entropy": live["entropy"] | {"ct": live["entropy"]["ct"][:-4] + "AAA="}})
    with pytest.raises(SecretIntegrityError):
        hd.load_custodial_seed(deps, livemode=False)
    deps.extras["platform.kms"] = LocalKms.generate()                       # another KEK
    deps._cache.clear()                                                      # drop the cached envelope
    with pytest.raises((SecretIntegrityError, KeyError, ValueError)):
        hd.load_custodial_seed(deps, livemode=True)


def test_restoring_the_backup_into_a_fresh_project_gives_the_same_hot_wallet(deps, kms, emulators):
    """Disaster recovery as issue 9 words it: the whole project is lost (documents AND the KMS
    key); the custodians' 24 words, restored through ``provision_custodial_seed(seed=...)``
    into a new project with a new KEK, derive the same deposit addresses and the same hot
    wallet (key included), and so does any BIP-44 wallet (account 1 = the hot wallet)."""
    from shared.platform.clock import SystemClock
    from shared.platform.deps import Deps
    from shared.refunds import hot_wallet
    from tests.conftest import make_settings

    seed, _ = hd.provision_custodial_seed(deps, livemode=False)
    backup = seed.mnemonic()
    hot = hot_wallet.hot_key(deps, livemode=False)
    deposits = [hd.custodial_address(seed.seed(), i) for i in (0, 1, 7)]

    fresh = Deps(settings=make_settings(emulators, f"demo-restore{seed.entropy.hex()[:8]}"),
                 clock=SystemClock())
    fresh.extras["platform.kms"] = LocalKms.generate()                       # a new KEK too
    with pytest.raises(hd.CustodySeedMissing):
        hot_wallet.hot_address(fresh, livemode=False)
    _, created = hd.provision_custodial_seed(fresh, livemode=False, seed=hd.parse_mnemonic(backup))
    assert created
    restored = hot_wallet.hot_key(fresh, livemode=False)
    assert restored.address == hot.address and restored.key == hot.key
    assert hd.custodial_xpub(fresh) == hd.custodial_xpub(deps)
    loaded = hd.load_custodial_seed(fresh)
    assert [hd.custodial_address(loaded.seed(), i) for i in (0, 1, 7)] == deposits
    wallet = hd.restore_from_mnemonic(backup, account=hot_wallet.HOT_ACCOUNT)
    assert wallet.address(hot_wallet.HOT_INDEX) == hot.address
    # a typo in the backup is refused before anything is written
    words = backup.split()
    words[3] = "zzzz"
    with pytest.raises(InvalidRequest) as exc:
        hd.parse_mnemonic(" ".join(words))
    assert exc.value.code == "invalid_mnemonic"
