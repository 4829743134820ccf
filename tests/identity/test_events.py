"""Every identity event type is declared in the event catalogue (issue 7, item 5).

Static: each ``uow.emit(...)`` in ``shared/identity`` names its type by a declaration imported
from ``shared.identity.resources`` (or a literal), and every such type is in the catalogue.
Dynamic: with undeclared types refused, sign-ups by password and phone and a logout emit
payloads that match their declared schemas.
"""
from __future__ import annotations

import ast
import pathlib

from shared.identity import resources
from shared.platform import catalog
from tests.identity.helpers import PASSWORD, events_of, fresh_ip

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "identity"


def emitted_types(path: pathlib.Path) -> tuple[set[str], list[str]]:
    """(event types this module emits, emits whose type cannot be read statically)."""
    tree = ast.parse(path.read_text(), str(path))
    declared = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "shared.identity.resources" for a in n.names}
    types, unknown = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "emit" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                types.add(arg.value)
            elif isinstance(arg, ast.Attribute) and arg.attr == "name" \
                    and isinstance(arg.value, ast.Name) and arg.value.id in declared:
                types.add(getattr(resources, arg.value.id).name)
            else:
                unknown.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {ast.unparse(arg)}")
    return types, unknown


def test_every_identity_emit_is_declared():
    found, unknown = set(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        types, bad = emitted_types(path)
        found |= types
        unknown += bad
    assert not unknown, unknown
    assert found, "the scan found no emit at all"
    assert {"user.created", "session.revoked", "api_key.created", "user.wallet.linked"} <= found
    missing = sorted(t for t in found if t not in catalog.CATALOG)
    assert not missing, f"emitted but not declared: {missing}"


def test_emit_scan_sees_an_undeclared_literal(tmp_path):
    mod = tmp_path / "mod.py"
    mod.write_text("from shared.identity.resources import USER_CREATED\n"
                   "def f(uow, t):\n    uow.emit(USER_CREATED.name)\n    uow.emit('x.y')\n"
                   "    uow.emit(t)\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        types, unknown = emitted_types(mod)
    finally:
        PACKAGE = saved
    assert types == {"user.created", "x.y"} and unknown == ["mod.py:5 t"]
    assert "x.y" not in catalog.CATALOG


def test_payloads_match_their_declarations(deps, auth, me, sms_code, new_phone, monkeypatch):
    """Undeclared types refused and payloads validated on emit (strict checks, as in tests)."""
    monkeypatch.setattr(catalog, "REQUIRE_DECLARED", True)
    assert deps.settings.strict_checks
    ip = fresh_ip()
    r = auth.post("/v1/auth/register", json={"email": "ev_user@example.com", "password": PASSWORD,
                                             "username": "ev_user"}, headers={"X-Forwarded-For": ip})
    assert r.status_code == 201, r.get_json()
    r = auth.post("/v1/auth/login", json={"username": "ev_user", "password": PASSWORD},
                  headers={"X-Forwarded-For": ip})
    assert r.status_code == 200, r.get_json()
    r = auth.post("/v1/auth/logout", headers={"Authorization": f"Bearer {r.get_json()['access_token']}"})
    assert r.status_code == 204, r.get_data(as_text=True)
    phone = new_phone()
    assert auth.post("/v1/auth/phone/start", json={"phone": phone},
                     headers={"X-Forwarded-For": ip}).status_code == 202
    r = auth.post("/v1/auth/phone/verify", json={"phone": phone, "code": sms_code(phone)},
                  headers={"X-Forwarded-For": ip})
    assert r.status_code == 201, r.get_json()
    created = events_of(deps, "user.created")
    assert len(created) == 2
    for event in created:
        resources.UserCreated.model_validate(event["data"])
    [revoked] = events_of(deps, "session.revoked")
    assert resources.SessionRevoked.model_validate(revoked["data"]).reason == "logout"


def test_a_payload_off_its_schema_is_refused():
    bad = {"object": {"id": "ses_1", "object": "session", "user_id": "usr_1", "status": "weird"},
           "reason": "logout"}
    try:
        catalog.check("session.revoked", bad)
    except catalog.UndeclaredEvent as exc:
        assert "SessionRevoked" in str(exc)
    else:
        raise AssertionError("a session.revoked with an unknown status passed the catalogue")
