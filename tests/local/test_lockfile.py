"""The committed npm lockfile is complete, and the build installs it with ``npm ci``.

The lockfile once lacked the other platforms' optional anvil packages, so ``npm install`` on a
fresh clone rewrote it and ``make test`` left the tree modified.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from shared.platform.manifest import REPO_ROOT


def _lock() -> dict:
    return json.loads((REPO_ROOT / "package-lock.json").read_text())


def test_lockfile_pins_every_platforms_optional_anvil_package():
    packages = _lock()["packages"]
    anvil = packages["node_modules/@foundry-rs/anvil"]
    optional = anvil.get("optionalDependencies") or {}
    assert len(optional) >= 5  # darwin x64/arm64, linux x64/arm64, win32 x64
    for name, version in optional.items():
        entry = packages.get(f"node_modules/{name}")
        assert entry, f"{name} is missing from package-lock.json"
        assert entry["version"] == version and entry["integrity"].startswith("sha512-")
        assert entry.get("optional") is True


def test_installs_use_npm_ci_never_npm_install():
    makefile = (REPO_ROOT / "Makefile").read_text()
    stack = (REPO_ROOT / "infra/local/stack.py").read_text()
    assert "npm ci" in makefile and not re.search(r"npm install\b", makefile)
    assert '"npm", "ci"' in stack and '"npm", "install"' not in stack


def test_npm_resolves_the_lockfile_unchanged(tmp_path):
    """What npm would write is what is committed (needs the npm registry; skipped offline)."""
    if not shutil.which("npm"):
        pytest.skip("npm is not installed")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    done = subprocess.run(["npm", "install", "--package-lock-only", "--no-audit", "--no-fund", "--silent"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.skip(f"npm registry unreachable: {done.stderr[-300:]}")
    assert json.loads((tmp_path / "package-lock.json").read_text()) == _lock()
