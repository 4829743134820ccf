"""The committed token artifacts match Tokens.sol and the pinned OpenZeppelin (recompiled)."""
from __future__ import annotations

import hashlib
import json

import pytest

from shared.chain.contracts import build
from shared.platform.manifest import REPO_ROOT


@pytest.mark.parametrize("name", build.TOKENS)
def test_artifact_matches_the_committed_source_and_pins(name):
    artifact = build.load_artifact(name)
    assert artifact["sourceSha256"] == hashlib.sha256(build.SOURCE.read_bytes()).hexdigest(), \
        "Tokens.sol changed: run python -m shared.chain.contracts.build"
    assert artifact["dependencies"]["@openzeppelin/contracts"] == build.pinned_openzeppelin_version()
    assert artifact["compiler"]["version"].startswith(build.SOLC_VERSION)
    assert artifact["compiler"]["settings"]["evmVersion"] == "cancun"
    names = {item.get("name") for item in artifact["abi"]}
    assert {"transfer", "balanceOf", "decimals", "Transfer", "mint", "owner"} <= names
    assert artifact["bytecode"].startswith("0x60") and len(artifact["deployedBytecode"]) > 1000


def test_openzeppelin_is_a_pinned_dev_dependency_in_the_lockfile():
    version = build.pinned_openzeppelin_version()
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/@openzeppelin/contracts"]
    assert entry["version"] == version and entry["dev"] is True
    assert entry["integrity"].startswith("sha512-")


def test_the_sources_hash_covers_the_installed_openzeppelin():
    try:
        sources = build.collect_sources()
    except build.SolcUnavailable as exc:
        pytest.skip(str(exc))
    assert "@openzeppelin/contracts/token/ERC20/ERC20.sol" in sources
    assert "@openzeppelin/contracts/access/Ownable.sol" in sources
    assert build.sources_sha256(sources) == build.load_artifact("USDC")["sourcesSha256"], \
        "node_modules/@openzeppelin differs from what the artifacts were built from (npm ci)"


def test_recompiling_gives_the_committed_artifacts():
    try:
        build.solc_node_path()
        build.openzeppelin_dir()
    except build.SolcUnavailable as exc:
        pytest.skip(f"solc-js {build.SOLC_VERSION} or OpenZeppelin unavailable: {exc}")
    compiled = build.compile_all()
    for name in build.TOKENS:
        assert compiled[name] == build.load_artifact(name), f"{name}.json is stale"


def test_no_token_logic_of_our_own_beyond_decimals_and_owner_mint():
    """The brief's rule: thin subclasses of OpenZeppelin's ERC20 (no hand-written transfers)."""
    source = build.SOURCE.read_text()
    for forbidden in ("balanceOf", "_balances", "function transfer", "_update", "assembly"):
        assert forbidden not in source
    assert source.count("_mint(") == 2   # constructor supply, and the onlyOwner mint
    assert "onlyOwner" in source
