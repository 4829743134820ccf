"""Pure rules: roles and the matrix, team-change rules, the resolver's header parsing, xpub,
settings defaults and validation. No emulator (unit lane)."""
from __future__ import annotations

import dataclasses

import pytest
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1

from shared.merchants import context, roles
from shared.merchants.countries import ISO_3166_ALPHA2, is_country
from shared.merchants.members import check_change
from shared.merchants.settings import CONFIRMATIONS, UpdateSettings, build
from shared.merchants.xpub import validate_xpub
from shared.platform.auth import Principal
from shared.platform.errors import Conflict, InvalidRequest, PermissionDenied

USER = Principal(kind="user", id="usr_" + "a" * 24, tenant_id="usr_" + "a" * 24, scopes=frozenset({"*"}))
MCH = "mch_" + "b" * 24


def acting(role):
    return dataclasses.replace(USER, tenant_id=MCH, role=role, actor_id=USER.id)


def test_roles_are_ordered_and_the_matrix_names_real_roles():
    assert roles.ROLES == ("owner", "admin", "developer", "support", "viewer")
    assert [roles.RANK[r] for r in roles.ROLES] == [5, 4, 3, 2, 1]
    assert set(roles.MATRIX.values()) <= set(roles.ROLES)
    assert roles.MATRIX["manage_members"] == "admin" and roles.MATRIX["read"] == "viewer"
    with pytest.raises(ValueError):
        roles.minimum_role("launch_missiles")


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("action", sorted(roles.MATRIX))
def test_require_follows_the_matrix(role, action):
    allowed = roles.RANK[role] >= roles.RANK[roles.MATRIX[action]]
    if allowed:
        assert roles.require(acting(role), action).role == role
    else:
        with pytest.raises(PermissionDenied) as exc:
            roles.require(acting(role), action)
        assert exc.value.code == "insufficient_role"


def test_require_outside_a_merchant_context_names_the_header():
    with pytest.raises(PermissionDenied) as exc:
        roles.require(USER, "viewer")
    assert exc.value.code == "merchant_required" and "Payloom-Merchant" in exc.value.message
    user_key = Principal(kind="api_key", id="key_x", tenant_id=USER.id, scopes=frozenset({"payments:write"}))
    with pytest.raises(PermissionDenied) as exc:
        roles.require(user_key, "viewer")
    assert exc.value.code == "merchant_required"
    merchant_key = dataclasses.replace(user_key, tenant_id=MCH)
    assert roles.require(merchant_key, "owner") is merchant_key  # scopes gate keys


def test_may_assign():
    assert roles.may_assign("owner", "owner") and roles.may_assign("owner", "viewer")
    assert not roles.may_assign("admin", "owner")
    assert roles.may_assign("admin", "admin") and roles.may_assign("admin", "viewer")
    assert not roles.may_assign("developer", "viewer") and not roles.may_assign(None, "viewer")


def test_team_change_rules():
    one, two = ["usr_1"], ["usr_1", "usr_2"]
    check_change(actor_role="viewer", actor_is_target=True, target_role="viewer", new_role=None, owners=one)
    with pytest.raises(Conflict) as exc:  # the last owner can neither leave nor be demoted
        check_change(actor_role="owner", actor_is_target=True, target_role="owner", new_role=None, owners=one)
    assert exc.value.code == "last_owner"
    with pytest.raises(Conflict):
        check_change(actor_role="owner", actor_is_target=True, target_role="owner", new_role="admin", owners=one)
    check_change(actor_role="owner", actor_is_target=False, target_role="owner", new_role="admin", owners=two)
    with pytest.raises(PermissionDenied):  # an admin cannot touch an owner
        check_change(actor_role="admin", actor_is_target=False, target_role="owner", new_role="admin", owners=two)
    with pytest.raises(PermissionDenied) as exc:  # nor grant owner
        check_change(actor_role="admin", actor_is_target=False, target_role="viewer", new_role="owner", owners=one)
    assert exc.value.code == "role_not_grantable"
    with pytest.raises(PermissionDenied):  # a developer manages nobody
        check_change(actor_role="developer", actor_is_target=False, target_role="viewer", new_role=None, owners=one)
    with pytest.raises(PermissionDenied):  # promoting oneself is a change like any other
        check_change(actor_role="admin", actor_is_target=True, target_role="admin", new_role="owner", owners=one)


def test_mode_header_parsing():
    assert context.parse_mode({}) is None
    assert context.parse_mode({"Payloom-Mode": "live"}) is True
    assert context.parse_mode({"Payloom-Mode": "test"}) is False
    for bad in ("LIVE", "prod", "", "live,test", "1"):
        with pytest.raises(InvalidRequest) as exc:
            context.parse_mode({"Payloom-Mode": bad})
        assert exc.value.code == "invalid_mode"


def test_api_key_principals_in_the_resolver():
    key = Principal(kind="api_key", id="key_x", tenant_id=MCH, scopes=frozenset({"account:read"}),
                    livemode=False, project_id="prj_1")
    assert context.merchant_context(key, {}, None) == key
    assert context.merchant_context(key, {"Payloom-Merchant": MCH}, None).tenant_id == MCH
    with pytest.raises(PermissionDenied) as exc:
        context.merchant_context(key, {"Payloom-Merchant": "mch_" + "c" * 24}, None)
    assert exc.value.code == "merchant_mismatch"
    with pytest.raises(InvalidRequest) as exc:
        context.merchant_context(key, {"Payloom-Mode": "live"}, None)
    assert exc.value.code == "mode_mismatch"
    with pytest.raises(InvalidRequest) as exc:
        context.merchant_context(USER, {"Payloom-Merchant": "../mch_x"}, None)
    assert exc.value.code == "invalid_merchant"
    assert context.merchant_context(USER, {}, None) == USER  # no header: untouched


def test_membership_cache_is_bounded_and_expires():
    cache = context.MembershipCache()
    for i in range(10):
        cache.put(("p", "m", str(i)), "viewer", 60, max_entries=4)
    assert len(cache._entries) <= 4
    assert cache.get(("p", "m", "9")) == (True, "viewer")
    cache.put(("p", "m", "x"), None, -1, 4)  # ttl 0: not cached
    assert cache.get(("p", "m", "x")) == (False, None)
    cache.forget(("p", "m", "9"))
    assert cache.get(("p", "m", "9")) == (False, None)


def _xpub(testnet=False):
    versions = Bip32KeyNetVersions(bytes.fromhex("043587cf"), bytes.fromhex("04358394")) if testnet else None
    master = (Bip32Secp256k1.FromSeed(bytes(range(32)), versions) if versions
              else Bip32Secp256k1.FromSeed(bytes(range(32))))
    account = master.DerivePath("m/44'/60'/0'")
    return account.PublicKey().ToExtended(), account.PrivateKey().ToExtended()


def test_xpub_validation():
    xpub, xprv = _xpub()
    tpub, tprv = _xpub(testnet=True)
    assert validate_xpub(xpub) == xpub and validate_xpub(f"  {tpub} ") == tpub
    for private in (xprv, tprv):
        with pytest.raises(InvalidRequest) as exc:
            validate_xpub(private)
        assert exc.value.code == "private_key_refused" and private not in exc.value.message
    broken = xpub[:-1] + ("A" if xpub[-1] != "A" else "B")
    for bad in (broken, xpub[:-1], "xpub" + "0" * 107, "ypub" + xpub[4:], "", "x" * 111):
        with pytest.raises(InvalidRequest) as exc:
            validate_xpub(bad)
        assert exc.value.code == "invalid_xpub", bad


def test_settings_defaults_and_bounds():
    s = build({"id": MCH, "settlement_asset": "USDC"}, None)
    assert s.accepted_methods == ["wallet", "card", "crypto"] and s.settlement_asset == "USDC"
    assert s.intent_expiry_seconds == 900 and s.late_payment_window_seconds == 86400
    assert s.speed_policy == "medium" and s.required_confirmations == 1
    assert CONFIRMATIONS == {"high": 0, "medium": 1, "lowmedium": 2, "low": 6}
    assert s.fee_for("card").percent_bps == 0 and s.xpub is None
    for bad in ({}, {"payment_tolerance_bps": 1001}, {"payment_tolerance_bps": -1},
                {"intent_expiry_seconds": 59}, {"intent_expiry_seconds": 7 * 86400 + 1},
                {"accepted_assets": ["DOGE"]}, {"accepted_methods": ["cash"]},
                {"accepted_methods": ["card", "card"]}, {"settlement_asset": "XXX"},
                {"fee_schedule": {"card": {"percent_bps": 10_001}}},
                {"fee_schedule": {"card": {"fixed": {"USD": -1}}}},
                {"fee_schedule": {"card": {"fixed": {"BTC": 1}}}}, {"speed_policy": "fast"}):
        with pytest.raises(ValueError):
            UpdateSettings.model_validate(bad)


def test_countries():
    assert len(ISO_3166_ALPHA2) == 249 and is_country("KH") and is_country("US")
    assert not is_country("XK") and not is_country("kh") and not is_country("ZZ")
