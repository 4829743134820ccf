"""Who may run the relay network's admin routes (blacklist, suspicious activity): operators.

Operators are Payloom staff: identity users listed in ``PAYLOOM_RELAY_OPERATORS`` (a JSON list
of user ids; tests inject ``deps.extras["relay.operators"]``). An operator's session must have
been opened with a second factor (``shared.identity.step_up``), as custodians' are: a stolen
password alone never blacklists a provider or lifts a ban. The platform's service credential
(internal tools, scheduled jobs) passes too. Anyone else, API keys included, gets 403
``operator_required`` — and a user who is not an operator learns nothing more.
Each blacklist write records who made it (``created_by``).
"""
from __future__ import annotations

import json
import os
from typing import Any

from shared.identity import step_up
from shared.platform.auth import Principal
from shared.platform.errors import PermissionDenied

ENV_VAR = "PAYLOOM_RELAY_OPERATORS"
EXTRAS_KEY = "relay.operators"
MAX_OPERATORS = 50


def _from_env() -> frozenset[str]:
    """``PAYLOOM_RELAY_OPERATORS``, parsed once per instance (none when unset; a malformed
    value is a deployment error)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return frozenset()
    ids = json.loads(raw)
    if (not isinstance(ids, list) or len(ids) > MAX_OPERATORS
            or not all(isinstance(i, str) and i.startswith("usr_") for i in ids)):
        raise ValueError(f"{ENV_VAR} must be a JSON list of at most {MAX_OPERATORS} usr_ ids")
    return frozenset(ids)


def operator_ids(deps: Any) -> frozenset[str]:
    """The configured operators (``deps.extras["relay.operators"]`` in tests)."""
    return frozenset(deps.get(EXTRAS_KEY, _from_env))


def require_operator(deps: Any, principal: Principal) -> str:
    """The actor to record (``service`` or the operator's user id), or 403."""
    if principal.kind == "service":
        return "service"
    if principal.kind != "user" or principal.id not in operator_ids(deps):
        raise PermissionDenied("Only the relay network's operators may do this.",
                               code="operator_required")
    step_up.require_mfa(deps, principal, what="Operator actions")
    return principal.id
