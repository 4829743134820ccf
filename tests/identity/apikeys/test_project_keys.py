"""Keys with a project (merchant keys, issue 9): stored, carried by the principal, kept by a
roll, filtered in lists; keys without one behave as before."""
from __future__ import annotations

from shared.identity.apikeys import service as apikeys
from shared.platform.pagination import ListQuery
from shared.platform.uow import run_unit

MCH = "mch_" + "k" * 24


def make(deps, **kw):
    return run_unit(deps, lambda uow: apikeys.create_api_key(
        uow, owner_id=MCH, name="k", scopes=["payments:read"], **kw))


def test_project_is_stored_carried_and_rolled(deps):
    key = make(deps, project_id="prj_a")
    doc = deps.db.collection("api_keys").document(key.id).get().to_dict()
    assert doc["project_id"] == "prj_a"
    p = apikeys.authenticate_api_key(deps, key.secret)
    assert (p.tenant_id, p.project_id, p.role) == (MCH, "prj_a", None)
    rolled = run_unit(deps, lambda uow: apikeys.roll_api_key(uow, owner_id=MCH, key_id=key.id))
    assert apikeys.authenticate_api_key(deps, rolled.secret).project_id == "prj_a"
    plain = make(deps)
    assert apikeys.authenticate_api_key(deps, plain.secret).project_id is None


def test_lists_filter_by_project_and_mode(deps):
    a, b, live = make(deps, project_id="prj_a"), make(deps, project_id="prj_b"), \
        make(deps, project_id="prj_a", livemode=True)
    ids = lambda **kw: [k.id for k in apikeys.list_api_keys(
        deps, owner_id=MCH, params=ListQuery(), **kw).data]
    assert set(ids()) == {a.id, b.id, live.id}
    assert ids(project_id="prj_a", livemode=False) == [a.id]
    assert ids(livemode=True) == [live.id]
    assert ids(project_id="prj_b", livemode=False) == [b.id]


def test_mode_guard_on_roll_and_revoke(deps):
    live = make(deps, livemode=True)
    import pytest

    from shared.platform.errors import NotFound
    with pytest.raises(NotFound):
        run_unit(deps, lambda uow: apikeys.revoke_api_key(uow, owner_id=MCH, key_id=live.id, livemode=False))
    with pytest.raises(NotFound):
        run_unit(deps, lambda uow: apikeys.roll_api_key(uow, owner_id=MCH, key_id=live.id, livemode=False))
    assert run_unit(deps, lambda uow: apikeys.revoke_api_key(
        uow, owner_id=MCH, key_id=live.id, livemode=True)).status == "revoked"
