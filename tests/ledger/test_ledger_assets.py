"""The asset registry: exact conversions, dust and precision rejected, int64 bounds."""
import pytest
from hypothesis import given, strategies as st

from shared.ledger import assets
from shared.platform.errors import InvalidRequest


def test_registry_scales():
    got = {c: (a.scale, a.onchain_decimals) for c, a in assets.ASSETS.items()}
    assert got == {"USD": (2, None), "KHR": (0, None), "USDC": (6, 6), "MUSD": (6, 18),
                   "ETH": (9, 18), "PPT": (6, 18)}


@pytest.mark.parametrize("value,asset,units", [
    ("12.34", "USD", 1234), ("12.3", "USD", 1230), ("12", "USD", 1200), ("0.01", "USD", 1),
    ("12.340000", "USD", 1234), ("4100", "KHR", 4100), ("1.000000001", "ETH", 1_000_000_001),
    ("0.000001", "USDC", 1)])
def test_parse_decimal_exact(value, asset, units):
    assert assets.parse_decimal(value, asset) == units


@pytest.mark.parametrize("value,asset,code", [
    ("1.001", "USD", "amount_too_precise"), ("0.5", "KHR", "amount_too_precise"),
    ("0.0000000001", "ETH", "amount_too_precise"), ("-1", "USD", "amount_invalid"),
    ("1e3", "USD", "amount_invalid"), ("", "USD", "amount_invalid"), ("1.", "USD", "amount_invalid"),
    ("0", "USD", "amount_not_positive"), ("99999999999999999999", "USD", "amount_too_large")])
def test_parse_decimal_rejects(value, asset, code):
    with pytest.raises(InvalidRequest) as exc:
        assets.parse_decimal(value, asset)
    assert exc.value.code == code


def test_onchain_conversion_rejects_dust():
    assert assets.from_onchain("1000000000000000000", "ETH") == 1_000_000_000  # 1 ETH in gwei
    assert assets.from_onchain("1500000", "USDC") == 1_500_000
    assert assets.from_onchain("2000000000000", "MUSD") == 2
    for raw, asset in (("1000000000000000001", "ETH"), ("1", "MUSD"), ("999999999999", "PPT")):
        with pytest.raises(InvalidRequest) as exc:
            assets.from_onchain(raw, asset)
        assert exc.value.code == "amount_dust"
    with pytest.raises(InvalidRequest) as exc:
        assets.from_onchain("10", "USD")
    assert exc.value.code == "asset_not_onchain"
    with pytest.raises(InvalidRequest) as exc:  # beyond int64 at ledger scale
        assets.from_onchain(str(2**63 * 10**9), "ETH")
    assert exc.value.code == "amount_too_large"
    for bad in ("-5", "0x10", "1.5", " "):
        with pytest.raises(InvalidRequest):
            assets.from_onchain(bad, "USDC")


def test_unknown_asset_and_non_int_amounts():
    with pytest.raises(InvalidRequest) as exc:
        assets.get_asset("DOGE")
    assert exc.value.code == "asset_unknown" and exc.value.param == "asset"
    for bad in (1.5, True, "100", -1, 0, 2**63):
        with pytest.raises(InvalidRequest):
            assets.check_amount(bad, "USD")


@given(st.sampled_from(sorted(assets.ASSETS)), st.integers(min_value=1, max_value=2**63 - 1))
def test_decimal_round_trip(code, units):
    assert assets.parse_decimal(assets.format_decimal(units, code), code) == units


@given(st.sampled_from(["USDC", "MUSD", "ETH", "PPT"]), st.integers(min_value=1, max_value=2**63 - 1))
def test_onchain_round_trip(code, units):
    assert assets.from_onchain(assets.to_onchain(units, code), code) == units
