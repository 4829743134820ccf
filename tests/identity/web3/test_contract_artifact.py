"""The committed OwnedWallet artifact matches its Solidity source (recompiled with solc-js)."""
from __future__ import annotations

import hashlib

import pytest

from shared.identity.web3.contracts import build


def test_artifact_matches_the_committed_source():
    artifact = build.load_artifact("OwnedWallet")
    source = build.CONTRACTS["OwnedWallet"].read_text()
    assert artifact["sourceSha256"] == hashlib.sha256(source.encode()).hexdigest(), \
        "OwnedWallet.sol changed: run python -m shared.identity.web3.contracts.build"
    assert artifact["compiler"]["version"].startswith(build.SOLC_VERSION)
    assert artifact["compiler"]["settings"]["evmVersion"] == "cancun"
    names = {item.get("name") for item in artifact["abi"]}
    assert {"isValidSignature", "owner", "setOwner"} <= names
    assert artifact["bytecode"].startswith("0x60") and len(artifact["deployedBytecode"]) > 100


def test_recompiling_gives_the_committed_artifact():
    try:
        build.solc_node_path()
    except build.SolcUnavailable as exc:
        pytest.skip(f"solc-js {build.SOLC_VERSION} unavailable: {exc}")
    compiled = build.compile_all()["OwnedWallet"]
    committed = build.load_artifact("OwnedWallet")
    assert compiled["abi"] == committed["abi"]
    assert compiled["bytecode"] == committed["bytecode"]
    assert compiled["deployedBytecode"] == committed["deployedBytecode"]
    assert compiled == committed
