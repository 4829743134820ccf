"""Idempotency store against the Firestore emulator."""
import concurrent.futures
import datetime as dt

import pytest

from shared.platform.errors import IdempotencyError
from shared.platform.idempotency import Claim, IdempotencyStore, StoredResponse

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def test_first_claim_then_replay_identical(deps):
    store = IdempotencyStore(deps.db)
    claim = store.claim("user:t:u", "k1", "fp", NOW)
    assert isinstance(claim, Claim)
    store.complete(claim, 201, b'{"id":"x"}', "application/json")
    replay = store.claim("user:t:u", "k1", "fp", NOW + dt.timedelta(hours=23))
    assert replay == StoredResponse(201, b'{"id":"x"}', "application/json")


def test_same_key_different_parameters_conflicts(deps):
    store = IdempotencyStore(deps.db)
    store.complete(store.claim("s", "k", "fp1", NOW), 200, b"{}", "application/json")
    with pytest.raises(IdempotencyError) as exc:
        store.claim("s", "k", "fp2", NOW)
    assert exc.value.code == "idempotency_key_reused"


def test_in_progress_duplicate_conflicts_until_lease_expires(deps):
    store = IdempotencyStore(deps.db, lock_seconds=30)
    assert isinstance(store.claim("s", "k", "fp", NOW), Claim)
    with pytest.raises(IdempotencyError) as exc:
        store.claim("s", "k", "fp", NOW + dt.timedelta(seconds=5))
    assert exc.value.code == "idempotency_key_in_use"
    # The first request died: after the lease a retry may run.
    assert isinstance(store.claim("s", "k", "fp", NOW + dt.timedelta(seconds=31)), Claim)


def test_keys_are_scoped_per_principal(deps):
    store = IdempotencyStore(deps.db)
    store.complete(store.claim("tenant-a", "k", "fp-a", NOW), 200, b"a", "application/json")
    assert isinstance(store.claim("tenant-b", "k", "fp-b", NOW), Claim)


def test_expired_record_is_claimed_afresh(deps):
    store = IdempotencyStore(deps.db, ttl_seconds=3600)
    store.complete(store.claim("s", "k", "fp1", NOW), 200, b"old", "application/json")
    later = NOW + dt.timedelta(hours=2)
    assert isinstance(store.claim("s", "k", "fp2", later), Claim)


def test_concurrent_claims_only_one_wins(deps):
    store = IdempotencyStore(deps.db)

    def attempt(_):
        try:
            return store.claim("s", "race", "fp", NOW)
        except IdempotencyError as exc:
            return exc
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sum(isinstance(r, Claim) for r in results) == 1
    assert all(isinstance(r, IdempotencyError) for r in results if not isinstance(r, Claim))
