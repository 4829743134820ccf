"""Matching: which SIM takes a message, decided inside the unit that assigns it (ADR 0044).

On top of the availability index (``availability.candidates``, one indexed query, best score
first, a provider's second SIM after every provider's first):

1. **Carrier first.** The recipient's carrier; then any carrier (the fallback: an off-net SMS
   costs the provider more, so it is only used when no same-carrier SIM can take it).
2. **Not again.** SIMs and providers that already failed or timed out on this message are
   excluded; only when that leaves nothing is a provider allowed again on another of its SIMs.
3. **Spread.** One of the ``top_k`` best is drawn with probability proportional to its score
   (high priority: the best two; bulk: twice ``top_k``), so concurrent messages do not all
   queue on the single best phone; the others follow in order as fallbacks.
4. **Priority.** Bulk messages skip SIMs with fewer than ``bulk_min_remaining_day`` messages
   left today, keeping the end of a SIM's day for normal and high priority.
5. **Never over a quota.** ``availability.reserve`` takes the minute/hour/day quota and an
   in-flight slot in the same unit that writes the assignment; a SIM whose reservation fails
   (a concurrent unit took its last unit) is skipped, and a concurrent commit on the same SIM
   makes this unit run again with fresh counts.

Cost: with the instance cache (``candidates_cache_seconds``, 1 s by default) no query at all
in the common case: candidates come from memory and the first ``reserve`` reads them in one
batch. Without it, or when every cached candidate of a pass fails (its SIM filled up or went
away since the cache was read), one indexed query per pass, whose reads are the versions the
reservation's write is guarded by (no second read). A SIM is therefore never missed because
of the cache, only a choice among live SIMs can be up to one period old.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

from shared.platform.uow import UnitOfWork
from shared.relay import availability
from shared.relay.availability import Candidate
from shared.relay.dispatch_settings import DispatchSettings

LIMIT = 8


def passes(message: dict[str, Any]) -> list[tuple[str | None, frozenset[str]]]:
    """(carrier or None for any, providers excluded), in the order they are tried."""
    excluded = frozenset(message.get("excluded_providers") or ())
    out = [(message["carrier"], excluded), (None, excluded)]
    if excluded:
        out += [(message["carrier"], frozenset()), (None, frozenset())]
    return out


def eligible(c: Candidate, priority: str, s: DispatchSettings) -> bool:
    return priority != "bulk" or c.remaining_day >= s.bulk_min_remaining_day


def order(found: Sequence[Candidate], priority: str, s: DispatchSettings,
          rng: random.Random | None = None) -> list[Candidate]:
    """A weighted draw among the best ``k`` first, then the rest in their order."""
    rng = rng or random
    k = {"high": min(2, s.top_k), "bulk": 2 * s.top_k}.get(priority, s.top_k)
    head, tail = list(found[:k]), list(found[k:])
    if len(head) > 1:
        weights = [max(c.score, 1e-6) for c in head]
        first = rng.choices(range(len(head)), weights=weights)[0]
        head.insert(0, head.pop(first))
    return head + tail


def pick(uow: UnitOfWork, message: dict[str, Any], job_id: str, s: DispatchSettings,
         rng: random.Random | None = None) -> Candidate | None:
    """Reserve a SIM for ``job_id`` and return it, or None when no SIM can take the message."""
    now = uow.now
    tried: set[str] = set(message.get("excluded_sims") or ())
    for carrier, excluded_providers in passes(message):
        for fresh in (False, True):   # memory first (when cached), then the index itself
            found = availability.candidates(uow, carrier=carrier, livemode=message["livemode"],
                                            now=now, limit=LIMIT, exclude_sims=frozenset(tried),
                                            exclude_providers=excluded_providers, fresh=fresh)
            for c in order([c for c in found if eligible(c, message["priority"], s)],
                           message["priority"], s, rng):
                tried.add(c.sim_id)
                if availability.reserve(uow, c.sim_id, now=now, job_id=job_id):
                    return c
            if not found.from_cache:
                break
    return None
