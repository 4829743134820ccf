"""Typed contracts of the ledger and the wallet (issue 7, item 5): every route declares the model
it returns, and every event they emit is declared in the catalogue with its payload schema.
Pure: reads the source, the routers and the catalogue, no emulator."""
from __future__ import annotations

import ast
import datetime as dt
import pathlib
import re

import pytest

import shared.ledger.http  # noqa: F401  (what the ledger functions load: declares their events)
import shared.wallet.http  # noqa: F401  (likewise for the wallet function)
from shared.ledger import plan
from shared.ledger.resources import AUDIT_FAILED
from shared.platform import catalog
from shared.platform.openapi import build_openapi
from shared.platform.router import ROUTERS
from shared.wallet import topups
from shared.wallet.models import TOPUP_EVENTS

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("shared/ledger", "shared/wallet")
# The event namespaces of these packages ("wallet.*" strings are rate-limit and port names).
EVENT_LITERAL = re.compile(r"^(transfer|topup|ledger|hold)\.[a-z_]+$")


def test_every_ledger_and_wallet_route_declares_its_response_model():
    routes = [(r.name, route) for r in ROUTERS if r.name in ("wallet", "ledger_tasks", "ledger_audit")
              for route in r.routes]
    assert {name for name, _ in routes} == {"wallet", "ledger_tasks", "ledger_audit"}
    # The CSV statement returns a ready text/csv response; everything else is a JSON model.
    untyped = [f"{name} {route.method} {route.path}" for name, route in routes
               if route.response is None and route.path != "/statement.csv"]
    assert untyped == []


def _sources():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).glob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def test_every_emit_names_a_declared_type_or_a_declared_constant():
    seen = 0
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "emit" and node.args):
                continue
            seen += 1
            arg, where = node.args[0], f"{path.relative_to(ROOT)}:{node.lineno}"
            # A type built at run time (f-string, concatenation) cannot be checked: refuse it.
            assert not isinstance(arg, (ast.JoinedStr, ast.BinOp)), where
            if isinstance(arg, ast.Constant):
                assert arg.value in catalog.CATALOG, where
            else:   # ``DECLARED.name``, ``MAP[key].name`` or a variable fed from plan.EVENT_TYPES
                assert (isinstance(arg, ast.Attribute) and arg.attr == "name") or \
                    isinstance(arg, ast.Name), where
    assert seen >= 3   # engine (transfers), audit, top-up webhook


def test_every_event_like_string_in_the_ledger_and_wallet_is_declared():
    found = set()
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    EVENT_LITERAL.match(node.value):
                found.add(node.value)
    assert {"transfer.created", "transfer.posted", "ledger.audit_failed",
            "topup.succeeded"} <= found
    assert sorted(found - set(catalog.CATALOG)) == []


def test_event_maps_cover_every_kind_and_webhook_state():
    assert set(plan.EVENT_TYPES.values()) <= set(catalog.CATALOG)
    assert set(plan.EVENT_TYPES) == {"single", "pending", "post_pending", "void_pending",
                                     "expire_pending"}
    # A webhook can move a top-up to any WEBHOOK_TARGET state: each has its event.
    assert set(topups.WEBHOOK_TARGET.values()) == set(TOPUP_EVENTS)
    assert all(e.name == f"topup.{state}" for state, e in TOPUP_EVENTS.items())


def test_the_audit_event_is_private_and_the_rest_are_published_as_webhooks():
    hooks = build_openapi()["webhooks"]
    assert AUDIT_FAILED.public is False and "ledger.audit_failed" not in hooks
    for name in ("transfer.created", "transfer.posted", "transfer.voided", "transfer.expired",
                 "topup.succeeded", "topup.failed", "topup.canceled"):
        assert catalog.CATALOG[name].public and name in hooks, name


def _transfer_doc(**over):
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    doc = {"id": "txf_1", "kind": "pending", "code": "hold", "status": "pending",
           "pending_status": "pending", "asset": "USD", "amount": 250,
           "debit_account_id": "acc_a", "credit_account_id": "acc_b", "debit_owner": "usr_a",
           "credit_owner": "usr_b", "hold_expires_at": now, "created_at": now,
           "balances_after": {"acc_a": {"debits_posted": 0, "credits_posted": 1000,
                                        "debits_pending": 250, "credits_pending": 0,
                                        "posted": 1000, "available": 750, "pending_in": 0,
                                        "pending_out": 250},
                              "acc_b": None}}
    return {**doc, **over}


def test_a_transfer_event_payload_validates_and_shows_only_the_viewers_side():
    data = {"object": plan.transfer_resource(_transfer_doc(), viewer="usr_a").model_dump(mode="json")}
    catalog.check("transfer.created", data)
    assert set(data["object"]["balances_after"]) == {"acc_a"}
    assert data["object"]["amount_decimal"] == "2.50" and data["object"]["status"] == "pending"


@pytest.mark.parametrize("name, bad", [
    ("transfer.created", {"object": {"id": "txf_1"}}),                          # fields missing
    ("transfer.posted", {"object": {**plan.transfer_resource(_transfer_doc()).model_dump(mode="json"),
                                    "amount": "lots"}}),                       # not an integer
    ("topup.succeeded", {"object": {"id": "tpu_1", "status": "done"}}),
    ("ledger.audit_failed", {"violations": []}),                               # not wrapped
])
def test_a_payload_that_does_not_match_its_declaration_is_refused(name, bad):
    with pytest.raises(catalog.UndeclaredEvent):
        catalog.check(name, bad)
