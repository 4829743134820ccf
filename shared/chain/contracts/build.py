"""Compile the local test tokens (OpenZeppelin ERC-20s) with solc-js 0.8.37; write the artifacts.

    python -m shared.chain.contracts.build          # rewrite USDC.json, MUSD.json, PPT.json
    python -m shared.chain.contracts.build --check  # exit 1 if an artifact is stale

Same compiler and settings as the identity contracts (``shared/identity/web3/contracts/build.py``:
solc-js from npm, evmVersion cancun, optimizer 200 runs) so the output is reproducible. Imports of
``@openzeppelin/...`` are resolved here, in Python, from ``node_modules/@openzeppelin/contracts``
(the version pinned in package.json) and handed to solc as sources of the standard JSON input
under their import names: no import callback, no network. The artifact records the source hash
of ``Tokens.sol``, the OpenZeppelin version, and one hash over every source compiled, so a change
of either is seen without recompiling.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import posixpath
import re
import sys

from shared.identity.web3.contracts.build import (
    SOLC_VERSION,
    SolcUnavailable,
    compile_standard_json,
    solc_node_path,
)

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
SOURCE = HERE / "Tokens.sol"
SOURCE_NAME = "Tokens.sol"
TOKENS = ("USDC", "MUSD", "PPT")
OZ_PREFIX = "@openzeppelin/contracts/"
SETTINGS = {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200},
            "metadata": {"bytecodeHash": "ipfs"},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object",
                                            "evm.deployedBytecode.object"]}}}

__all__ = [
    "SOLC_VERSION",
    "TOKENS",
    "SolcUnavailable",
    "collect_sources",
    "compile_all",
    "load_artifact",
    "openzeppelin_dir",
    "solc_node_path",
]

_IMPORT_RE = re.compile(r'^\s*import\s+(?:[^"\']*?\s+from\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)


def openzeppelin_dir() -> pathlib.Path:
    """``node_modules/@openzeppelin/contracts`` of the repository (``npm ci`` installs it)."""
    path = REPO_ROOT / "node_modules" / "@openzeppelin" / "contracts"
    if not (path / "package.json").exists():
        raise SolcUnavailable("@openzeppelin/contracts is not installed (npm ci)")
    return path


def openzeppelin_version() -> str:
    return json.loads((openzeppelin_dir() / "package.json").read_text())["version"]


def pinned_openzeppelin_version() -> str:
    """The exact version package.json pins (what the committed artifacts were built from)."""
    pkg = json.loads((REPO_ROOT / "package.json").read_text())
    return pkg["devDependencies"]["@openzeppelin/contracts"]


def collect_sources() -> dict[str, str]:
    """Every source the compile needs, keyed by import name: Tokens.sol and, transitively, the
    OpenZeppelin files it imports (relative imports resolved against the importing file)."""
    oz = openzeppelin_dir()
    sources: dict[str, str] = {SOURCE_NAME: SOURCE.read_text()}
    pending = [SOURCE_NAME]
    while pending:
        name = pending.pop()
        for target in _IMPORT_RE.findall(sources[name]):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target in sources:
                continue
            if not target.startswith(OZ_PREFIX):
                raise RuntimeError(f"{name}: import {target!r} is outside @openzeppelin/contracts")
            sources[target] = (oz / target[len(OZ_PREFIX):]).read_text()
            pending.append(target)
    return dict(sorted(sources.items()))


def sources_sha256(sources: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name, text in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def compile_all() -> dict[str, dict]:
    sources = collect_sources()
    result = compile_standard_json({
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS})
    output = result["output"]
    artifacts = {}
    for name in TOKENS:
        unit = output["contracts"][SOURCE_NAME][name]
        artifacts[name] = {
            "contractName": name, "sourceName": SOURCE_NAME,
            "sourceSha256": hashlib.sha256(sources[SOURCE_NAME].encode()).hexdigest(),
            "sourcesSha256": sources_sha256(sources),
            "dependencies": {"@openzeppelin/contracts": openzeppelin_version()},
            "compiler": {"name": "solc-js", "version": result["version"], "settings": {
                k: v for k, v in SETTINGS.items() if k != "outputSelection"}},
            "abi": unit["abi"],
            "bytecode": "0x" + unit["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + unit["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def artifact_path(name: str) -> pathlib.Path:
    return HERE / f"{name}.json"


def load_artifact(name: str) -> dict:
    if name not in TOKENS:
        raise KeyError(f"no token contract {name!r}; known: {', '.join(TOKENS)}")
    return json.loads(artifact_path(name).read_text())


def main(argv: list[str]) -> int:
    artifacts = compile_all()
    stale = []
    for name, artifact in artifacts.items():
        path = artifact_path(name)
        if "--check" in argv:
            if not path.exists() or json.loads(path.read_text()) != artifact:
                stale.append(name)
        else:
            path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print(f"stale artifacts: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
