"""Sealing and opening endpoints' signing secrets: the only webhooks code that needs KMS.

Why a module of its own: importing it loads the envelope (and a KMS client), so it is imported
only where a secret is sealed (the API: create, rotate) or opened (an attempt signing a
delivery). Those entry points name it in their ``main.py`` and hold the KMS role; the fan-out and
the sweeper read endpoints without ever touching a secret, and hold no KMS role
(tests/infra/test_kms.py checks both ways). Secrets are sealed with the context
``webhook_endpoints/<endpoint id>#secret:<secret id>``; the weekly rewrap covers them
(``secrets[].sealed``, registered in ``shared.platform.secrets_at_rest``).
"""
from __future__ import annotations

from typing import Any

from shared.platform import secrets_at_rest
from shared.platform.ids import new_id
from shared.webhooks import signing

COLLECTION = "webhook_endpoints"


def secret_context(endpoint_id: str, secret_id: str) -> str:
    return secrets_at_rest.context(COLLECTION, endpoint_id, f"secret:{secret_id}")


def open_all(deps, endpoint_id: str, entries: list[dict[str, Any]]) -> list[str]:
    """The plaintext ``whsec_…`` of each entry, in order. Opening costs a KMS unwrap only on a
    cold data-key cache (the envelope keeps data keys 5 minutes)."""
    env = secrets_at_rest.envelope(deps)
    return [env.open_text(s["sealed"], context=secret_context(endpoint_id, s["id"])) for s in entries]


def new_secret_entry(uow, endpoint_id: str) -> tuple[dict[str, Any], str]:
    """A fresh secret, sealed: (the entry to store, the plaintext shown once)."""
    secret, secret_id = signing.new_secret(), new_id("whs")
    sealed = secrets_at_rest.envelope(uow.deps).seal(secret, context=secret_context(endpoint_id, secret_id))
    return {"id": secret_id, "sealed": sealed, "created_at": uow.now, "expires_at": None}, secret
