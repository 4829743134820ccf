"""Package every function in functions/manifest.yaml into a deployable folder and zip.

For each manifest function `<name>` this writes:

    <out>/<name>/main.py            copy of functions/<name>/main.py
    <out>/<name>/shared/...         copy of the shared package (no __pycache__ / *.pyc)
    <out>/<name>/requirements.txt   copy of the repo's root requirements.txt
    <out>/<name>/shared/web/static/vendor/...   functions with a web_root only: the npm files
                                    their pages serve (shared.web.assets.VENDOR), from node_modules
    <out>/<name>.zip                the same files, deterministic (sorted, fixed timestamps)

Terraform uploads `<out>/<name>.zip` under a content-hash name, so a function is redeployed
only when its zip changes.

Usage:  python infra/build.py [--out build]     or     python -m infra.build [--out build]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import zipfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python infra/build.py`: the page functions need `shared`
    sys.path.insert(0, str(REPO_ROOT))
TRIGGERS = {"http", "pubsub", "task", "schedule"}
# A function name is a Python folder name and, with "_" -> "-", a Cloud Function and service
# account id ("fn-<name>", at most 30 characters).
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{2,26}$")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest date a zip can hold: builds are reproducible
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


class BuildError(Exception):
    """The manifest and the functions/ folder disagree, or the manifest is invalid."""


def load_manifest(path: str | Path) -> dict:
    """Read and validate the manifest. Raises BuildError with a readable message."""
    path = Path(path)
    try:
        manifest = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise BuildError(f"manifest not found: {path}") from None
    errors = _validate(manifest)
    if errors:
        raise BuildError(f"invalid manifest {path}:\n  " + "\n  ".join(errors))
    return manifest


def _validate(manifest: dict) -> list[str]:
    errors = []
    for key in ("project", "region", "functions"):
        if key not in manifest:
            errors.append(f"missing top-level key '{key}'")
    seen = set()
    for fn in manifest.get("functions") or []:
        name = fn.get("name", "?")
        where = f"function '{name}'"
        if not NAME_RE.match(str(name)):
            errors.append(f"{where}: name must match {NAME_RE.pattern}")
        if name in seen:
            errors.append(f"{where}: listed twice")
        seen.add(name)
        trigger = fn.get("trigger")
        if trigger not in TRIGGERS:
            errors.append(f"{where}: trigger must be one of {sorted(TRIGGERS)}")
        if not fn.get("entry_point"):
            errors.append(f"{where}: missing entry_point")
        required = {"http": "path", "pubsub": "topic", "task": "queue", "schedule": "cron"}.get(trigger)
        if required and not fn.get(required):
            errors.append(f"{where}: trigger {trigger} needs '{required}'")
        for field, section in (("topic", "topics"), ("queue", "queues")):
            if fn.get(field) and fn[field] not in (manifest.get(section) or {}):
                errors.append(f"{where}: {field} '{fn[field]}' is not a key of '{section}'")
        for secret in fn.get("secrets") or []:
            if secret not in (manifest.get("secrets") or {}):
                errors.append(f"{where}: secret '{secret}' is not a key of 'secrets'")
    return errors


def build_all(out_dir: str | Path, root: str | Path = REPO_ROOT) -> list[Path]:
    """Build every manifest function of the repo at `root` into `out_dir`; return the zips."""
    root, out_dir = Path(root), Path(out_dir)
    manifest = load_manifest(root / "functions" / "manifest.yaml")
    names = [fn["name"] for fn in manifest["functions"]]
    _check_folders(root / "functions", names)
    for required in (root / "shared", root / "requirements.txt"):
        if not required.exists():
            raise BuildError(f"missing {required.relative_to(root)}")

    out_dir.mkdir(parents=True, exist_ok=True)
    zips = []
    web_roots = {fn["name"] for fn in manifest["functions"] if fn.get("web_root")}
    for name in names:
        target = out_dir / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        shutil.copy2(root / "functions" / name / "main.py", target / "main.py")
        shutil.copytree(root / "shared", target / "shared", ignore=IGNORED)
        shutil.copy2(root / "requirements.txt", target / "requirements.txt")
        if name in web_roots:
            _vendor_assets(root, target / "shared" / "web" / "static" / "vendor")
        if name == "docs" and root == REPO_ROOT:
            _freeze_openapi(target / "shared" / "docs")
        zips.append(write_zip(target, out_dir / f"{name}.zip"))
    return zips


def _vendor_assets(root: Path, dest: Path) -> None:
    """Copy the pinned npm files a page function serves (never fetched from a CDN)."""
    from shared.web.assets import VENDOR
    dest.mkdir(parents=True, exist_ok=True)
    for name, rel in VENDOR.items():
        source = root / "node_modules" / rel
        if not source.is_file():
            raise BuildError(f"missing node_modules/{rel}: run `npm ci` (make deps) first")
        shutil.copy2(source, dest / name)


def _freeze_openapi(dest: Path) -> None:
    """A deployed docs function runs alone: it serves the document of EVERY function, built
    here with every function's routers loaded (the local gateway loads them all)."""
    from infra.local.gateway import Gateway
    from shared.docs.spec import freeze
    Gateway()
    freeze(dest)


def _check_folders(functions_dir: Path, names: list[str]) -> None:
    missing = [n for n in names if not (functions_dir / n / "main.py").is_file()]
    if missing:
        raise BuildError(
            "manifest functions without functions/<name>/main.py: " + ", ".join(missing)
        )
    folders = {
        p.name
        for p in functions_dir.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_"))
    }
    unlisted = sorted(folders - set(names))
    if unlisted:
        raise BuildError(
            "folders under functions/ missing from functions/manifest.yaml: " + ", ".join(unlisted)
        )


def write_zip(src_dir: Path, zip_path: Path) -> Path:
    """Zip `src_dir` deterministically: sorted entries, fixed dates and permissions."""
    files = sorted(p for p in src_dir.rglob("*") if p.is_file())
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(src_dir).as_posix(), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever machine builds it
            zf.writestr(info, path.read_bytes())
    tmp.replace(zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO_ROOT / "build"), help="output folder (default: build/)")
    args = parser.parse_args(argv)
    try:
        zips = build_all(args.out)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for z in zips:
        print(f"built {z}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
