"""Event types the platform's own tests emit, declared like any capability's (internal)."""
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.platform import catalog


class AnyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    n: Any = None


for _name in ("thing.happened", "amount.added", "x.happened"):
    catalog.declare(_name, AnyPayload, public=False, description="test only")
