"""Fixtures for invoices and payment links: the merchants, payers and API keys of the payments
tests (tests/payments/conftest.py), the two functions' test clients, and event delivery (the
events a commit wrote, handed to the ``invoices_events`` consumer as Pub/Sub would)."""
from __future__ import annotations

import pytest

from shared.platform.outbox import COLLECTION as EVENTS
from shared.platform.outbox import Event
from tests.payments.conftest import api_key, make_merchant, merchant, payer, payments  # noqa: F401

INVOICES, LINKS = "/v1/invoices", "/v1/payment_links"


@pytest.fixture
def invoices_client(function_client):
    return function_client("invoices")


@pytest.fixture
def links_client(function_client):
    return function_client("payment_links")


def events_of(deps, *types: str) -> list[Event]:
    """Every event of these types written so far, oldest first."""
    docs = [s.to_dict() for s in deps.db.collection(EVENTS).stream()]
    docs = sorted((d for d in docs if not types or d["type"] in types),
                  key=lambda d: (d["created_at"], d["id"]))
    return [Event(**{k: d[k] for k in ("id", "type", "created", "tenant", "livemode", "data")})
            for d in docs]


@pytest.fixture
def deliver(deps):
    """Deliver every payment_intent.* event (once each, in order) to the invoices consumer;
    returns how many it processed."""
    from shared.invoices.http import consume
    seen: set[str] = set()

    def run() -> int:
        n = 0
        for event in events_of(deps, *consume.handlers):
            if event.id in seen:
                continue
            seen.add(event.id)
            n += consume.handle(deps, event)
        return n
    return run
