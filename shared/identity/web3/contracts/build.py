"""Compile the test contract wallets with solc-js 0.8.37 and write their committed artifacts.

    python -m shared.identity.web3.contracts.build          # rewrite OwnedWallet.json
    python -m shared.identity.web3.contracts.build --check  # exit 1 if the artifact is stale

solc-js comes from npm (``npm install solc@0.8.37``; py-solc-x needs downloads). It is found in
``$PAYLOOM_SOLCJS_DIR`` (a directory whose ``node_modules`` holds ``solc``) or in the repository's
own ``node_modules``. Settings are fixed (evmVersion cancun, optimizer 200 runs, no metadata
paths outside this folder) so the output is reproducible and a test can recompile and compare.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[3]
SOLC_VERSION = "0.8.37"
CONTRACTS = {"OwnedWallet": HERE / "OwnedWallet.sol"}
SETTINGS = {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200},
            "metadata": {"bytecodeHash": "ipfs"},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object",
                                            "evm.deployedBytecode.object"]}}}

_JS = r"""
const solc = require('solc');
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


class SolcUnavailable(RuntimeError):
    pass


def solc_node_path() -> str:
    candidates = []
    if os.environ.get("PAYLOOM_SOLCJS_DIR"):
        candidates.append(pathlib.Path(os.environ["PAYLOOM_SOLCJS_DIR"]) / "node_modules")
    candidates.append(REPO_ROOT / "node_modules")
    if not shutil.which("node"):
        raise SolcUnavailable("node is not installed")
    for path in candidates:
        if (path / "solc" / "package.json").exists():
            version = json.loads((path / "solc" / "package.json").read_text())["version"]
            if version == SOLC_VERSION:
                return str(path)
    raise SolcUnavailable(f"solc-js {SOLC_VERSION} not found (npm install solc@{SOLC_VERSION}; "
                          "set PAYLOOM_SOLCJS_DIR to the directory holding its node_modules)")


def compile_standard_json(standard: dict) -> dict:
    """Compile a solc standard-JSON input with the pinned solc-js: ``{"version", "output"}``.
    Raises on a compiler error (warnings pass). Every contract build of the repo goes through
    here (this one and shared/chain/contracts/build.py)."""
    proc = subprocess.run(["node", "-e", _JS], input=json.dumps(standard), capture_output=True,
                          text=True, env={**os.environ, "NODE_PATH": solc_node_path()},
                          timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"solc-js failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    errors = [e for e in result["output"].get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise RuntimeError("compilation failed:\n" + "\n".join(e["formattedMessage"] for e in errors))
    return result


def compile_all() -> dict[str, dict]:
    sources = {f"{name}.sol": {"content": path.read_text()} for name, path in CONTRACTS.items()}
    result = compile_standard_json({"language": "Solidity", "sources": sources,
                                    "settings": SETTINGS})
    output = result["output"]
    artifacts = {}
    for name in CONTRACTS:
        unit = output["contracts"][f"{name}.sol"][name]
        source = sources[f"{name}.sol"]["content"]
        artifacts[name] = {
            "contractName": name, "sourceName": f"{name}.sol",
            "sourceSha256": hashlib.sha256(source.encode()).hexdigest(),
            "compiler": {"name": "solc-js", "version": result["version"], "settings": {
                k: v for k, v in SETTINGS.items() if k != "outputSelection"}},
            "abi": unit["abi"],
            "bytecode": "0x" + unit["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + unit["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def artifact_path(name: str) -> pathlib.Path:
    return HERE / f"{name}.json"


def load_artifact(name: str = "OwnedWallet") -> dict:
    return json.loads(artifact_path(name).read_text())


def main(argv: list[str]) -> int:
    artifacts = compile_all()
    stale = []
    for name, artifact in artifacts.items():
        text = json.dumps(artifact, indent=2, sort_keys=True) + "\n"
        path = artifact_path(name)
        if "--check" in argv:
            if not path.exists() or json.loads(path.read_text()) != artifact:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print(f"stale artifacts: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
