"""Emitting merchant events. Merchant-level objects (the merchant, its team) belong to both
modes, while webhook endpoints belong to one: each such change is emitted once per mode, so a
test-mode endpoint under development hears about it as a live one does. Mode-scoped objects
(projects) are emitted in their own mode only."""
from __future__ import annotations

from pydantic import BaseModel


def emit_both_modes(uow, event_type: str, merchant_id: str, obj: BaseModel) -> None:
    data = {"object": obj.model_dump(mode="json")}
    for livemode in (False, True):
        uow.emit(event_type, tenant=merchant_id, livemode=livemode, data=data)


def emit_in_mode(uow, event_type: str, merchant_id: str, obj: BaseModel, livemode: bool) -> None:
    uow.emit(event_type, tenant=merchant_id, livemode=bool(livemode),
             data={"object": obj.model_dump(mode="json")})
