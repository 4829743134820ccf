"""The event catalogue: declared payloads are enforced when emitting (in tests) and published in
the OpenAPI document's webhooks section."""
import pytest

from shared.platform import catalog
from shared.platform.openapi import build_openapi
from shared.platform.uow import UnitOfWork
import shared.probes.http  # noqa: F401  (declares probe.*)


def test_an_event_whose_payload_does_not_match_its_declaration_is_refused(deps):
    uow = UnitOfWork(deps)
    with pytest.raises(catalog.UndeclaredEvent):
        uow.emit("probe.created", tenant="t", data={"object": {"id": "prb_1"}})
    assert uow.events == []


def test_public_event_types_are_in_the_openapi_webhooks_section():
    spec = build_openapi()
    hook = spec["webhooks"]["probe.created"]["post"]
    body = hook["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["type"] == {"const": "probe.created"}
    data_ref = body["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
    assert "object" in spec["components"]["schemas"][data_ref]["properties"]


def test_a_type_cannot_be_declared_twice_with_different_payloads():
    from pydantic import BaseModel

    class Other(BaseModel):
        x: int
    with pytest.raises(ValueError):
        catalog.declare("probe.created", Other)


def test_an_undeclared_type_is_refused(deps):
    uow = UnitOfWork(deps)
    with pytest.raises(catalog.UndeclaredEvent):
        uow.emit("nobody.declared.this", tenant="t", data={})


def test_an_event_too_large_for_a_webhook_delivery_is_refused(deps):
    uow = UnitOfWork(deps)
    probe = {"id": "prb_1", "created": "2026-12-01T00:00:00Z", "status": "pending", "delay_seconds": 0}
    catalog.check("probe.created", {"object": {**probe, "note": "x" * 10_000}})  # fits
    big = {"object": {**probe, "note": "x" * 25_000}}
    with pytest.raises(catalog.OversizedEvent):
        catalog.check("probe.created", big)
    assert catalog.payload_size({"a": "é"}) == len('{"a":"é"}'.encode())


def test_every_module_that_declares_events_is_listed_for_load_all():
    import pathlib
    import re
    root = pathlib.Path(catalog.__file__).resolve().parents[1]
    declaring = set()
    for path in root.rglob("*.py"):
        if path.name != "catalog.py" and re.search(r"(?<!def )\bdeclare\(",
                                                   path.read_text(), re.M):
            declaring.add(".".join(("shared",) + path.relative_to(root).with_suffix("").parts))
    assert declaring == set(catalog.DECLARING_MODULES)
    assert {"api_key.created", "webhook_endpoint.created"} <= set(catalog.load_all())
