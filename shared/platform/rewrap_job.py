"""The scheduled rewrap of secrets at rest (ADR 0004), served by the ``secrets_rewrap`` function.

Why: after KMS rotates the key-encryption key, records stay wrapped by the old version until
something rewraps them; an old version can be disabled only once nothing uses it. This job runs
``secrets_at_rest.rewrap_all`` on a schedule: it rewraps data keys (no secret is decrypted) and
seals legacy plaintext values, one precondition-guarded update per record, so it runs while the
API serves traffic and a second run changes nothing.
"""
from __future__ import annotations

import logging
from typing import Literal

from shared.adapters.kms import KmsUnavailable
from shared.platform import secrets_at_rest
from shared.platform.errors import ServiceUnavailable
from shared.platform.logs import get_logger, log
from shared.platform.models import ResourceModel
from shared.platform.router import SERVICE, Context, Router

_log = get_logger(__name__)


class CollectionRewrap(ResourceModel):
    scanned: int
    rewrapped: int
    migrated: int
    skipped_concurrent: int
    failed: int


class RewrapRun(ResourceModel):
    object: Literal["secrets_rewrap"] = "secrets_rewrap"
    primary_version: str
    rewrapped: int
    migrated: int
    failed: int
    collections: dict[str, CollectionRewrap]


def run(deps) -> RewrapRun:
    """Rewrap every registered sealed field onto the primary KEK version."""
    env = secrets_at_rest.envelope(deps)
    try:
        primary = env.kms.primary_version()
        reports = secrets_at_rest.rewrap_all(deps.db, env)
    except KmsUnavailable:
        raise ServiceUnavailable("KMS is unavailable; the rewrap will run again.",
                                 code="kms_unavailable", headers={"Retry-After": "60"}) from None
    collections = {name: CollectionRewrap(**vars(r)) for name, r in reports.items()}
    result = RewrapRun(primary_version=primary, collections=collections,
                       rewrapped=sum(c.rewrapped for c in collections.values()),
                       migrated=sum(c.migrated for c in collections.values()),
                       failed=sum(c.failed for c in collections.values()))
    log(_log, logging.ERROR if result.failed else logging.INFO, "secrets rewrap finished",
        primary_version=primary, rewrapped=result.rewrapped, migrated=result.migrated,
        failed=result.failed)
    return result


api = Router("secrets_rewrap")


# Not atomic: the job writes record by record, each update guarded by the update_time it read,
# and calls KMS in between. Naturally idempotent, so no Idempotency-Key handling either.
@api.post("/", response=RewrapRun, auth=SERVICE, idempotent=False, atomic=False)
def run_rewrap(ctx: Context):
    """Cloud Scheduler target: move sealed secrets to the primary KMS key version."""
    return run(ctx.deps)
