"""Runs last: every query the suite ran has its composite index in Terraform, and every
collection written with an expiry field has its TTL policy (tests/support/firestore_usage)."""
import pytest

from tests.support import firestore_usage as usage


def test_every_query_that_needs_a_composite_index_has_one():
    if not usage.queries:
        pytest.skip("no query recorded: run with the rest of the suite")
    indexes, ours = usage.declared_indexes(), usage.product_collections()
    missing = sorted({(s.collection, tuple(sorted(s.equality)), s.ordered) for s in usage.queries
                      if s.collection in ours and s.needs_composite() and not usage.covered(s, indexes)})
    assert not missing, f"add these to {usage.INDEXES.name}: {missing}"


# Fields named like expiries that are NOT purge times: a TTL policy there would delete data.
NOT_PURGE_TIMES = {
    ("api_keys", "expires_at"): "a key's validity end; expired keys stay listed and audited",
    ("payment_intents", "expires_at"): "an intent's payment deadline; intents are kept",
}


def test_every_expiring_collection_has_a_ttl_policy():
    if not usage.ttl_writes:
        pytest.skip("no write recorded: run with the rest of the suite")
    declared, ours = usage.declared_ttl(), usage.product_collections()
    with_policy = {c for c, _ in declared}  # one TTL field per collection group
    missing = sorted((c, f) for c, f in usage.ttl_writes
                     if c in ours and c not in with_policy and (c, f) not in NOT_PURGE_TIMES)
    assert not with_policy & {c for c, _ in NOT_PURGE_TIMES}, "a TTL policy would purge live data"
    assert not missing, f"add TTL policies to ttl_fields in {usage.TTL_VARIABLES.name}: {missing}"


def test_the_checker_sees_a_missing_index():
    shape = usage.QueryShape("widgets", frozenset({"tenant"}), (("created_at", "DESCENDING"),))
    assert shape.needs_composite()
    assert not usage.covered(shape, [("widgets", (("created_at", "DESCENDING"),))])
    assert usage.covered(shape, [("widgets", (("tenant", "ASCENDING"), ("created_at", "DESCENDING")))])
    assert not usage.QueryShape("widgets", frozenset({"a", "b"}), ()).needs_composite()
