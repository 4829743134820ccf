"""The shared price snapshot: process memory, one Firestore document, one feed call per refresh.

One feed call prices every coin in every vs currency, so the unit cached is the whole snapshot
(``rates/{source}``), not a pair: a refresh is ONE provider call and ONE document write, and a
cross rate's two legs always come from the same fetch. Costs:

* memory snapshot younger than ``rates_refresh_seconds``: nothing (no round trip, no HTTP);
* otherwise one document read; a fresh document (another instance refreshed) is adopted;
* a due document: the instance that wins a lease (a write conditional on the document's
  update time, no transaction) calls the feed and writes the snapshot; the others keep serving
  what they have meanwhile, so a deployment makes about one feed call per refresh interval
  however many instances run (CoinGecko's Demo plan allows 30 calls a minute).
* a failed call (429 with its Retry-After, 5xx, timeout) writes ``backoff_until`` so no instance
  asks again before then; the last snapshot keeps being served until the staleness limit
  (``service`` refuses older prices) — a failing feed degrades to 503, never to a stale rate.

Within a process one thread refreshes at a time (a lock); the others wait for its result.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.platform.deps import Deps
from shared.rates.config import price_feed, rates_settings
from shared.rates.ports import FeedRateLimited, FeedUnavailable
from shared.rates.pricing import VS_CURRENCIES, Snapshot

log = logging.getLogger(__name__)
COLLECTION = "rates"
CACHE_KEY = "rates.cache"


class RatesCache:
    """Per process (per ``Deps``): the last snapshot and when this instance may ask again."""

    def __init__(self) -> None:
        self._snap: Snapshot | None = None
        self._retry_at: dt.datetime | None = None
        self._lock = threading.Lock()

    def current(self, deps: Deps) -> Snapshot | None:
        """The freshest snapshot this instance can have now (refreshing it when due), or None
        when there has never been one (the feed has not answered yet)."""
        s = rates_settings(deps)
        refresh = dt.timedelta(seconds=s.rates_refresh_seconds)
        snap = self._snap
        if snap is not None and deps.clock.now() - snap.fetched_at < refresh:
            return snap
        with self._lock:  # single flight: one refresh per instance at a time
            now = deps.clock.now()
            snap = self._snap
            if snap is not None and now - snap.fetched_at < refresh:
                return snap   # another thread refreshed while we waited
            if self._retry_at is not None and now < self._retry_at:
                return snap
            return self._refresh(deps, now, refresh)

    def _refresh(self, deps: Deps, now: dt.datetime, refresh: dt.timedelta) -> Snapshot | None:
        s = rates_settings(deps)
        feed = price_feed(deps)
        ref = deps.db.collection(COLLECTION).document(feed.name)
        doc = ref.get()
        data = doc.to_dict() or {}
        stored = Snapshot.from_doc(data) if doc.exists else None
        snap = self._snap
        if stored is not None and (snap is None or stored.fetched_at > snap.fetched_at):
            snap = self._snap = stored
        if snap is not None and now - snap.fetched_at < refresh:
            return snap
        backoff = data.get("backoff_until")
        if backoff is not None and now < backoff:
            self._retry_at = backoff
            return snap
        lease = data.get("lease_until")
        if (lease is not None and now < lease) or not self._claim(
                deps, ref, doc, now + dt.timedelta(seconds=s.rates_lease_seconds)):
            # Another instance is refreshing: serve what we have meanwhile, or, with nothing
            # at all (the very first fetch), wait a moment for its snapshot.
            return snap if snap is not None else self._await_winner(ref)
        ids = sorted(set(s.rates_coin_ids.values()))
        try:
            fetched = feed.fetch(ids, VS_CURRENCIES)
        except FeedRateLimited as exc:
            return self._failed(ref, now, exc.retry_after, "rate_limited", snap)
        except FeedUnavailable as exc:
            return self._failed(ref, now, s.rates_failure_backoff_seconds, str(exc), snap)
        fresh = Snapshot(fetched.source, now, fetched.prices, fetched.updated_at).merged_over(snap)
        ref.set(fresh.to_doc())   # replaces the lease and any backoff too
        self._snap, self._retry_at = fresh, None
        return fresh

    def _await_winner(self, ref, wait_seconds: float = 3.0, every: float = 0.2) -> Snapshot | None:
        """Poll the document (reads only) until the lease holder writes its first snapshot."""
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            time.sleep(every)
            doc = ref.get()
            stored = Snapshot.from_doc(doc.to_dict() or {}) if doc.exists else None
            if stored is not None:
                self._snap = stored
                return stored
        return None

    @staticmethod
    def _claim(deps: Deps, ref, doc, until: dt.datetime) -> bool:
        """Take the refresh lease unless another instance changed the document since we read
        it (then it is refreshing or has refreshed): one conditional write."""
        try:
            if doc.exists:
                ref.update({"lease_until": until},
                           option=deps.db.write_option(last_update_time=doc.update_time))
            else:
                ref.create({"lease_until": until})
            return True
        except (gexc.FailedPrecondition, gexc.Conflict, gexc.NotFound):
            return False

    def _failed(self, ref, now: dt.datetime, seconds: float, reason: str,
                snap: Snapshot | None) -> Snapshot | None:
        until = now + dt.timedelta(seconds=seconds)
        log.warning("price feed refresh failed (%s); next attempt after %ss", reason, seconds)
        ref.set({"lease_until": firestore.DELETE_FIELD, "backoff_until": until,
                 "last_error": reason[:200]}, merge=True)
        self._retry_at = until
        return snap


def cache(deps: Deps) -> RatesCache:
    return deps.get(CACHE_KEY, RatesCache)
